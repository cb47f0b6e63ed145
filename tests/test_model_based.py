"""The model-based cycle: real steps, a model update, dreams; counted apart; resumable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nmbrl_brian.config import load_config
from nmbrl_brian.training.run import resume_training, run_training

CONFIGS = Path(__file__).resolve().parents[1] / "nmbrl_brian" / "configs"
TINY = [
    "network.n_recurrent=40",
    "total_env_steps=200",
    "eval_every=100",
    "eval_episodes=2",
    "checkpoint_every=100",
    "periods_per_run=200",
    "model_based.dream_steps=150",
    "model_based.horizon=30",
]


def tiny_config(model: str, *extra: str):
    # model_patience (make run's world-model stopping rule) is the spiking model's only
    no_passes = [] if model == "spiking" else ["model_based.model_patience=0"]
    return load_config(CONFIGS / "cartpole_mbrl.toml", [*TINY, f"model_based.model={model}", *no_passes, *extra])


@pytest.mark.parametrize("model", ["linear", "perfect"])
def test_cycle_counts_real_and_dreamed_steps_apart(tmp_path, model):
    run_dir = run_training(tiny_config(model), out=tmp_path)
    metrics = pd.read_csv(run_dir / "metrics.csv")
    current = metrics[metrics["policy"] == "current"]
    assert current["env_steps"].tolist() == [0, 100, 200], "one evaluation per cycle of 100 real steps"
    assert current["dream_steps"].tolist() == [0, 150, 300], "150 dreamed steps per cycle, counted apart"
    assert current["real_transitions"].tolist() == [0, 100, 200], "every real step joins the model's data"
    ended = current["dream_terminations"].tolist()
    # an untrained CartPole policy drops the pole within tens of steps: every cycle's 150 dreamed
    # steps end episodes by the termination, and no more of them than dreamed steps
    assert ended[0] == 0 and 0 < ended[1] < ended[2] <= 300, f"dreamed episodes ended: {ended}"
    assert (run_dir / "learning_curve.png").is_file() and (run_dir / "checkpoint.npz").is_file()


def test_resume_gives_the_same_metrics_as_an_uninterrupted_run(tmp_path):
    whole = run_training(tiny_config("linear"), out=tmp_path / "whole")
    first = run_training(tiny_config("linear", "total_env_steps=100"), out=tmp_path / "parts")
    resume_training(first, overrides=["total_env_steps=200"])
    a = pd.read_csv(whole / "metrics.csv").drop(columns="wall_s")
    b = pd.read_csv(first / "metrics.csv").drop(columns="wall_s")
    a, b = (
        a[a["policy"] == "current"].reset_index(drop=True),
        b[b["policy"] == "current"].reset_index(drop=True),
    )
    pd.testing.assert_frame_equal(a, b, obj="metrics of a run resumed after its first cycle")
    assert np.isfinite(a["return_mean"]).all()


def test_parallel_mode_dreams_in_advancing_model_versions(tmp_path):
    """--parallel: a dreamer process learns in the newest published model while this one acts and
    learns the model; metrics keep both step counts and the dreamer's model versions advance."""
    run_dir = run_training(
        tiny_config("linear", "model_based.parallel=true", "total_env_steps=300"), out=tmp_path
    )
    metrics = pd.read_csv(run_dir / "metrics.csv")
    current = metrics[metrics["policy"] == "current"]
    assert current["env_steps"].tolist() == [0, 100, 200, 300]
    assert current["dream_steps"].is_monotonic_increasing and current["dream_steps"].iloc[-1] > 0
    log = pd.read_csv(run_dir / "dreamer_log.csv")
    assert log["model_version"].is_monotonic_increasing, (
        f"model versions went back: {log['model_version'].tolist()}"
    )
    assert log["model_version"].iloc[-1] > log["model_version"].iloc[0], "the dreamer should see newer models"
    assert (log["dream_steps"].diff().dropna() == 150).all(), "each agent snapshot follows 150 dreamed steps"
    snapshots = sorted(p.name for p in (run_dir / "snapshots").iterdir())
    assert snapshots and all(name.endswith(".npz") for name in snapshots), "only whole snapshots are visible"


@pytest.mark.slow
@pytest.mark.standalone
def test_cycle_runs_under_cpp_standalone_from_one_build(tmp_path):
    """The whole cycle (real steps, model fit, dreams, evaluations) re-runs one compiled project."""
    from nmbrl_brian.devices import reset_device

    try:
        run_dir = run_training(tiny_config("linear", "device=cpp_standalone"), out=tmp_path)
    finally:
        reset_device()
    metrics = pd.read_csv(run_dir / "metrics.csv")
    current = metrics[metrics["policy"] == "current"]
    assert current["env_steps"].tolist() == [0, 100, 200], "one evaluation per cycle of 100 real steps"
    assert current["dream_steps"].tolist() == [0, 150, 300], "150 dreamed steps per cycle, counted apart"
    assert current["real_transitions"].tolist() == [0, 100, 200]
    assert np.isfinite(current["return_mean"]).all() and (current["return_mean"] >= 8).all()
    binaries = list(run_dir.rglob("main"))
    assert len(binaries) == 1, f"one standalone project per run, found {binaries}"


def test_stored_real_transitions_start_a_new_episode_at_every_cycle(tmp_path):
    """A cycle's real phase abandons the episode in progress: the stored transitions give the next
    real step a new episode id, so no episode id holds two episodes (time steps 0, 1, 2, ... and
    each observation the previous next observation)."""
    from nmbrl_brian.checkpoints import read_checkpoint
    from nmbrl_brian.training.actor_critic_trainer import CHECKPOINT_KIND

    config = tiny_config("linear", "total_env_steps=120", "eval_every=30", "checkpoint_every=30")
    run_dir = run_training(config, out=tmp_path)
    state = read_checkpoint(run_dir / "checkpoint.npz", kind=CHECKPOINT_KIND)
    data = {k: np.asarray(v) for k, v in state["agent"]["real_transitions"].items()}
    episode, timestep = data["episode"], data["timestep"]
    assert len(episode) == 120
    boundaries = [30, 60, 90]
    ends = data["terminated"] | data["truncated"]
    assert not ends[[b - 1 for b in boundaries]].all(), "no cycle ended mid-episode: the test shows nothing"
    for b in boundaries:
        assert episode[b] != episode[b - 1] and timestep[b] == 0, f"cycle boundary at step {b} kept the episode id"
    for e in np.unique(episode):
        rows = np.flatnonzero(episode == e)
        assert (np.diff(rows) == 1).all(), f"episode {e} is not contiguous"
        assert timestep[rows].tolist() == list(range(len(rows))), f"episode {e}: time steps not 0, 1, 2, ..."
        np.testing.assert_array_equal(
            data["obs"][rows[1:]], data["next_obs"][rows[:-1]], err_msg=f"episode {e} joins two episodes"
        )
    assert np.all(np.diff(np.unique(episode)) == 1), "episode ids count up by one"
