"""A tuning cut-off on the agent's population code: weak tuning values send nothing (fewer input events)."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest

from nmbrl_brian.agents.spiking_actor_critic import SpikingActorCritic
from nmbrl_brian.encoding import PopulationEncoder
from nmbrl_brian.envs import EnvironmentWrapper
from nmbrl_brian.envs.env_loop import EnvLoop
from nmbrl_brian.equations.population_code import EncodingConfig
from nmbrl_brian.errors import ConfigError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_spiking_actor_critic import AGENT, SMALL


def test_numpy_encoder_zeroes_values_below_the_cutoff_and_keeps_the_rest():
    obs = np.array([0.3, -0.5, 0.02, 1.0])
    full = PopulationEncoder(EncodingConfig(), 4)(obs)
    cut = PopulationEncoder(EncodingConfig(cutoff=0.01), 4)(obs)
    keep = full >= 0.01
    np.testing.assert_array_equal(cut[keep], full[keep])
    assert (cut[~keep] == 0).all() and (full[~keep] > 0).all()
    assert 8 <= keep.sum() <= 20, f"3-4 of 10 neurons per dimension stay active, got {keep.sum()} of 40"


def test_config_refuses_a_cutoff_outside_zero_one():
    with pytest.raises(ConfigError, match="encoding.cutoff"):
        EncodingConfig(cutoff=1.0)


def _agent(cutoff):
    env = EnvironmentWrapper()
    agent = SpikingActorCritic(
        env.observation_space,
        env.action_space,
        agent=AGENT,
        encoding=EncodingConfig(cutoff=cutoff),
        network=dataclasses.replace(SMALL, hold_input=True),
        seed=3,
        environment="equations",
        periods_per_run=100,
    )
    return agent, env


def test_brian2_code_applies_the_cutoff_and_saves_input_events():
    counts, xs = {}, {}
    for cutoff in (0.0, 0.01):
        agent, env = _agent(cutoff)
        agent.interact(EnvLoop(env, seed=0), max_steps=100)
        counts[cutoff] = agent.operation_counts().synaptic_events
        obs = np.asarray(agent.part.eprop.inputs.obs[:]).reshape(4, -1)[:, 0]
        xs[cutoff] = (np.asarray(agent.part.eprop.inputs.x[:]), obs)
    x, _ = xs[0.01]
    assert ((x == 0) | (x >= 0.01)).all() and (x == 0).sum() >= 20, "most inputs are silent with the cut-off"
    assert (xs[0.0][0] > 0).all(), "without a cut-off every input sends"
    assert counts[0.01] < 0.8 * counts[0.0], f"fewer synaptic events: {counts}"
