"""``nmbrl run`` at its edges, each by subprocess: divergence, Ctrl-C, --out, --resume flags, env imports.

Every refusal: exit code 2, one stderr line naming the field, no traceback, no stray folder.
"""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nmbrl_brian.checkpoints import read_checkpoint, read_checkpoint_meta
from nmbrl_brian.config import load_config, load_config_json
from nmbrl_brian.errors import DivergenceError, check_finite
from nmbrl_brian.training.actor_critic_trainer import CHECKPOINT_FILE
from nmbrl_brian.training.callbacks import Callback
from nmbrl_brian.training.run import run_training

ROOT = Path(__file__).resolve().parents[1]
DENSE = ROOT / "nmbrl_brian" / "configs" / "cartpole_dense.toml"
TINY = ["total_env_steps=600", "eval_every=300", "eval_episodes=2", "checkpoint_every=300"]


def _nmbrl(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "nmbrl_brian", "run", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=cwd, env=env, check=False)


def _one_line_error(proc: subprocess.CompletedProcess, field: str) -> str:
    err = proc.stderr.strip()
    assert proc.returncode == 2, f"expected exit code 2, got {proc.returncode}: {err[-2000:]}"
    assert len(err.splitlines()) == 1, f"expected one stderr line, got {err!r}"
    assert field in err, f"the line should name {field!r}: {err!r}"
    assert "Traceback" not in err
    return err


def _tiny(*extra: str) -> list[str]:
    args = ["--config", str(DENSE)]
    for item in [*TINY, *extra]:
        args += ["--set", item]
    return args


def _listing(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*"))}


# ------------------------------------------------------------------------------------------
# Divergence


def test_huge_learning_rate_stops_with_the_variable_and_keeps_a_usable_checkpoint(tmp_path):
    args = _tiny("agent.actor_lr=1e6", "agent.critic_lr=1e6", "checkpoint_every=20")
    proc = _nmbrl(*args, "--out", "out", cwd=tmp_path)
    err = _one_line_error(proc, "td_error")
    step = int(re.search(r"at env step (\d+)", err).group(1))
    (run,) = (tmp_path / "out").iterdir()
    metrics = pd.read_csv(run / "metrics.csv")
    last = metrics.iloc[-1]
    assert bool(last.diverged) and last.diverged_variable == "td_error", f"last metrics row: {dict(last)}"
    assert last.env_steps == step and math.isnan(last.return_mean), (
        "the diverged row holds the step, no return"
    )
    assert not metrics.diverged.iloc[:-1].any(), "only the last row is marked diverged"

    saved = read_checkpoint_meta(run / CHECKPOINT_FILE)["env_steps"]
    assert 0 < saved < step and saved % 20 == 0, f"last good checkpoint at {saved}, divergence at {step}"
    named = f"last good checkpoint (env step {saved}): {run.relative_to(tmp_path) / CHECKPOINT_FILE}"
    assert named in err, f"the line should name the good checkpoint: {err}"
    theta = read_checkpoint(run / CHECKPOINT_FILE)["agent"]["theta"]
    assert np.isfinite(theta).all(), "the kept checkpoint should hold finite weights"
    # usable: resuming it replays the same run and diverges at the same step
    again = _one_line_error(_nmbrl("--resume", str(run), cwd=tmp_path), "td_error")
    assert again.split(";")[0] == err.split(";")[0], f"a resumed run should diverge identically: {again}"


class _Poison(Callback):
    """Writes NaN into the actor's bias once training passes ``at`` steps (TD error stays finite)."""

    every = 50

    def __init__(self, at: int):
        self.at = at

    def on_chunk_end(self, trainer):
        if trainer.env_steps == self.at:
            trainer.agent.params["actor_b"][0] = np.nan


def test_non_finite_weights_are_caught_before_the_next_checkpoint(tmp_path):
    cfg = load_config(
        DENSE, ["total_env_steps=2000", "eval_every=1000", "eval_episodes=2", "checkpoint_every=300"]
    )
    with pytest.raises(DivergenceError) as info:
        run_training(cfg, out=tmp_path, callbacks=(_Poison(at=400),))
    exc = info.value
    assert exc.variable.startswith("actor_"), f"a poisoned actor should be named, got {exc.variable!r}"
    assert exc.env_step == 600, (
        f"the checkpoint at 600 should refuse the NaN weights, got step {exc.env_step}"
    )
    (run,) = tmp_path.iterdir()
    assert read_checkpoint_meta(run / CHECKPOINT_FILE)["env_steps"] == 300, (
        "the checkpoint at 300 should be kept"
    )


def test_check_finite_names_the_entry():
    check_finite("w", {"a": np.ones(3), "n": np.arange(3), "s": "text"}, env_step=1)  # all finite: no error
    with pytest.raises(DivergenceError) as info:
        check_finite("w", {"a": np.ones(3), "b": np.array([[1.0, 2.0], [np.inf, 0.0]])}, env_step=9)
    assert str(info.value) == "training diverged: w.b[1, 0] is inf at env step 9", str(info.value)
    with pytest.raises(DivergenceError, match=r"^training diverged: delta is nan$"):
        check_finite("delta", float("nan"))


# ------------------------------------------------------------------------------------------
# --out, --resume flags


@pytest.mark.parametrize("target", ["a_file", "a_file/sub"])
def test_out_naming_a_file_is_refused(tmp_path, target):
    (tmp_path / "a_file").write_text("not a folder\n")
    proc = _nmbrl(*_tiny(), "--out", target, cwd=tmp_path)
    _one_line_error(proc, "--out")
    assert [p.name for p in tmp_path.iterdir()] == ["a_file"], "nothing should be created"
    assert (tmp_path / "a_file").read_text() == "not a folder\n", "the file must be left alone"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    return run_training(load_config(DENSE, TINY), out=tmp_path_factory.mktemp("finished"))


@pytest.mark.parametrize(
    "args, field",
    [
        (["--seed", "3"], "--seed"),
        (["--config", str(DENSE)], "--config"),
        (["--out", "elsewhere"], "--out"),
        (["--device", "runtime"], "--device"),
        (["--set", "agent.actor_lr=0.5"], "--set agent.actor_lr"),
        (["--set", "total_env_steps=300"], "total_env_steps"),  # fewer steps than already taken
    ],
)
def test_resume_refuses_what_would_change_the_run(tmp_path, finished_run, args, field):
    before = _listing(finished_run)
    proc = _nmbrl("--resume", str(finished_run), *args, cwd=tmp_path)
    _one_line_error(proc, field)
    assert _listing(finished_run) == before, "a refused resume must not touch the run folder"
    assert list(tmp_path.iterdir()) == [], "a refused resume must not create a folder"


# ------------------------------------------------------------------------------------------
# Ctrl-C, then resume with a longer budget


def test_ctrl_c_says_where_the_checkpoint_is_and_resume_continues(tmp_path):
    out = tmp_path / "out"
    args = _tiny("total_env_steps=100000000", "eval_every=5000", "checkpoint_every=2000")
    cmd = [sys.executable, "-m", "nmbrl_brian", "run", *args, "--out", str(out)]
    # the child must see SIGINT even if this test runs where it is ignored (a background job)
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # noqa: PLW1509 - no threads here
    )
    try:
        deadline = time.monotonic() + 120
        while not list(out.glob("*/metrics.csv")) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:  # pragma: no cover - only if the child hung
            proc.kill()
    err = err.strip()
    assert proc.returncode == 130, f"Ctrl-C should exit with 130, got {proc.returncode}: {err[-2000:]}"
    assert len(err.splitlines()) == 1 and "Traceback" not in err, f"expected one line: {err!r}"
    (run,) = out.iterdir()
    assert f"nmbrl run --resume {run}" in err and str(run / CHECKPOINT_FILE) in err, err
    saved = read_checkpoint_meta(run / CHECKPOINT_FILE)["env_steps"]
    assert f"env step {saved})" in err, f"the line should give the checkpoint's step {saved}: {err}"

    target = saved + 700
    proc = _nmbrl("--resume", str(run), "--set", f"total_env_steps={target}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"total_env_steps={target} (was 100000000)" in proc.stderr, f"say what changed: {proc.stderr!r}"
    assert load_config_json(run / "config.json").total_env_steps == target, "config.json should be updated"
    assert pd.read_csv(run / "metrics.csv").env_steps.iloc[-1] == target, (
        "the run should end at the new budget"
    )


def test_ctrl_c_right_after_a_checkpoint_reports_the_checkpoint_on_disk(tmp_path, monkeypatch):
    """A Ctrl-C landing after a checkpoint was renamed into place, before the trainer noted it:
    the message gives the step of the file that is there (a race seen under load)."""
    import nmbrl_brian.training.actor_critic_trainer as trainer_module
    from nmbrl_brian.errors import RunInterrupted
    from nmbrl_brian.training.run import run_training

    real_write = trainer_module.write_checkpoint

    def write_then_interrupt(path, state, *, kind, meta):
        real_write(path, state, kind=kind, meta=meta)
        if meta["env_steps"] >= 2000:
            raise KeyboardInterrupt

    monkeypatch.setattr(trainer_module, "write_checkpoint", write_then_interrupt)
    config = load_config(DENSE, [*TINY, "total_env_steps=100000", "checkpoint_every=2000"])
    with pytest.raises(RunInterrupted) as caught:
        run_training(config, out=tmp_path)
    (run,) = tmp_path.iterdir()
    on_disk = read_checkpoint_meta(run / CHECKPOINT_FILE)["env_steps"]
    assert on_disk == 2000 and caught.value.checkpoint_step == 2000, str(caught.value)
    assert f"last checkpoint (env step 2000) is {run / CHECKPOINT_FILE}" in str(caught.value)


# ------------------------------------------------------------------------------------------
# module:Env ids import code: only with --allow-env-import

MODULE = """
from pathlib import Path
Path(__file__).with_name("imported").touch()
import gymnasium
gymnasium.register("TinyPole-v0", entry_point="gymnasium.envs.classic_control:CartPoleEnv", max_episode_steps=20)
"""


def test_module_env_ids_need_an_explicit_opt_in(tmp_path):
    (tmp_path / "my_envs.py").write_text(MODULE)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    proc = _nmbrl(*_tiny("env_id=my_envs:TinyPole-v0"), "--out", "out", cwd=tmp_path, env=env)
    _one_line_error(proc, "env_id")
    assert "--allow-env-import" in proc.stderr, "the refusal should say how to opt in"
    assert not (tmp_path / "imported").exists(), "the module was imported without the opt-in"
    assert not (tmp_path / "out").exists(), "a refused env id must not create a results folder"

    proc = _nmbrl(
        *_tiny("env_id=my_envs:TinyPole-v0"), "--out", "out", "--allow-env-import", cwd=tmp_path, env=env
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "imported").exists(), "with the opt-in the module should be imported"
    (run,) = (tmp_path / "out").iterdir()
    assert pd.read_csv(run / "metrics.csv").return_mean.max() <= 20, "TinyPole-v0's time limit is 20 steps"
    # a resume needs the opt-in again: a run folder handed over must not import code by itself
    (tmp_path / "imported").unlink()
    proc = _nmbrl("--resume", str(run), cwd=tmp_path, env=env)
    _one_line_error(proc, "env_id")
    assert not (tmp_path / "imported").exists(), "resume imported the module without the opt-in"


# ------------------------------------------------------------------------------------------
# Fields a model-based run never reads are refused, not ignored


@pytest.mark.parametrize("item", ["world_model.periods_per_run=100"])
def test_model_based_run_refuses_world_model_fields_it_ignores(tmp_path, item):
    mbrl = ROOT / "nmbrl_brian" / "configs" / "cartpole_mbrl.toml"
    proc = _nmbrl("--config", str(mbrl), "--set", item, "--out", str(tmp_path / "out"), cwd=tmp_path)
    _one_line_error(proc, item.split("=")[0])
    assert not (tmp_path / "out").exists(), "a refused run writes no results folder"
