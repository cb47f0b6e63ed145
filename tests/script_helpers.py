"""Running and importing the experiment scripts from tests: one definition for every script test."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def run_script(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """``python *args`` from the repository root (``args[0]``: the script), output captured."""
    return subprocess.run(
        [sys.executable, *map(str, args)],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def headline(stdout: str) -> dict[str, str]:
    """The ``key=value`` pairs of a script's last printed line."""
    last = stdout.strip().splitlines()[-1]
    return dict(item.split("=", 1) for item in last.split())


def load_script(path: str | Path) -> ModuleType:
    """Import an experiment script (a path relative to the repository root, or absolute) as a module."""
    path = ROOT / path
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
