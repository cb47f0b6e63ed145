"""Shared fixtures: keep Brian2 global state (device, prefs, clock) from leaking between tests."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True)
def _restore_brian_state():
    import brian2

    saved_target = brian2.prefs.codegen.target
    saved_dt = brian2.defaultclock.dt
    yield
    from nmbrl_brian.devices import reset_device

    reset_device()
    brian2.prefs.codegen.target = saved_target
    brian2.defaultclock.dt = saved_dt
