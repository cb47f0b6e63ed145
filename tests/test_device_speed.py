"""Smoke test of experiments/device_speed.py: runtime and cpp_standalone, tiny budget."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from nmbrl_brian.equations.world_model import WorldModelConfig

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = "experiments/device_speed.py"


def _run(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, SCRIPT, *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


@pytest.mark.slow
@pytest.mark.standalone
def test_device_speed_quick(tmp_path):
    out = tmp_path / "ds"
    proc = _run("--quick", "--seeds", "1", "--out", str(out))
    assert proc.returncode == 0, f"script failed:\n{proc.stderr[-3000:]}"
    last = proc.stdout.strip().splitlines()[-1]
    figures = dict(item.split("=", 1) for item in last.split())
    for key in ("runtime_epoch_s", "cpp_epoch_s", "runtime_max_weight_diff"):
        assert key in figures, f"last line should hold {key}=..., got {last!r}"
    assert "cuda_epoch_s" not in figures, f"--quick should not run cuda_standalone by default: {last!r}"

    timing = pd.read_csv(out / "timing.csv")
    expected = ["device", "seed", "epoch", "wall_s", "includes_build", "n_transitions", "network_steps"]
    assert set(expected) <= set(timing.columns), f"timing.csv columns: {list(timing.columns)}"
    assert set(timing.device) == {"runtime", "cpp_standalone"}, f"devices in timing.csv: {set(timing.device)}"
    assert len(timing) == 4, f"expected 2 devices x 2 epochs, got {len(timing)} rows"
    assert (timing.wall_s > 0).all(), f"non-positive wall times:\n{timing}"
    assert timing.includes_build.tolist() == [True, False, True, False], (
        f"only epoch 0 should include the build: {timing.includes_build.tolist()}"
    )
    per_transition = WorldModelConfig().network.steps_per_env_step
    expected_steps = timing.n_transitions * per_transition + 1
    assert (timing.network_steps == expected_steps).all(), (
        f"network_steps {timing.network_steps.unique()} != transitions x {per_transition} + 1"
    )

    summary = pd.read_csv(out / "summary.csv").set_index("device")
    expected = ["seed", "first_epoch_s", "later_epoch_s_median", "one_step_nmse", "max_weight_diff_vs_cpp"]
    assert set(expected) <= set(summary.columns), f"summary.csv columns: {list(summary.columns)}"
    assert summary.loc["cpp_standalone", "max_weight_diff_vs_cpp"] == 0.0, "cpp vs itself should be 0"
    diff = summary.loc["runtime", "max_weight_diff_vs_cpp"]
    assert diff < 1e-9, f"runtime and cpp_standalone weights differ by {diff} after the same training"
    nmse = summary.one_step_nmse
    assert nmse.notna().all() and (nmse < 2.0).all(), f"one-step NMSE out of range:\n{nmse}"
    assert (out / "device_speed.png").is_file(), "device_speed.png was not written"


def test_device_speed_bad_device(tmp_path):
    out = tmp_path / "bad"
    proc = _run("--quick", "--seeds", "1", "--devices", "bogus", "--out", str(out), timeout=120)
    assert proc.returncode == 2, f"exit code {proc.returncode}, stderr:\n{proc.stderr}"
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --devices: "), f"stderr: {proc.stderr!r}"
    assert "bogus" in lines[0], f"the message should name the bad device: {lines[0]!r}"
    assert not out.exists(), "a rejected command created its output folder"
