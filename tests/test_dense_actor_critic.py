"""The dense TD(lambda) actor-critic: hand-computed updates, bootstrapping, resume, determinism."""

from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import pytest

from nmbrl_brian.agents import DenseActorCritic, DenseNetworkConfig
from nmbrl_brian.envs import EnvironmentWrapper
from nmbrl_brian.envs.env_loop import EnvLoop
from nmbrl_brian.equations.actor_critic import AgentConfig
from nmbrl_brian.equations.population_code import EncodingConfig
from nmbrl_brian.errors import ConfigError

GAMMA, LAM, ACTOR_LR, CRITIC_LR = 0.9, 0.5, 0.1, 0.2
WC, BC = np.array([0.5, -0.2]), 0.1
WA, BA = np.array([[0.3, -0.1], [0.0, 0.2]]), np.array([0.05, -0.05])


def _tiny_agent() -> DenseActorCritic:
    """Linear agent on a raw 2-D observation with 2 actions and known weights."""
    agent = DenseActorCritic(
        gym.spaces.Box(-10.0, 10.0, shape=(2,)),
        gym.spaces.Discrete(2),
        agent=AgentConfig(gamma=GAMMA, trace_decay=LAM, actor_lr=ACTOR_LR, critic_lr=CRITIC_LR),
        encoding=EncodingConfig(kind="raw"),
        dense=DenseNetworkConfig(hidden_units=0),
        seed=0,
    )
    agent.params["critic_w"][:] = WC
    agent.params["critic_b"][:] = BC
    agent.params["actor_w"][:] = WA
    agent.params["actor_b"][:] = BA
    return agent


def _cartpole_agent(seed: int, hidden_units: int = 0) -> DenseActorCritic:
    env = EnvironmentWrapper("CartPole-v1")
    return DenseActorCritic(
        env.observation_space,
        env.action_space,
        agent=AgentConfig(),
        encoding=EncodingConfig(),
        dense=DenseNetworkConfig(hidden_units=hidden_units),
        seed=seed,
    )


def _run(agent: DenseActorCritic, loop: EnvLoop, steps: int, *, explore: bool = True) -> list[int]:
    """Step ``agent`` in ``loop`` like BaseAgent.interact, returning the actions taken."""
    actions = []
    for _ in range(steps):
        if loop.at_episode_start:
            agent.begin_episode(loop.obs)
        obs = loop.obs
        action = agent.act(obs, explore=explore)
        t = loop.step(action)
        agent.observe(obs, action, t.reward, t.next_obs, t.terminated, t.truncated)
        actions.append(action)
    return actions


def test_td_lambda_update_matches_hand_computation():
    agent = _tiny_agent()
    agent.begin_episode(np.array([1.0, 2.0]))
    transitions = [  # (s, a, r, s')
        (np.array([1.0, 2.0]), 1, 1.0, np.array([0.5, -1.0])),
        (np.array([0.5, -1.0]), 0, 0.5, np.array([-1.0, 0.5])),
    ]
    # Hand computation: V(s) = wc.s + bc, pi = softmax(Wa s + ba),
    # grad_wc V = s, grad_bc V = 1, grad_Wa log pi(a) = (e_a - pi) s^T, grad_ba log pi(a) = e_a - pi.
    wc, bc, wa, ba = WC.copy(), BC, WA.copy(), BA.copy()
    zc_w, zc_b, za_w, za_b = np.zeros(2), 0.0, np.zeros((2, 2)), np.zeros(2)
    deltas = []
    for s, a, r, s_next in transitions:
        v = wc[0] * s[0] + wc[1] * s[1] + bc
        v_next = wc[0] * s_next[0] + wc[1] * s_next[1] + bc
        logits = np.array(
            [wa[0, 0] * s[0] + wa[0, 1] * s[1] + ba[0], wa[1, 0] * s[0] + wa[1, 1] * s[1] + ba[1]]
        )
        pi = np.exp(logits) / np.exp(logits).sum()
        e_a = np.array([1.0 if i == a else 0.0 for i in range(2)])
        zc_w = GAMMA * LAM * zc_w + s
        zc_b = GAMMA * LAM * zc_b + 1.0
        za_w = GAMMA * LAM * za_w + np.array([[(e_a[i] - pi[i]) * s[j] for j in range(2)] for i in range(2)])
        za_b = GAMMA * LAM * za_b + (e_a - pi)
        delta = r + GAMMA * v_next - v
        deltas.append(delta)
        wc = wc + CRITIC_LR * delta * zc_w
        bc = bc + CRITIC_LR * delta * zc_b
        wa = wa + ACTOR_LR * delta * za_w
        ba = ba + ACTOR_LR * delta * za_b

        agent.observe(s, a, r, s_next, False, False)

    assert deltas[0] != pytest.approx(0.0) and deltas[1] != pytest.approx(0.0), (
        "test needs non-zero TD errors"
    )
    np.testing.assert_allclose(
        agent.critic_traces["critic_w"], zc_w, err_msg="critic trace z^V (weights) is wrong"
    )
    np.testing.assert_allclose(
        agent.critic_traces["critic_b"], [zc_b], err_msg="critic trace z^V (bias) is wrong"
    )
    np.testing.assert_allclose(
        agent.actor_traces["actor_w"], za_w, err_msg="actor trace z^pi (weights) is wrong"
    )
    np.testing.assert_allclose(
        agent.actor_traces["actor_b"], za_b, err_msg="actor trace z^pi (bias) is wrong"
    )
    assert not agent.critic_traces["actor_w"].any(), "the value gradient must not reach the actor readout"
    assert not agent.actor_traces["critic_w"].any(), "the policy gradient must not reach the critic readout"
    np.testing.assert_allclose(
        agent.params["critic_w"], wc, err_msg="critic weights after two TD(lambda) steps"
    )
    np.testing.assert_allclose(
        agent.params["critic_b"], [bc], err_msg="critic bias after two TD(lambda) steps"
    )
    np.testing.assert_allclose(
        agent.params["actor_w"], wa, err_msg="actor weights after two TD(lambda) steps"
    )
    np.testing.assert_allclose(agent.params["actor_b"], ba, err_msg="actor bias after two TD(lambda) steps")
    assert agent.steps == 2, f"steps should count observe() calls, got {agent.steps}"


@pytest.mark.parametrize("terminated, truncated", [(True, False), (False, True)])
def test_terminated_does_not_bootstrap_truncated_does(terminated, truncated):
    agent = _tiny_agent()
    s, s_next, r = np.array([1.0, 2.0]), np.array([0.5, -1.0]), 1.0
    agent.begin_episode(s)
    agent.observe(s, 0, r, s_next, terminated, truncated)
    v = WC @ s + BC
    v_next = WC @ s_next + BC
    expected_delta = r - v if terminated else r + GAMMA * v_next - v
    # After begin_episode the critic-bias trace is exactly 1, so the bias moved by critic_lr * delta.
    delta = (agent.params["critic_b"][0] - BC) / CRITIC_LR
    what = "terminated must not bootstrap" if terminated else "truncated must bootstrap from next_obs"
    assert delta == pytest.approx(expected_delta), f"{what}: TD error {delta}, expected {expected_delta}"
    assert not agent.trace_critic.any() and not agent.trace_actor.any(), (
        "traces must be cleared at episode end"
    )
    assert agent.episodes == 1, f"an episode end should be counted, got {agent.episodes}"


def test_features_normalised_and_cache_follows_content():
    agent = _cartpole_agent(0)
    obs = np.zeros(4, dtype=np.float32)
    assert np.linalg.norm(agent.features(obs)) == pytest.approx(1.0), "centre features should have unit norm"
    first = agent.features(obs).copy()
    obs[2] = 0.1  # mutate in place: the cache must not return stale features
    assert not np.allclose(agent.features(obs), first), (
        "features were not recomputed for a changed observation"
    )


def test_greedy_is_argmax_and_sampling_follows_softmax():
    agent = _tiny_agent()
    s = np.array([1.0, 2.0])
    pi = agent.policy(s)
    assert agent.act(s, explore=False) == int(np.argmax(pi)), (
        "explore=False should take the most likely action"
    )
    n = 4000
    freq = np.mean([agent.act(s, explore=True) for _ in range(n)])
    assert abs(freq - pi[1]) < 4 * np.sqrt(pi[1] * (1 - pi[1]) / n), (
        f"sampled P(a=1)={freq}, softmax says {pi[1]}"
    )


@pytest.mark.parametrize("hidden_units", [0, 8])
def test_state_dict_round_trip_resumes_exactly(tmp_path, hidden_units):
    agent = _cartpole_agent(seed=3, hidden_units=hidden_units)
    loop = EnvLoop(EnvironmentWrapper("CartPole-v1"), seed=3)
    _run(agent, loop, 250)  # ends mid-episode (most likely), so traces are non-zero
    agent.save(tmp_path / "agent.npz")
    loop_copy = copy.deepcopy(loop)

    restored = _cartpole_agent(
        seed=99, hidden_units=hidden_units
    )  # different seed: everything must be loaded
    restored.load(tmp_path / "agent.npz")
    assert restored.steps == agent.steps and restored.episodes == agent.episodes, "step counters not restored"
    np.testing.assert_array_equal(
        restored.trace_actor, agent.trace_actor, err_msg="actor traces not restored"
    )

    actions_a = _run(agent, loop, 300)
    actions_b = _run(restored, loop_copy, 300)
    assert actions_a == actions_b, "a restored agent should take the same actions as the original"
    np.testing.assert_array_equal(
        restored.theta, agent.theta, err_msg="a restored agent should learn identically"
    )


def test_same_seed_same_actions_different_seed_differs():
    def actions(seed: int) -> tuple[list[int], np.ndarray]:
        agent = _cartpole_agent(seed, hidden_units=4)
        loop = EnvLoop(EnvironmentWrapper("CartPole-v1"), seed=0)
        return _run(agent, loop, 300), agent.theta.copy()

    (a1, w1), (a2, w2), (a3, _) = actions(5), actions(5), actions(6)
    assert a1 == a2, "two agents with the same seed on the same env took different actions"
    np.testing.assert_array_equal(w1, w2, err_msg="two agents with the same seed learned different weights")
    assert a1 != a3, "agents with different seeds should not act identically for 300 steps"


def test_interact_learns_cartpole_quickly():
    agent = _cartpole_agent(0)
    agent.interact(EnvLoop(EnvironmentWrapper("CartPole-v1"), seed=0), max_steps=5000)
    returns: list[float] = []
    eval_loop = EnvLoop(
        EnvironmentWrapper("CartPole-v1"), seed=10**6, on_episode_end=lambda r, n: returns.append(r)
    )
    agent.interact(eval_loop, max_episodes=5, explore=False, learn=False)
    assert np.mean(returns) > 150, f"5k steps should lift the greedy return well above random, got {returns}"


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"hidden_units": -1}, "dense.hidden_units"),
        ({"hidden_units": 2.5}, "dense.hidden_units"),
        ({"init_scale": 0.0}, "dense.init_scale"),
        ({"normalize_features": 1}, "dense.normalize_features"),
        ({"td_error_clip": -1.0}, "dense.td_error_clip"),
    ],
)
def test_config_validation_names_the_field(kwargs, field):
    with pytest.raises(ConfigError) as info:
        DenseNetworkConfig(**kwargs)
    assert str(info.value).startswith(field + ":"), f"error should name {field!r}: {info.value}"


def test_operation_counts_follow_the_work_done():
    from nmbrl_brian.agents.dense_actor_critic import DenseActorCritic, DenseNetworkConfig
    from nmbrl_brian.envs import EnvironmentWrapper
    from nmbrl_brian.envs.env_loop import EnvLoop
    from nmbrl_brian.equations.actor_critic import AgentConfig
    from nmbrl_brian.equations.population_code import EncodingConfig

    env = EnvironmentWrapper()
    agent = DenseActorCritic(
        env.observation_space,
        env.action_space,
        agent=AgentConfig(),
        encoding=EncodingConfig(),
        dense=DenseNetworkConfig(),
        seed=0,
    )
    assert agent.operation_counts().macs == 0, "nothing done yet, nothing counted"
    agent.interact(EnvLoop(env, seed=0), max_steps=100)
    counts = agent.operation_counts()
    weights = 40 * 3  # linear: 40 features -> 2 logits + 1 value
    assert counts.macs >= 100 * (weights + 6 * agent.theta.size), f"too few MACs for 100 steps: {counts}"
    assert counts.weight_updates == 100 * agent.theta.size
