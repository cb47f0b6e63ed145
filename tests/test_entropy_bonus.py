"""agent.entropy_bonus: the spiking agent's policy readouts climb the policy's entropy at each
decision (not gated by the TD error), and the energy meter counts those weight updates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nmbrl_brian.config import load_config
from nmbrl_brian.devices import select_device
from nmbrl_brian.envs import EnvironmentWrapper
from nmbrl_brian.envs.env_loop import EnvLoop
from nmbrl_brian.errors import ConfigError
from nmbrl_brian.training.run import build_agent

CONFIGS = Path(__file__).resolve().parents[1] / "nmbrl_brian" / "configs"
TINY = [
    "device=runtime",
    "environment=equations",
    "periods_per_run=100",
    "network.n_recurrent=20",
    # the actor-critic's own steps all but off: what moves the policy is the entropy bonus
    "agent.actor_lr=1e-12",
    "agent.critic_lr=1e-12",
]


def trained(bonus: float, steps: int = 150):
    """A tiny model-free CartPole agent whose policy starts peaked (biases +0.3, -0.3: logits about
    6 apart, the bias trace settling near 10), after ``steps``
    real training steps: the readout weights and biases before and after, and the agent."""
    select_device("runtime")
    config = load_config(CONFIGS / "cartpole_snn.toml", [*TINY, f"agent.entropy_bonus={bonus}"])
    env = EnvironmentWrapper()
    agent = build_agent(config, env.observation_space, env.action_space)
    readout, _ = agent.part.weight_variables()["b_out"]
    agent.loop.write({(readout, "b"): np.array([0.3, -0.3, 0.0])})
    before = agent.weights()
    agent.interact(EnvLoop(env, seed=0), max_steps=steps)
    return before, agent.weights(), agent


def test_entropy_bonus_flattens_a_peaked_policy_and_leaves_the_value_alone():
    before, after, _ = trained(0.0)
    assert after["b_out"] == pytest.approx(before["b_out"], abs=1e-6), "without the bonus nothing moves"
    before, after, agent = trained(0.5)
    b0, b1, value = after["b_out"]
    assert b0 - b1 < 0.6 - 0.01, f"the bonus narrows the gap between the logits' biases: {b0 - b1}"
    assert b0 + b1 == pytest.approx(0.0, abs=1e-6), "two actions: dH/dy_0 = -dH/dy_1"
    assert value == pytest.approx(0.0, abs=1e-6), "the value readout has no entropy step"
    syn_out = agent.part.eprop.syn_out
    role = np.asarray(agent.loop.value(agent.part.eprop.readout, "role"))[np.asarray(syn_out.j[:])]
    change = after["w_out"] - before["w_out"]
    assert np.abs(change[role == 0]).max() > 1e-3, "the policy readout weights move"
    np.testing.assert_allclose(change[role == 0], -change[role == 1], atol=1e-9)
    assert np.abs(change[role == 2]).max() < 1e-6


def test_entropy_bonus_updates_are_counted_once_per_period():
    counts = {}
    for bonus in (0.0, 0.5):
        _, _, agent = trained(bonus, steps=60)
        part = agent.part
        periods = agent.periods_by_phase()["real"]
        counts[bonus] = agent.operation_counts_by_phase()["real"].weight_updates / periods
        readouts = len(part.eprop.readout)
        td = sum(len(s) for s in part.td_synapses) + readouts
        extra = len(part.eprop.syn_out) + (len(part.direct.synapses) if part.direct else 0) + readouts
        assert counts[bonus] == td + (extra if bonus else 0), bonus


@pytest.mark.parametrize("value", [-0.1, float("inf"), True])
def test_entropy_bonus_must_be_a_finite_number_at_least_0(value):
    with pytest.raises(ConfigError) as error:
        load_config(CONFIGS / "cartpole_snn.toml", [f"agent.entropy_bonus={str(value).lower()}"])
    assert error.value.field == "agent.entropy_bonus"


def test_entropy_bonus_is_refused_for_the_dense_agent():
    with pytest.raises(ConfigError) as error:
        load_config(CONFIGS / "cartpole_dense.toml", ["agent.entropy_bonus=0.1"])
    assert error.value.field == "agent.entropy_bonus"
