"""CartPole as Brian2 equations against gymnasium's CartPoleEnv (the reference)."""

from __future__ import annotations

import brian2
import gymnasium as gym
import numpy as np
import pytest
from brian2 import Network, meter, ms, second

from nmbrl_brian.equations.cartpole import CartPoleParams, build_cartpole_group


def test_params_come_from_gymnasium():
    p = CartPoleParams.from_gymnasium()
    u = gym.make("CartPole-v1").unwrapped
    assert float(p.x_threshold / meter) == u.x_threshold
    assert p.theta_threshold == u.theta_threshold_radians
    assert float(p.tau_env / second) == u.tau
    assert p.max_episode_steps == 500


@pytest.mark.parametrize("target", ["numpy", "cython"])
def test_matches_gymnasium_step_by_step(target):
    brian2.prefs.codegen.target = target
    env = gym.make("CartPole-v1")
    env.reset(seed=11)
    group = build_cartpole_group(1, auto_reset=False, name="cp_test")
    x, x_dot, theta, theta_dot = env.unwrapped.state
    group.x, group.x_dot, group.theta, group.theta_dot = (
        x * meter,
        x_dot * meter / second,
        theta,
        theta_dot / second,
    )
    net = Network(group)
    rng = np.random.default_rng(0)
    worst = 0.0
    for step in range(60):
        action = int(rng.integers(2))
        group.action = action
        net.run(20 * ms)
        _, _, terminated, truncated, _ = env.step(action)
        ref = np.asarray(env.unwrapped.state, dtype=float)
        got = np.array(
            [
                group.x[0] / meter,
                group.x_dot[0] / (meter / second),
                group.theta[0],
                group.theta_dot[0] * second,
            ]
        )
        worst = max(worst, float(np.max(np.abs(got - ref))))
        assert int(group.terminated[0]) == int(terminated), f"termination differs at step {step}"
        if terminated:
            break
    assert worst < 1e-12, f"Brian2 CartPole deviates from gymnasium by {worst:g}"


def test_batched_auto_reset_keeps_states_in_bounds():
    brian2.prefs.codegen.target = "numpy"
    group = build_cartpole_group(8, name="cp_batch")
    net = Network(group)
    net.run(200 * 20 * ms)  # always action 0: episodes end fast and must restart
    assert np.all(group.episodes_done[:] > 5), "constant pushing should finish several episodes per env"
    assert np.all(np.abs(group.x[:] / meter) <= 2.4 + 0.5), "states should stay near the track after resets"


def test_one_step_from_the_same_state_matches_to_rounding():
    """From identical states one 20 ms step differs from gymnasium by rounding only (README: 4e-16)."""
    brian2.prefs.codegen.target = "numpy"
    env = gym.make("CartPole-v1").unwrapped
    rng = np.random.default_rng(1)
    n = 400  # states across the whole non-terminal box, random actions
    states = np.column_stack(
        [
            rng.uniform(-2.4, 2.4, n),
            rng.uniform(-3, 3, n),
            rng.uniform(-0.2, 0.2, n),
            rng.uniform(-3.5, 3.5, n),
        ]
    )
    actions = rng.integers(2, size=n)
    group = build_cartpole_group(n, auto_reset=False, name="cp_one_step")
    group.x, group.x_dot = states[:, 0] * meter, states[:, 1] * meter / second
    group.theta, group.theta_dot = states[:, 2], states[:, 3] / second
    group.action = actions
    Network(group).run(20 * ms)
    got = np.column_stack(
        [group.x[:] / meter, group.x_dot[:] / (meter / second), group.theta[:], group.theta_dot[:] * second]
    )
    ref = np.empty_like(states)
    for i, (state, action) in enumerate(zip(states, actions)):
        env.state, env.steps_beyond_terminated = state.copy(), None
        env.step(int(action))
        ref[i] = env.state
    worst = float(np.max(np.abs(got - ref)))
    assert worst <= 1e-15, f"one step from the same state differs by {worst:g} (rounding is ~4e-16)"
