"""The spiking actor-critic: bridge bookkeeping, learning-rule equations, determinism, learning."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from brian2 import Clock, ms

from nmbrl_brian.agents.config import AgentConfig
from nmbrl_brian.agents.spiking_actor_critic import SpikingActorCritic
from nmbrl_brian.config import load_config
from nmbrl_brian.devices import select_device
from nmbrl_brian.encoding import EncodingConfig
from nmbrl_brian.envs import EnvironmentWrapper
from nmbrl_brian.envs.brian_bridge import EnvironmentBridge
from nmbrl_brian.errors import ConfigError
from nmbrl_brian.snn.config import SpikingNetworkConfig
from nmbrl_brian.training.env_loop import EnvLoop
from nmbrl_brian.world_models.base import BaseWorldModel

CONFIGS = Path(__file__).resolve().parents[1] / "nmbrl_brian" / "configs"
SMALL = SpikingNetworkConfig(
    n_recurrent=40, input_kind="current", steps_per_env_step=10, tau_out_ms=10.0,
    refractory_ms=0.0, input_weight_scale=0.57, recurrent_weight_scale=0.3, readout_weight_scale=0.0,
    learning_rate=0.01,
)


def make_agent(seed=0, network=SMALL, **agent_kw):
    select_device("runtime")
    env = EnvironmentWrapper()
    agent = SpikingActorCritic(
        env.observation_space, env.action_space, agent=AgentConfig(kind="spiking_actor_critic", **agent_kw),
        encoding=EncodingConfig(), network=network, seed=seed,
    )
    return agent, env


# --------------------------------------------------------------------------------------
# The bridge's TD bookkeeping, against a fake network (no Brian2 involved)
class FakeNetwork:
    n_actions = 2

    def __init__(self, values):
        self.values = list(values)
        self.deltas: list[float] = []
        self.cleared = 0

    def read_outputs(self):
        return np.array([0.0, 0.0, self.values.pop(0)])

    def begin_period(self):
        pass

    def present(self, obs):
        pass

    def apply_td_error(self, delta):
        self.deltas.append(delta)

    def set_learning_signals(self, signals):
        pass

    def trace_norm(self):
        return 0.0

    def clear_episode_state(self):
        self.cleared += 1


class ScriptedEnv(BaseWorldModel):
    """Reward 1 per step; ends after 2 steps, terminated or truncated."""

    def __init__(self, truncate: bool):
        import gymnasium as gym

        self.observation_space = gym.spaces.Box(-1, 1, (4,))
        self.action_space = gym.spaces.Discrete(2)
        self.truncate, self.t = truncate, 0

    def reset(self, *, seed=None, options=None):
        self.t = 0
        return np.zeros(4, np.float32), {}

    def step(self, action):
        self.t += 1
        done = self.t == 2
        return np.zeros(4, np.float32), 1.0, done and not self.truncate, done and self.truncate, {}


@pytest.mark.parametrize("truncate", [False, True])
def test_bridge_bootstraps_only_truncated_episodes(truncate):
    # ticks: present | decide(V=1) | decide(V=2), episode ends | complete with V(final)=5 | present next
    net = FakeNetwork([1.0, 2.0, 5.0])
    bridge = EnvironmentBridge(net, Clock(10 * ms), gamma=0.9, actor_lr=0.1, critic_lr=0.1, rng=np.random.default_rng(0))
    bridge.attach(EnvLoop(ScriptedEnv(truncate), seed=0), explore=True, learn=True)
    for _ in range(4):
        bridge._tick()
    last = 1.0 + (0.9 * 5.0 if truncate else 0.0) - 2.0
    assert net.deltas == pytest.approx([1.0 + 0.9 * 2.0 - 1.0, last]), f"TD errors {net.deltas}"
    assert net.cleared == 1, "the episode end should clear the network state once"
    assert bridge.state.episodes == 1 and bridge.state.steps == 2


# --------------------------------------------------------------------------------------
# The learning rule as written in the equations
def test_td_updates_follow_the_equations():
    agent, _ = make_agent(network=dataclasses.replace(SMALL, learning_rate=0.1))
    agent.bridge.operation.active = False
    e = agent.eprop
    gl = e.namespace["gamma_lambda"]
    rng = np.random.default_rng(1)
    groups = {"out": e.syn_out, "in": e.syn_in, "rec": e.syn_rec}
    grads = {k: rng.normal(size=len(syn)) for k, syn in groups.items()}
    for k, syn in groups.items():
        syn.grad[:] = grads[k]
    w0 = {k: syn.w[:].copy() for k, syn in groups.items()}
    agent.apply_td_error(0.5)  # what the bridge does at the start of a period
    agent.net.run(agent.period)
    for k, syn in groups.items():
        eta = 1.0 if k == "out" else 0.1
        np.testing.assert_allclose(syn.w[:], w0[k] + eta * 0.5 * grads[k], rtol=1e-12,
                                   err_msg=f"{k}: w += eta * delta * z")
        np.testing.assert_allclose(syn.grad[:], gl * grads[k], rtol=1e-12, err_msg=f"{k}: z decays by gamma*lambda")

    agent.begin_period()  # no TD error in this period
    signals = np.array([0.3, -0.3, 0.05])
    zbar_out = e.recurrent.zbar_out[:].copy()
    z_before = e.syn_out.grad[:].copy()
    w_before = e.syn_out.w[:].copy()
    agent.set_learning_signals(signals)
    agent.net.run(agent.period)
    np.testing.assert_array_equal(e.syn_out.w[:], w_before, err_msg="no TD error: weights must not move")
    expected = gl * z_before + signals[e.syn_out.j[:]] * zbar_out[e.syn_out.i[:]]
    np.testing.assert_allclose(e.syn_out.grad[:], expected, rtol=1e-10,
                               err_msg="a decision adds err_k * zbar_out_j to the readout trace, once")
    assert np.all(e.readout.err[:] == 0), "the learning signal must last one step"


# --------------------------------------------------------------------------------------
# Determinism, chunking and evaluation
def test_chunked_interaction_equals_one_long_run():
    a, env_a = make_agent(seed=3)
    b, env_b = make_agent(seed=3)
    loop_a, loop_b = EnvLoop(env_a, seed=0), EnvLoop(env_b, seed=0)
    a.interact(loop_a, max_steps=300)
    for _ in range(3):
        b.interact(loop_b, max_steps=100)
    for name, w in a.weights().items():
        np.testing.assert_array_equal(w, b.weights()[name], err_msg=f"{name} differs after chunked runs")
    assert loop_a.env_steps == loop_b.env_steps == 300


def test_evaluation_does_not_change_training_state():
    agent, env = make_agent(seed=4)
    loop = EnvLoop(env, seed=0)
    agent.interact(loop, max_steps=200)
    before = agent.weights()
    v_before = agent.eprop.recurrent.v[:].copy()
    returns = []
    agent.interact(EnvLoop(EnvironmentWrapper(), seed=99, on_episode_end=lambda r, n: returns.append(r)),
                   max_episodes=3, explore=False, learn=False)
    assert len(returns) == 3, f"evaluation should finish 3 episodes, got {len(returns)}"
    for name, w in agent.weights().items():
        np.testing.assert_array_equal(w, before[name], err_msg=f"evaluation changed {name}")
    np.testing.assert_array_equal(agent.eprop.recurrent.v[:], v_before, err_msg="evaluation changed the membrane state")


def test_state_dict_round_trip_continues_identically():
    a, env_a = make_agent(seed=5)
    loop = EnvLoop(env_a, seed=0)
    a.interact(loop, max_steps=150)
    state = a.state_dict()
    import copy
    loop_copy = copy.deepcopy(loop)
    b, _ = make_agent(seed=11)  # different seed: everything must come from the state
    b.load_state_dict(state)
    a.interact(loop, max_steps=150)
    b.interact(loop_copy, max_steps=150)
    for name, w in a.weights().items():
        np.testing.assert_array_equal(w, b.weights()[name], err_msg=f"{name} differs after restoring state")


def test_operation_counts_grow_with_activity():
    agent, env = make_agent(seed=6)
    agent.interact(EnvLoop(env, seed=0), max_steps=50)
    counts = agent.operation_counts()
    assert counts.spikes > 0 and counts.synaptic_events > counts.spikes, f"implausible counts {counts}"
    assert counts.neuron_updates >= 50 * 10 * (SMALL.n_recurrent + 3), "every neuron updates every step"


def test_spiking_agent_refuses_standalone_devices():
    with pytest.raises(ConfigError, match=r"^device: expected 'runtime'"):
        load_config(None, ["agent.kind=spiking_actor_critic", "device=cpp_standalone"])


@pytest.mark.slow
def test_short_training_beats_a_random_policy():
    config = load_config(CONFIGS / "cartpole_snn.toml")
    agent, env = make_agent(seed=0, network=config.network, actor_lr=config.agent.actor_lr,
                            critic_lr=config.agent.critic_lr)
    agent.interact(EnvLoop(env, seed=0), max_steps=10_000)
    returns = []
    agent.interact(EnvLoop(EnvironmentWrapper(), seed=10**6, on_episode_end=lambda r, n: returns.append(r)),
                   max_episodes=10, explore=False, learn=False)
    # A uniformly random policy averages about 22 steps on CartPole-v1.
    assert np.mean(returns) > 66, f"after 10k steps the greedy return {np.mean(returns):.1f} is not 3x random"
