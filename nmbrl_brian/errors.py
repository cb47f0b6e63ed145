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
        msg = f"{field}: expected {allowed}"
        if got is not None:
            msg += f", got {got!r}"
        if note:
            msg += f" ({note})"
        super().__init__(msg)


class DeviceError(RuntimeError):
    """A Brian2 device cannot be used as requested (missing extra, network operation in standalone)."""
