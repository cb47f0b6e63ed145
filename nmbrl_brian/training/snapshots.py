"""Versioned snapshots that one process publishes and another reads, never half-written.

A snapshot is a data-only checkpoint (:mod:`nmbrl_brian.checkpoints`) named
``<kind>_<version>.npz`` in a folder; it is written to a temporary file and renamed, so
a reader sees either the whole snapshot or none. :func:`latest` reads the highest
version; :func:`publish` writes the next one and keeps the last few.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from nmbrl_brian.checkpoints import read_checkpoint, write_checkpoint
from nmbrl_brian.errors import CheckpointError

#: Snapshots kept per kind (older ones are deleted after a publication).
KEEP = 3


def _versions(folder: Path, kind: str) -> list[tuple[int, Path]]:
    pattern = re.compile(rf"^{re.escape(kind)}_(\d+)\.npz$")
    found = []
    for path in folder.glob(f"{kind}_*.npz") if folder.is_dir() else []:
        match = pattern.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest_version(folder: str | Path, kind: str) -> int:
    """The highest published version of ``kind`` (0 if none)."""
    versions = _versions(Path(folder), kind)
    return versions[-1][0] if versions else 0


def latest(folder: str | Path, kind: str) -> tuple[int, Any] | None:
    """``(version, tree)`` of the newest readable snapshot of ``kind``, or None.

    A snapshot deleted between listing and reading (pruned by the writer) is skipped in
    favour of the next newest.
    """
    for version, path in reversed(_versions(Path(folder), kind)):
        try:
            return version, read_checkpoint(path, kind=f"snapshot:{kind}")
        except (CheckpointError, FileNotFoundError):
            continue
    return None


def publish(folder: str | Path, kind: str, tree: Any, meta: dict | None = None) -> int:
    """Write ``tree`` as the next version of ``kind`` (atomically); return that version."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    version = latest_version(folder, kind) + 1
    write_checkpoint(
        folder / f"{kind}_{version:06d}.npz",
        tree,
        kind=f"snapshot:{kind}",
        meta={"version": version, **(meta or {})},
    )
    for _, old in _versions(folder, kind)[:-KEEP]:
        old.unlink(missing_ok=True)
    return version
