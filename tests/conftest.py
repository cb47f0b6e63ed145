"""Shared fixtures: keep Brian2 global state (device, prefs, clock) from leaking between tests."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True, scope="session")
def _session_build_cache(tmp_path_factory):
    """Standalone builds are cached in a folder of this session, not the user's (unless NMBRL_BUILD_CACHE is set)."""
    if "NMBRL_BUILD_CACHE" in os.environ:
        yield
        return
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NMBRL_BUILD_CACHE", str(tmp_path_factory.mktemp("build_cache")))
        yield


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
