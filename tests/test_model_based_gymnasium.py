"""The model-based agent on a gymnasium task (Acrobot-v1): the real environment is the gymnasium
part behind the switch (runtime only), dreams end and are rewarded by the task's rules."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from brian2 import Network, NeuronGroup, defaultclock, ms

from nmbrl_brian.checkpoints import read_checkpoint
from nmbrl_brian.config import default_overrides, load_config
from nmbrl_brian.errors import ConfigError
from nmbrl_brian.training.run import build_agent, resume_training, run_training
from nmbrl_brian.world_models.termination import AcrobotTermination

CONFIG = Path(__file__).resolve().parents[1] / "nmbrl_brian" / "configs" / "acrobot_mbrl.toml"
TINY = [
    "total_env_steps=60",
    "eval_every=30",
    "eval_episodes=1",
    "checkpoint_every=60",
    "periods_per_run=100",
    "network.n_recurrent=20",
    "model_based.dream_steps=40",
    "model_based.horizon=20",
    # a dreamed return is >= -20 with this horizon, so a stop at -80 would end every cycle's
    # dreaming before it starts
    "model_based.dream_stop_return=inf",
    "world_model.network.n_recurrent=20",
    "world_model.bias_neurons=2",
    "world_model.min_updates=60",
]


def test_acrobot_cycle_counts_its_real_steps_exactly_and_dreams(tmp_path):
    config = load_config(CONFIG, TINY)
    assert config.closed_loop_environment == "gymnasium"
    run_dir = run_training(config, out=tmp_path)
    metrics = pd.read_csv(run_dir / "metrics.csv")
    current = metrics[metrics["policy"] == "current"]
    assert current["env_steps"].tolist() == [0, 30, 60], "one evaluation per cycle of 30 real steps"
    assert current["real_transitions"].tolist() == current["env_steps"].tolist(), (
        "every real gymnasium step joins the model's data, once"
    )
    assert current["dream_steps"].tolist() == [0, 40, 80], "40 dreamed steps per cycle, counted apart"
    assert np.isfinite(current["return_mean"]).all()
    assert (current["return_mean"] <= 0).all(), "Acrobot's returns are -1 per step"


def test_acrobot_run_resumed_after_a_cycle_gives_the_same_metrics(tmp_path):
    """A cycle abandons the gymnasium episode in progress (a fresh episode with the next reset seed);
    a checkpoint keeps that count, so a resumed run replays the same episodes."""
    whole = run_training(load_config(CONFIG, [*TINY, "total_env_steps=90"]), out=tmp_path / "whole")
    first = run_training(load_config(CONFIG, TINY), out=tmp_path / "parts")  # abandoned once
    resume_training(first, overrides=["total_env_steps=90"])
    a, b = (pd.read_csv(run / "metrics.csv").drop(columns="wall_s") for run in (whole, first))
    a, b = (m[m["policy"] == "current"].reset_index(drop=True) for m in (a, b))
    pd.testing.assert_frame_equal(a, b, obj="metrics of an Acrobot run resumed after its first cycle")
    data = [read_checkpoint(run / "checkpoint.npz")["agent"]["real_transitions"] for run in (whole, first)]
    starts = [d["obs"][np.asarray(d["timestep"]) == 0] for d in data]
    assert len(starts[0]) == 3, "each cycle's real phase starts a fresh episode"
    assert len({tuple(s) for s in starts[0]}) == 3, "from a new reset seed each"
    np.testing.assert_array_equal(
        starts[0], starts[1], "the resumed run's episodes start where the whole run's do"
    )
    np.testing.assert_array_equal(data[0]["obs"], data[1]["obs"])


def test_auto_environment_is_gymnasium_for_acrobot_and_equations_for_cartpole():
    acrobot = load_config(CONFIG, [*TINY, "environment=auto"])
    assert acrobot.closed_loop_environment == "gymnasium"
    cartpole = load_config(CONFIG.with_name("cartpole_mbrl.toml"))
    assert cartpole.closed_loop_environment == "equations"


def test_model_based_gymnasium_on_standalone_is_a_config_error():
    with pytest.raises(ConfigError) as error:
        load_config(CONFIG, [*TINY, "device=cpp_standalone"])
    assert error.value.field == "environment"
    assert "\n" not in str(error.value)


def test_world_model_reward_must_be_learned_or_given():
    with pytest.raises(ConfigError) as error:
        load_config(CONFIG, [*TINY, "world_model.reward=maybe"])
    assert error.value.field == "world_model.reward"


def test_world_model_reward_is_refused_without_a_spiking_world_model():
    with pytest.raises(ConfigError) as error:
        load_config(  # (the file's whiten_state, checked before reward, back at its default)
            CONFIG,
            ["model_based.model=linear", "world_model.termination=auto", "world_model.whiten_state=true"],
        )
    assert error.value.field == "world_model.reward"


def _dreamed_episodes(reward: str):
    from nmbrl_brian.devices import select_device
    from nmbrl_brian.envs import EnvironmentWrapper
    from nmbrl_brian.world_models import collect_transitions

    select_device("runtime")
    # the task's reward alone (the file's shaping term off)
    config = load_config(CONFIG, [*TINY, f"world_model.reward={reward}", "agent.reward_shaping=0"])
    env = EnvironmentWrapper("Acrobot-v1")
    agent = build_agent(config, env.observation_space, env.action_space)
    data = collect_transitions(EnvironmentWrapper("Acrobot-v1"), None, 60, seed=1)
    model = agent.world_model
    model.prepare(data)
    # the reward readout predicts far from -1 whatever the state: its bias raised
    model.weights["b_out"] = np.asarray(model.weights["b_out"], dtype=float).copy()
    model.weights["b_out"][model.obs_dim] += 5.0
    agent.dream_for(60, agent.model_values(), start_states=data.obs[:5])
    episodes = agent.dream.episodes
    return np.asarray(episodes.episode_return[:]), np.asarray(episodes.episode_steps[:])


def test_given_reward_is_the_tasks_rule_in_dreams():
    """world_model.reward = "given": -1 per dreamed step (Acrobot; 0 on a terminating step) whatever
    the model's reward readout says; "learned": that readout (here far from -1)."""
    given, steps = _dreamed_episodes("given")
    assert len(given) >= 2
    assert np.all((given == -steps) | (given == -steps + 1)), f"returns {given} for lengths {steps}"
    learned, steps = _dreamed_episodes("learned")
    assert len(learned) >= 2 and not np.all((learned == -steps) | (learned == -steps + 1))


def test_acrobot_termination_and_reward_code_agree_with_numpy_and_gymnasium():
    """The Brian2 code of the rules (observation cos t1, sin t1, cos t2, sin t2, w1, w2) against the
    NumPy rule and gymnasium's own: terminal when -cos t1 - cos(t1 + t2) > 1, reward -1 else 0."""
    rng = np.random.default_rng(0)
    n = 2000
    t1, t2 = rng.uniform(-np.pi, np.pi, n), rng.uniform(-np.pi, np.pi, n)
    w1, w2 = rng.uniform(-4 * np.pi, 4 * np.pi, n), rng.uniform(-9 * np.pi, 9 * np.pi, n)
    obs = np.stack([np.cos(t1), np.sin(t1), np.cos(t2), np.sin(t2), w1, w2], axis=1)
    rule = AcrobotTermination.from_env()
    expected = -np.cos(t1) - np.cos(t1 + t2) > 1.0  # gymnasium's _terminal on the angles
    assert 0.1 < expected.mean() < 0.9, "both outcomes are tested"
    np.testing.assert_array_equal(rule(obs), expected)

    eqs = "".join(f"s_{d} : 1\n" for d in range(6)) + "term : 1\nrew : 1\n"
    group = NeuronGroup(n, eqs, namespace=rule.namespace(), clock=defaultclock)
    for d in range(6):
        setattr(group, f"s_{d}", obs[:, d])
    group.run_regularly(
        f"failed = {rule.brian2_code()}\nterm = failed\nrew = {rule.reward_code()}\n", dt=defaultclock.dt
    )
    Network(group).run(1 * ms)
    np.testing.assert_array_equal(np.asarray(group.term[:]).astype(bool), rule(obs))
    np.testing.assert_array_equal(np.asarray(group.rew[:]), np.where(expected, 0.0, -1.0))


def test_dream_shaping_adds_the_potential_term_to_each_dreamed_reward(monkeypatch):
    """agent.reward_shaping = k: each dreamed step's reward is the task's (-1, 0 on a
    terminating step) plus k (gamma Phi(s') - Phi(s)), Phi the free end's height, on the very
    transitions the dream produced (the first of an episode too: Phi of its real start state)."""
    from nmbrl_brian.devices import select_device
    from nmbrl_brian.envs import EnvironmentWrapper
    from nmbrl_brian.training import phases
    from nmbrl_brian.world_models import collect_transitions

    select_device("runtime")
    k, gamma = 2.5, 0.9
    config = load_config(CONFIG, [*TINY, f"agent.reward_shaping={k}", f"agent.gamma={gamma}"])
    env = EnvironmentWrapper("Acrobot-v1")
    agent = build_agent(config, env.observation_space, env.action_space)
    records = []
    run_phase = phases.run_phase

    def recording(agent, phase):
        if phase.name != "dream":
            return run_phase(agent, phase)
        counter = phase.counter
        return run_phase(
            agent, replace(phase, counter=lambda r: records.append(r[agent.dream.prefix]) or counter(r))
        )

    monkeypatch.setattr(phases, "run_phase", recording)
    data = collect_transitions(EnvironmentWrapper("Acrobot-v1"), None, 60, seed=1)
    agent.world_model.prepare(data)
    agent.dream_for(60, agent.model_values(), start_states=data.obs[:5])
    obs, next_obs, reward, terminated = (
        np.concatenate([getattr(r, name) for r in records])
        for name in ("obs", "next_obs", "reward", "terminated")
    )
    assert len(reward) == 60
    task = np.where(terminated, 0.0, -1.0)
    height = AcrobotTermination().potential
    expected = task + k * (gamma * height(next_obs) - height(obs))
    np.testing.assert_allclose(reward, expected, rtol=1e-9, atol=1e-9)
    assert np.ptp(reward - task) > 0.01, "the shaping term varies along the dream"


def test_reward_shaping_is_refused_where_the_task_has_no_potential_or_for_the_dense_agent():
    with pytest.raises(ConfigError) as error:
        build_agent(
            load_config(CONFIG.with_name("cartpole_mbrl.toml"), ["agent.reward_shaping=1"]),
            *_spaces("CartPole-v1"),
        )
    assert error.value.field == "agent.reward_shaping"
    for bad in (["agent.reward_shaping=-1"], ["agent.kind=dense_actor_critic", "agent.reward_shaping=1"]):
        with pytest.raises(ConfigError) as error:
            load_config(CONFIG, [*TINY, *bad])
        assert error.value.field == "agent.reward_shaping"


def test_model_free_reward_shaping_shapes_the_real_steps_it_learns_from_and_no_evaluation(
    monkeypatch, tmp_path
):
    """agent.reward_shaping = k on the model-free agent: each real training step's reward is the
    task's plus k (gamma Phi(s') - Phi(s)); evaluation episodes score the task's reward alone."""
    from nmbrl_brian.training import phases

    k, gamma = 2.0, 0.95
    config = load_config(
        CONFIG.with_name("acrobot_snn.toml"),
        [
            "total_env_steps=40",
            "eval_every=40",
            "eval_episodes=1",
            "checkpoint_every=0",
            "periods_per_run=100",
            "network.n_recurrent=20",
            f"agent.reward_shaping={k}",
            f"agent.gamma={gamma}",
        ],
    )
    records = {"real": [], "evaluation": []}
    run_phase = phases.run_phase

    def recording(agent, phase):
        counter = phase.counter

        def keep(r):
            records.setdefault(phase.name, []).append(r[agent.env_part.prefix])
            return counter(r)

        return run_phase(agent, replace(phase, counter=keep))

    monkeypatch.setattr(phases, "run_phase", recording)
    run_training(config, out=tmp_path)
    obs, next_obs, reward, terminated = (
        np.concatenate([getattr(r, name) for r in records["real"]])
        for name in ("obs", "next_obs", "reward", "terminated")
    )
    assert len(reward) == 40
    task = np.where(terminated, 0.0, -1.0)
    height = AcrobotTermination().potential
    np.testing.assert_allclose(
        reward, task + k * (gamma * height(next_obs) - height(obs)), rtol=1e-9, atol=1e-9
    )
    evaluated = np.concatenate([r.reward for r in records["evaluation"]])
    assert len(evaluated) > 0 and set(np.unique(evaluated)) <= {-1.0, 0.0}, (
        "evaluations score the task's reward"
    )


def _spaces(env_id):
    from nmbrl_brian.envs import EnvironmentWrapper

    env = EnvironmentWrapper(env_id)
    return env.observation_space, env.action_space


def test_perfect_model_dreams_in_acrobots_equations_and_is_refused_without_them():
    """model_based.model = "perfect" on Acrobot: the dream steps by Acrobot's equations
    (tests/test_dream.py checks them against gymnasium), ends by its rule and rewards by it; a task
    without equations (MountainCar) is refused with the field named."""
    from nmbrl_brian.devices import select_device
    from nmbrl_brian.envs import EnvironmentWrapper

    select_device("runtime")
    perfect = ["model_based.model=perfect", *default_overrides(CONFIG, "world_model")]
    tiny = [o for o in TINY if not o.startswith("world_model.")]
    config = load_config(CONFIG, [*tiny, *perfect, "agent.reward_shaping=0"])
    env = EnvironmentWrapper("Acrobot-v1")
    agent = build_agent(config, env.observation_space, env.action_space)
    assert agent.world_model is None
    # swung up (free end at 0.965, the bar at 1) and moving: some dreamed episodes cross the bar
    t1, t2, w1, w2 = 2.4, -0.6, 3.0, -4.0
    start = np.array([np.cos(t1), np.sin(t1), np.cos(t2), np.sin(t2), w1, w2])
    agent.dream_for(60, agent.model_values(), start_states=start[None, :])
    returns = np.asarray(agent.dream.episodes.episode_return[:])
    steps = np.asarray(agent.dream.episodes.episode_steps[:])
    ended = returns == -steps + 1  # -1 a step, 0 on the terminating one
    assert np.all(ended | ((returns == -steps) & (steps == 20))), f"returns {returns}, lengths {steps}"
    assert ended.sum() >= 1 and agent.dream_terminations == ended.sum(), "episodes end by Acrobot's rule"
    with pytest.raises(ConfigError) as error:
        mc = load_config(CONFIG, [*tiny, *perfect, "agent.reward_shaping=0", "env_id=MountainCar-v0"])
        build_agent(mc, env.observation_space, env.action_space)
    assert error.value.field in ("model_based.model", "env_id")
