"""Results folders and atomic file writes.

Every run writes ``<out>/<env_id>__<agent>__<seed>__<timestamp>/`` holding
``config.json`` (the resolved config), ``metrics.csv`` (tidy, one row per
evaluation), ``learning_curve.png`` and ``checkpoint.npz`` (for ``--resume``; see
:mod:`nmbrl_brian.checkpoints`).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from nmbrl_brian.errors import ConfigError, ResultsWriteError

#: Columns of ``metrics.csv``, in order.
METRIC_COLUMNS = ("env_steps", "episodes", "wall_s", "return_mean", "return_std", "seed")


def new_run_dir(out: str | Path, stem: str) -> Path:
    """Create ``out/<stem>__<timestamp>`` (suffixing ``-1``, ``-2`` ... on a clash) and return it.

    Raises
    ------
    ConfigError
        If ``out`` (field ``--out``) names an existing file or cannot be created.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError("--out", "a folder for results (this path is an existing file)", str(out))
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            "--out", "a folder that can be created", str(out), note=exc.strerror or ""
        ) from None
    base = f"{stem}__{time.strftime('%Y%m%d-%H%M%S')}"
    for i in range(1000):
        path = out / (base if i == 0 else f"{base}-{i}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a fresh run folder under {out}")  # pragma: no cover


def _umask() -> int:
    """The process's file-creation mask (read by setting it and setting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable) -> None:
    """Call ``write(f)`` on a temporary file next to ``path``, then rename it to ``path``.

    Readers see the old file or the new one, never a partial one; on any error
    (Ctrl-C included) the temporary file is removed and the old file is kept. The file
    gets the mode a plain ``open`` would give it (``0666`` less the umask), not
    ``mkstemp``'s ``0600``.

    Raises
    ------
    ResultsWriteError
        On an :class:`OSError` (e.g. ``ENOSPC``, a full disk): one line naming ``path``.
    """
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:  # no space (or inodes) left, no such folder, no permission
        raise ResultsWriteError(path, exc) from exc
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a results file gets the usual mode
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, ResultsWriteError):
            raise ResultsWriteError(path, exc) from exc  # e.g. ENOSPC: one line naming the file
        raise


def write_csv_atomic(df: pd.DataFrame, path: str | Path) -> None:
    """Write ``df`` to ``path`` as CSV so readers never see a half-written file."""
    atomic_write(path, lambda f: f.write(df.to_csv(index=False).encode()))
