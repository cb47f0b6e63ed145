"""Checkpoints stored as data: NumPy arrays in an ``.npz`` archive plus a JSON header.

Nothing in a checkpoint can run code when it is read: arrays are read with
``allow_pickle=False`` (object arrays are refused) and everything else is JSON.
This replaces pickles, which execute whatever a file handed over by someone else
tells them to.

File layout (a zip archive written by :func:`numpy.savez`):

``__checkpoint__``
    A 0-d unicode array holding one JSON object::

        {"format": "nmbrl-checkpoint", "version": 1, "kind": "...", "meta": {...}, "tree": ...}

    ``kind`` says what the checkpoint holds (``"actor_critic_run"``, ``"agent"``,
    ``"world_model_training"``); ``meta`` is a small JSON object readable without
    the arrays (:func:`read_checkpoint_meta`); ``tree`` is the stored value in the
    encoding below.
``a0``, ``a1``, ...
    The arrays the tree refers to.

Encoding of the tree: ``None``, bools, ints, finite floats and strings are JSON
values; lists are JSON arrays; everything else is a JSON object with exactly one
tag key: ``{"__dict__": {...}}`` (a dict with string keys), ``{"__items__": [[k, v],
...]}`` (a dict with other keys), ``{"__tuple__": [...]}``, ``{"__float__": "nan"}``
(also ``"inf"``, ``"-inf"``), ``{"__array__": "a3"}``, ``{"__scalar__": "a4"}`` (a
NumPy scalar, stored as a 0-d array) and ``{"__bytes__": "a5"}`` (stored as a
uint8 array). So any nested dict/list/tuple of NumPy arrays (numeric, bool or
string dtypes), NumPy scalars, Python numbers, strings, bools, bytes and None
round-trips with its types.

Writes are atomic (temporary file in the same folder, flushed to disk, then
renamed over the old file), so an interrupted write leaves the previous checkpoint.
Reads validate the archive, the header, the format version and the kind, and every
failure is a :class:`~nmbrl_brian.errors.CheckpointError` with a one-line message.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from nmbrl_brian.errors import CheckpointError
from nmbrl_brian.results import atomic_write

#: Value of the header's ``format`` field.
FORMAT = "nmbrl-checkpoint"
#: Version written by this code; :func:`read_checkpoint` reads versions up to this one.
FORMAT_VERSION = 1
#: Archive member that holds the JSON header.
HEADER = "__checkpoint__"
_ARRAY_KINDS = "biufcUS"  # bool, int, uint, float, complex, unicode, bytes: no objects
_TAGS = ("__dict__", "__items__", "__tuple__", "__float__", "__array__", "__scalar__", "__bytes__")


class _Encoder:
    """Turns a value into JSON-able data, collecting its arrays."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def _store(self, array: np.ndarray, where: str) -> str:
        if array.dtype.kind not in _ARRAY_KINDS or array.dtype.names is not None:
            raise TypeError(f"{where}: a checkpoint cannot store arrays of dtype {array.dtype} (objects)")
        name = f"a{len(self.arrays)}"
        self.arrays[name] = array
        return name

    def encode(self, value: Any, where: str = "state") -> Any:
        # NumPy first: np.float64 is also a Python float, and keeps its type this way
        if isinstance(value, np.ndarray):
            return {"__array__": self._store(value, where)}
        if isinstance(value, np.generic):
            return {"__scalar__": self._store(np.asarray(value), where)}
        if value is None or isinstance(value, (bool, int, str)):
            return value
        if isinstance(value, float):
            return value if math.isfinite(value) else {"__float__": repr(value)}
        if isinstance(value, bytes):
            return {"__bytes__": self._store(np.frombuffer(value, dtype=np.uint8), where)}
        if isinstance(value, list):
            return [self.encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, tuple):
            return {"__tuple__": [self.encode(v, f"{where}[{i}]") for i, v in enumerate(value)]}
        if isinstance(value, dict):
            if all(isinstance(k, str) for k in value):
                return {"__dict__": {k: self.encode(v, f"{where}.{k}") for k, v in value.items()}}
            return {
                "__items__": [
                    [self.encode(k, f"{where} key"), self.encode(v, f"{where}[{k!r}]")]
                    for k, v in value.items()
                ]
            }
        raise TypeError(
            f"{where}: a checkpoint stores dicts, lists, tuples, NumPy arrays and scalars, numbers, "
            f"strings, bools, bytes and None, not {type(value).__name__}"
        )


def _decode(node: Any, arrays: dict[str, np.ndarray]) -> Any:
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    if isinstance(node, list):
        return [_decode(v, arrays) for v in node]
    if not isinstance(node, dict) or len(node) != 1 or next(iter(node)) not in _TAGS:
        raise ValueError(f"unknown tree node {str(node)[:60]!r}")
    tag, body = next(iter(node.items()))
    if tag == "__dict__":
        if not isinstance(body, dict):
            raise ValueError("__dict__ must hold an object")
        return {k: _decode(v, arrays) for k, v in body.items()}
    if tag == "__items__":
        return {_decode(k, arrays): _decode(v, arrays) for k, v in body}
    if tag == "__tuple__":
        if not isinstance(body, list):
            raise ValueError("__tuple__ must hold a list")
        return tuple(_decode(v, arrays) for v in body)
    if tag == "__float__":
        if body not in ("nan", "inf", "-inf"):
            raise ValueError(f"__float__ must be nan, inf or -inf, got {body!r}")
        return float(body)
    if not isinstance(body, str) or body not in arrays:
        raise ValueError(f"{tag} refers to a missing array {body!r}")
    array = arrays[body]
    if tag == "__array__":
        return array
    if tag == "__scalar__":
        if array.ndim != 0:
            raise ValueError(f"__scalar__ {body!r} is not 0-d")
        return array[()]
    if array.dtype != np.uint8 or array.ndim != 1:
        raise ValueError(f"__bytes__ {body!r} is not a 1-d uint8 array")
    return array.tobytes()


def _no_constants(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def write_checkpoint(path: str | Path, tree: Any, *, kind: str, meta: dict[str, Any] | None = None) -> Path:
    """Store ``tree`` at ``path`` as a data-only checkpoint, atomically.

    Parameters
    ----------
    path : str or Path
        Destination file (conventionally ending in ``.npz``; the name is kept as given).
    tree : object
        Nested dicts, lists and tuples of NumPy arrays and scalars, Python numbers,
        strings, bools, bytes and None.
    kind : str
        What the checkpoint holds; :func:`read_checkpoint` can insist on it.
    meta : dict, optional
        Small facts in plain JSON (e.g. ``env_steps``), readable without the arrays.

    Raises
    ------
    TypeError
        If ``tree`` holds something else (an object array, a class instance); nothing is written.
    ValueError
        If ``meta`` is not plain JSON (NaN included); nothing is written.
    """
    path = Path(path)
    encoder = _Encoder()
    header = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "kind": kind,
        "meta": dict(meta or {}),
        "tree": encoder.encode(tree),
    }
    text = json.dumps(header, allow_nan=False, separators=(",", ":"))
    members = {HEADER: np.array(text), **encoder.arrays}

    def write(f) -> None:
        np.savez(f, **members)
        f.flush()
        os.fsync(f.fileno())

    atomic_write(path, write)
    return path


def _open(path: Path) -> np.lib.npyio.NpzFile:
    if not path.is_file():
        raise CheckpointError(path, "no such file")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(
            path, "not an nmbrl checkpoint (not a complete .npz archive: truncated or foreign)"
        )
    return np.load(path, allow_pickle=False)


def _header(z: np.lib.npyio.NpzFile, path: Path, kind: str | None) -> dict[str, Any]:
    if HEADER not in z.files:
        raise CheckpointError(path, "not an nmbrl checkpoint (no header)")
    raw = z[HEADER]
    if raw.dtype.kind != "U" or raw.ndim != 0:
        raise CheckpointError(path, "not an nmbrl checkpoint (the header is not text)")
    header = json.loads(str(raw), parse_constant=_no_constants)
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CheckpointError(path, "not an nmbrl checkpoint (unknown header)")
    version = header.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= FORMAT_VERSION:
        raise CheckpointError(
            path, f"checkpoint format version {version!r}; this nmbrl reads versions 1 to {FORMAT_VERSION}"
        )
    if kind is not None and header.get("kind") != kind:
        raise CheckpointError(path, f"holds a {header.get('kind')!r} checkpoint, expected {kind!r}")
    if not isinstance(header.get("meta"), dict):
        raise CheckpointError(path, "damaged header (meta is not an object)")
    return header


def _guarded(path: Path, read) -> Any:
    """Run ``read()`` and turn every failure of a damaged or foreign file into one CheckpointError."""
    try:
        return read()
    except CheckpointError:
        raise
    except (
        zipfile.BadZipFile,
        zlib.error,
        OSError,
        EOFError,
        ValueError,
        KeyError,
        TypeError,
        RecursionError,
    ) as exc:
        detail = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise CheckpointError(path, f"damaged or foreign checkpoint ({detail})") from None


def read_checkpoint(path: str | Path, *, kind: str | None = None) -> Any:
    """Read the tree stored by :func:`write_checkpoint`.

    Parameters
    ----------
    path : str or Path
        The checkpoint file.
    kind : str, optional
        Refuse checkpoints of another kind.

    Raises
    ------
    CheckpointError
        One line naming the file and what is wrong: missing, truncated, not an
        nmbrl checkpoint, a newer format version, another kind, damaged content.
    """
    path = Path(path)

    def read() -> Any:
        with _open(path) as z:
            header = _header(z, path, kind)
            arrays = {name: z[name] for name in z.files if name != HEADER}
            return _decode(header["tree"], arrays)

    return _guarded(path, read)


def read_checkpoint_meta(path: str | Path, *, kind: str | None = None) -> dict[str, Any]:
    """The header's ``meta`` object (e.g. ``env_steps``) without reading the arrays."""
    path = Path(path)

    def read() -> dict[str, Any]:
        with _open(path) as z:
            return _header(z, path, kind)["meta"]

    return _guarded(path, read)
