"""``python -m nmbrl_brian`` is the ``nmbrl`` command."""

import sys

from nmbrl_brian.cli import main

sys.exit(main())
