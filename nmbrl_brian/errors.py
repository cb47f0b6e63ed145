"""Errors with one-line messages that name the offending field and what is allowed."""

from __future__ import annotations

from typing import Any


class ConfigError(ValueError):
    """A configuration value is invalid.

    The message is one line: ``<field>: expected <allowed>, got <value>``. The CLI
    prints it and exits with code 2 before anything is written.
    """

    def __init__(self, field: str, allowed: str, got: Any = None, *, note: str = ""):
        self.field = field
        self.allowed = allowed
        self.got = got
        self.note = note
        msg = f"{field}: expected {allowed}"
        if got is not None:
            msg += f", got {got!r}"
        if note:
            msg += f" ({note})"
        super().__init__(msg)


class DeviceError(RuntimeError):
    """A Brian2 device cannot be used as requested (missing extra, network operation in standalone)."""


class CheckpointError(ValueError):
    """A checkpoint file cannot be used: missing, truncated, foreign, too new or not this run's.

    The message is one line: ``checkpoint <path>: <what is wrong>``. The CLI prints it
    and exits with code 2.
    """

    def __init__(self, path: Any, reason: str):
        self.path = path
        self.reason = reason
        super().__init__(f"checkpoint {path}: {reason}")


class DivergenceError(RuntimeError):
    """Learning diverged: a weight, readout or TD error is no longer finite.

    Raised by :func:`check_finite`. ``env_step`` may be None when the raiser does not
    know it; the trainer fills it in, and adds ``note`` (where the last good
    checkpoint is). The message is one line.
    """

    def __init__(self, variable: str, value: Any, env_step: int | None = None, *, note: str = ""):
        self.variable = variable
        self.value = value
        self.env_step = env_step
        self.note = note
        super().__init__(variable)

    def __str__(self) -> str:
        at = f" at env step {self.env_step}" if self.env_step is not None else ""
        msg = f"training diverged: {self.variable} is {self.value}{at}"
        return f"{msg}; {self.note}" if self.note else msg


def check_finite(name: str, values: Any, env_step: int | None = None) -> None:
    """Raise :class:`DivergenceError` naming the first non-finite entry of ``values``.

    Parameters
    ----------
    name : str
        The variable's name in the message, e.g. ``"critic_w"`` or ``"td_error"``.
    values : number, array, or dict/list/tuple of them
        What to check; dict entries are named ``name.key``, sequence items ``name[i]``.
        Non-numeric entries (strings, None, integer arrays) are finite by definition.
    env_step : int, optional
        The environment step the values belong to (the trainer fills it in if None).
    """
    import numpy as np

    if isinstance(values, dict):
        for key, value in values.items():
            check_finite(f"{name}.{key}", value, env_step)
        return
    if isinstance(values, (list, tuple)) and not all(isinstance(v, (int, float)) for v in values):
        for i, value in enumerate(values):
            check_finite(f"{name}[{i}]", value, env_step)
        return
    try:
        array = np.asarray(values)
    except (TypeError, ValueError):  # pragma: no cover - ragged or exotic input
        return
    if array.dtype.kind not in "fc":
        return
    finite = np.isfinite(array)
    if finite.all():
        return
    index = np.unravel_index(int(np.argmin(finite.ravel())), array.shape) if array.ndim else ()
    where = f"{name}[{', '.join(str(int(i)) for i in index)}]" if array.size > 1 else name
    raise DivergenceError(where, array[index].item(), env_step)


class RunInterrupted(KeyboardInterrupt):
    """Training was interrupted (Ctrl-C); says where the last checkpoint is and how to resume.

    A :class:`KeyboardInterrupt`, so code that expects Ctrl-C still sees one.
    """

    def __init__(
        self, run_dir: Any, env_steps: int, checkpoint: Any = None, checkpoint_step: int | None = None
    ):
        self.run_dir = run_dir
        self.env_steps = env_steps
        self.checkpoint = checkpoint
        self.checkpoint_step = checkpoint_step
        if checkpoint is None:
            msg = f"interrupted at env step {env_steps}; no checkpoint was written, so there is nothing to resume"
        else:
            msg = (
                f"interrupted at env step {env_steps}; last checkpoint (env step {checkpoint_step}) is "
                f"{checkpoint}; continue with: nmbrl run --resume {run_dir}"
            )
        super().__init__(msg)


class WorkerError(RuntimeError):
    """A worker process of a run (e.g. the dreamer of ``--parallel``) stopped with an error.

    The message is one line naming the worker, its exit code and the last checkpoint.
    """


class ResultsWriteError(OSError):
    """A results file (metrics, config, checkpoint, plot) could not be written, e.g. a full disk.

    An :class:`OSError` with the cause's ``errno``; the message is one line naming the
    file and the cause. The file's previous version (if any) is kept: writes are atomic.
    The CLI adds where the last checkpoint is and how to resume, and exits with code 1.
    """

    def __init__(self, path: Any, cause: OSError):
        super().__init__(cause.errno, cause.strerror or str(cause), str(path))
        self.path = path
        self.cause = cause

    def __str__(self) -> str:
        import errno as errno_names

        code = errno_names.errorcode.get(self.errno, str(self.errno)) if self.errno is not None else "?"
        return f"cannot write {self.path}: {self.strerror} ({code}); its previous version is kept"
