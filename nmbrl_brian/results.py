"""Results folders and atomic file writes.

Every run writes ``<out>/<env_id>__<agent>__<seed>__<timestamp>/`` holding
``config.json`` (the resolved config), ``metrics.csv`` (tidy, one row per
evaluation), ``learning_curve.png`` and ``checkpoint.pkl`` (for ``--resume``).
"""

from __future__ import annotations

import os
import pickle
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

#: Columns of ``metrics.csv``, in order.
METRIC_COLUMNS = ("env_steps", "episodes", "wall_s", "return_mean", "return_std", "seed")


def new_run_dir(out: str | Path, stem: str) -> Path:
    """Create ``out/<stem>__<timestamp>`` (suffixing ``-1``, ``-2`` ... on a clash) and return it."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    base = f"{stem}__{time.strftime('%Y%m%d-%H%M%S')}"
    for i in range(1000):
        path = out / (base if i == 0 else f"{base}-{i}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a fresh run folder under {out}")  # pragma: no cover


def _atomic_write(path: Path, write) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_csv_atomic(df: pd.DataFrame, path: str | Path) -> None:
    """Write ``df`` to ``path`` as CSV so readers never see a half-written file."""
    _atomic_write(Path(path), lambda f: f.write(df.to_csv(index=False).encode()))


def write_pickle_atomic(obj: Any, path: str | Path) -> None:
    """Pickle ``obj`` to ``path`` atomically (used for checkpoints)."""
    _atomic_write(Path(path), lambda f: pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL))


def read_pickle(path: str | Path) -> Any:
    """Load a pickle written by :func:`write_pickle_atomic`."""
    with open(path, "rb") as f:
        return pickle.load(f)
