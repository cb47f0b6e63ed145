"""Correctness fixes, each pinned by a test: seeded first episodes, evaluation seeds, results-file
modes, a full disk, the switch and the untrained dream (no NaN), learned termination in dreams."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import brian2
import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
from brian2 import Network, NeuronGroup, ms

from nmbrl_brian.checkpoints import read_checkpoint, read_checkpoint_meta, write_checkpoint
from nmbrl_brian.config import load_config
from nmbrl_brian.devices import select_device
from nmbrl_brian.envs import EnvironmentWrapper
from nmbrl_brian.equations.environment import RESET, STEP
from nmbrl_brian.parts import CartPolePart
from nmbrl_brian.parts.dream import DreamPart, PerfectCartPole
from nmbrl_brian.parts.switch import EnvironmentSwitch
from nmbrl_brian.results import atomic_write, write_csv_atomic
from nmbrl_brian.envs.env_loop import EnvLoop
from nmbrl_brian.training.run import build_agent
from nmbrl_brian.world_models.termination import CartPoleTermination

CONFIGS = Path(__file__).resolve().parents[1] / "nmbrl_brian" / "configs"
DENSE = CONFIGS / "cartpole_dense.toml"
MB_TINY = [
    "network.n_recurrent=40",
    "periods_per_run=200",
    "model_based.dream_steps=60",
    "model_based.horizon=30",
]
WM_TINY = ["world_model.network.n_recurrent=20", "world_model.bias_neurons=2"]


def gym_reset(seed: int) -> np.ndarray:
    return gym.make("CartPole-v1").reset(seed=seed)[0].astype(float)


def recording(monkeypatch) -> list:
    """Every RunRecord of the agent's real environment, as the phases account them."""
    from nmbrl_brian.training import phases

    records: list = []
    account = phases.account

    def keep(agent, loop, record):
        records.append(record)
        return account(agent, loop, record)

    monkeypatch.setattr(phases, "account", keep)
    return records


def episode_starts(records) -> np.ndarray:
    """The first observation of every episode the records saw start (in order)."""
    obs = np.concatenate([r.obs for r in records])
    lengths = np.concatenate([r.episode_length for r in records])
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    return obs[starts]


# ------------------------------------------------------------------------------------------
# C1, C2: a fresh loop or phase starts with a seeded reset; evaluation episode k uses seed base + k


def test_first_episodes_start_from_their_seeded_resets(monkeypatch):
    """Model-based agent (real CartPole equations behind the switch): the first training episode
    starts from gymnasium's reset(seed), not from the all-zero state; evaluation episode k starts
    from reset(base + k), at step 0 and again after training (no stale reset counter)."""
    select_device("runtime")
    config = load_config(CONFIGS / "cartpole_mbrl.toml", [*MB_TINY, "model_based.model=linear", "model_based.model_patience=0"])
    env = EnvironmentWrapper()
    agent = build_agent(config, env.observation_space, env.action_space)
    records = recording(monkeypatch)

    agent.interact(EnvLoop(env, seed=1000), max_episodes=4, learn=False)
    expected = np.array([gym_reset(1000 + k) for k in range(4)])
    np.testing.assert_allclose(episode_starts(records)[:4], expected, rtol=0, atol=1e-7)

    records.clear()
    agent.interact(EnvLoop(env, seed=100), max_steps=40)
    assert np.abs(records[0].obs[0]).max() > 0, "the first training step starts from the zero state"
    np.testing.assert_allclose(records[0].obs[0], gym_reset(100), rtol=0, atol=1e-7)

    records.clear()
    agent.interact(EnvLoop(env, seed=2000), max_episodes=3, learn=False)
    expected = np.array([gym_reset(2000 + k) for k in range(3)])
    np.testing.assert_allclose(episode_starts(records)[:3], expected, rtol=0, atol=1e-7)


def test_switch_shows_its_environments_ports_before_the_head_reads_them():
    """A fresh switch: the ports the head reads in the first period are the real environment's
    (``needs_reset = 1``: the first command is a reset), and after ``use_dream`` changes the
    first period already shows the dream's."""
    brian2.prefs.codegen.target = "numpy"
    real = CartPolePart(period=10 * ms, seeds=[4], resets_per_run=20, prefix="c1real")
    dream = DreamPart(
        4,
        2,
        PerfectCartPole(),
        period=10 * ms,
        horizon=50,
        termination=CartPoleTermination.from_env(),
        starts_per_run=20,
        prefix="c1dream",
    )
    switch = EnvironmentSwitch(real, dream, prefix="c1switch")
    # a stand-in head at the head's slot that copies what it reads of the switch's ports
    head = NeuronGroup(
        1,
        "command : integer\naction : integer\nneeds_reset : integer (linked)\nseen : integer",
        clock=real.clock,
        name="c1head",
    )
    head.needs_reset = brian2.linked_var(switch.env, "needs_reset")
    head.run_regularly("seen = needs_reset", clock=real.clock, when="start", order=1)
    switch.connect_agent(head)
    net = Network(head, *switch.objects, *real.objects, *dream.objects)
    net.run(10 * ms)
    assert head.seen[0] == 1, "the first period must see needs_reset = 1 (reset first)"
    head.command = RESET
    net.run(10 * ms)
    head.command = STEP
    net.run(10 * ms)
    assert head.seen[0] == 0, "after the reset the real episode runs"
    switch.env.use_dream = 1
    dream.env.needs_reset = 1
    net.run(10 * ms)
    assert head.seen[0] == 1, "the first dream period sees the dream's needs_reset"


# ------------------------------------------------------------------------------------------
# D: a NaN of the environment not in use never reaches the agent; the untrained dream is finite


@pytest.mark.parametrize("target", ["numpy", "cython"])
def test_switch_does_not_pass_on_a_nan_of_the_environment_not_in_use(target):
    brian2.prefs.codegen.target = target
    real = CartPolePart(period=10 * ms, seeds=[4], resets_per_run=20, prefix=f"nan{target}real")
    dream = DreamPart(
        4,
        2,
        PerfectCartPole(),
        period=10 * ms,
        horizon=50,
        termination=CartPoleTermination.from_env(),
        starts_per_run=20,
        prefix=f"nan{target}dream",
    )
    switch = EnvironmentSwitch(real, dream, prefix=f"nan{target}switch")
    head = NeuronGroup(1, "command : integer\naction : integer", clock=real.clock, name=f"nan{target}head")
    switch.connect_agent(head)
    net = Network(head, *switch.objects, *real.objects, *dream.objects)
    for table, values in real.tables(lambda g, v: np.asarray(getattr(g, v)[:]), 1).items():
        table.values[:] = values
    dream.obs_port.obs = np.nan
    dream.env.reward = np.nan
    head.command = RESET
    net.run(10 * ms)
    assert np.isfinite(switch.obs_port.obs[:]).all() and np.isfinite(switch.env.reward[:]).all()
    np.testing.assert_allclose(switch.obs_port.obs[:], real.initial_state(4), atol=1e-7)


def test_untrained_spiking_dream_stays_finite_while_the_real_environment_runs():
    """Under standalone every part computes in every run: the dream with its spiking predictor
    (never fitted: the code's initial values) runs beside the real phase. Here, in runtime,
    all parts compute as the binary would; the dream, the switch and the agent stay finite."""
    select_device("runtime")
    config = load_config(CONFIGS / "cartpole_mbrl.toml", [*MB_TINY, *WM_TINY])
    env = EnvironmentWrapper()
    agent = build_agent(config, env.observation_space, env.action_space)
    values = {
        **agent.part.mode(learning=True, explore=True),
        **agent.env_part.new_episode(),
        **agent.switch.select(dream=False),
    }
    agent.loop.run(30, values, active=None)  # every part computes, as in a standalone run
    value = agent.loop.value
    for group, name in [
        (agent.dream.obs_port, "obs"),
        (agent.dream.obs_port, "obs_next"),
        (agent.dream.env, "reward"),
        (agent.dream.env, "reward_next"),
        (agent.predictor.decoder, "y_period"),
        (agent.switch.obs_port, "obs"),
        (agent.switch.env, "reward"),
        (agent.part.head, "value"),
    ]:
        assert np.isfinite(value(group, name)).all(), f"{group.name}.{name} is not finite"
    assert np.abs(value(agent.switch.obs_port, "obs")).max() > 0, "the real environment ran"


# ------------------------------------------------------------------------------------------
# B: world_model.termination = "learned" ends dreamed episodes by the learned readout


def _dream_lengths(termination: str, tmp_path) -> np.ndarray:
    from nmbrl_brian.world_models import collect_transitions

    select_device("runtime")
    config = load_config(
        CONFIGS / "cartpole_mbrl.toml",
        [*MB_TINY, *WM_TINY, f"world_model.termination={termination}"],
    )
    env = EnvironmentWrapper()
    agent = build_agent(config, env.observation_space, env.action_space)
    data = collect_transitions(EnvironmentWrapper(), None, 60, seed=1)
    model = agent.world_model
    model.prepare(data)
    if model.learns_termination:
        # the termination readout says "done" whatever the state: its bias far above 0.5
        model.weights["b_out"] = np.asarray(model.weights["b_out"], dtype=float).copy()
        model.weights["b_out"][model.obs_dim + 1] = 50.0
    agent.dream_for(40, agent.model_values(), start_states=data.obs[:5])
    return np.asarray(agent.dream.episodes.episode_steps[:])


def test_learned_termination_ends_the_dream_where_the_readout_says(tmp_path):
    learned = _dream_lengths("learned", tmp_path)
    given = _dream_lengths("auto", tmp_path)  # CartPole's rule
    assert len(learned) >= 10 and (learned == 1).all(), f"learned 'done' at once: {learned}"
    assert len(given) and given.max() > 1, f"the task's rule gives longer dreamed episodes: {given}"


# ------------------------------------------------------------------------------------------
# C3: results files get the user's umask


def test_results_files_are_created_with_the_users_umask(tmp_path):
    old = os.umask(0o022)
    try:
        config = load_config(DENSE)
        config.to_json(tmp_path / "config.json")
        write_csv_atomic(pd.DataFrame({"a": [1]}), tmp_path / "metrics.csv")
        write_checkpoint(tmp_path / "checkpoint.npz", {"x": np.zeros(3)}, kind="test")
        for name in ("config.json", "metrics.csv", "checkpoint.npz"):
            mode = stat.S_IMODE((tmp_path / name).stat().st_mode)
            assert mode == 0o644, f"{name}: mode {oct(mode)} under umask 022"
        os.umask(0o077)
        atomic_write(tmp_path / "private.txt", lambda f: f.write(b"x"))
        assert stat.S_IMODE((tmp_path / "private.txt").stat().st_mode) == 0o600
        assert os.umask(0o077) == 0o077, "the umask is left as it was"
    finally:
        os.umask(old)


# ------------------------------------------------------------------------------------------
# C4: a full disk: one line naming the file, the checkpoint on disk kept, the resume command


def test_full_disk_at_the_second_checkpoint_says_how_to_resume(tmp_path, monkeypatch, capsys):
    import nmbrl_brian.checkpoints as checkpoints_module
    from nmbrl_brian.cli import main

    real_write = checkpoints_module.atomic_write
    calls = []

    def second_checkpoint_fails(path, write):
        if Path(path).name == "checkpoint.npz":
            calls.append(path)
            if len(calls) == 2:

                def no_space(f):
                    f.write(b"PK partial")
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

                return real_write(path, no_space)
        return real_write(path, write)

    monkeypatch.setattr(checkpoints_module, "atomic_write", second_checkpoint_fails)
    args = ["run", "--config", str(DENSE), "--out", str(tmp_path)]
    for item in ["total_env_steps=600", "eval_every=300", "eval_episodes=2", "checkpoint_every=300"]:
        args += ["--set", item]
    code = main(args)
    err = capsys.readouterr().err.strip()
    (run_dir,) = tmp_path.iterdir()
    checkpoint = run_dir / "checkpoint.npz"
    assert code == 1, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert f"cannot write {checkpoint}" in err and "No space left on device (ENOSPC)" in err, err
    assert f"last checkpoint (env step 0) is {checkpoint}" in err, err
    assert err.endswith(f"continue with: nmbrl run --resume {run_dir}"), err
    assert read_checkpoint_meta(checkpoint)["env_steps"] == 0, "the first checkpoint (step 0) is kept"
    read_checkpoint(checkpoint)
    assert not list(run_dir.glob(".*.tmp")), "no temporary file is left behind"


@pytest.mark.slow
@pytest.mark.standalone
def test_spiking_model_cycle_under_cpp_standalone_stays_finite(tmp_path):
    """Issue 17: under cpp_standalone every part computes in every run, so the untrained dream
    ran beside the first real phase; its NaN reached the agent through the switch and the run
    diverged at real step 100. Two cycles with a tiny spiking world model now stay finite."""
    from nmbrl_brian.devices import reset_device
    from nmbrl_brian.training.run import run_training

    config = load_config(
        CONFIGS / "cartpole_mbrl.toml",
        [
            *MB_TINY,
            *WM_TINY,
            "device=cpp_standalone",
            "total_env_steps=200",
            "eval_schedule=[100, 200]",
            "eval_episodes=2",
            "checkpoint_every=100",
            "stop_at_return=inf",
            "world_model.epochs=1",
            "world_model.min_updates=0",
        ],
    )
    try:
        run_dir = run_training(config, out=tmp_path)
    finally:
        reset_device()
    metrics = pd.read_csv(run_dir / "metrics.csv")
    current = metrics[metrics["policy"] == "current"]
    assert current["env_steps"].tolist() == [0, 100, 200], "the run got past the first real phase"
    assert "diverged" not in metrics or not metrics["diverged"].fillna(False).astype(bool).any()
    assert np.isfinite(current["return_mean"]).all()
