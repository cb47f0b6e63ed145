"""CartPole as Brian2 equations (the environment part) against gymnasium's CartPoleEnv."""

from __future__ import annotations

import brian2
import gymnasium as gym
import numpy as np
import pytest
from brian2 import Network, NeuronGroup, meter, ms, second
from nmbrl_brian.equations.cartpole import CartPoleParams
from nmbrl_brian.equations.environment import RESET, STEP

from nmbrl_brian.parts import CartPolePart


def test_params_come_from_gymnasium():
    p = CartPoleParams.from_gymnasium()
    u = gym.make("CartPole-v1").unwrapped
    assert float(p.x_threshold / meter) == u.x_threshold
    assert p.theta_threshold == u.theta_threshold_radians
    assert float(p.tau_env / second) == u.tau
    assert p.max_episode_steps == 500


def driven_cartpole(n_copies: int, seeds, name: str):
    """A cart-pole part driven by a stand-in head whose ``command`` and ``action`` the test writes."""
    part = CartPolePart(period=10 * ms, n_copies=n_copies, seeds=seeds, resets_per_run=50, prefix=name)
    head = NeuronGroup(n_copies, "command : integer\naction : integer", clock=part.clock, name=f"{name}_head")
    part.connect_agent(head)
    net = Network(*part.objects, head)
    return part, head, net


def load_tables(part: CartPolePart) -> None:
    for table, values in part.tables(lambda g, v: np.asarray(getattr(g, v)[:]), 1).items():
        table.values[:] = values


@pytest.mark.parametrize("target", ["numpy", "cython"])
def test_matches_gymnasium_step_by_step(target):
    """From the same seeded reset, every step's state equals gymnasium's to rounding and the
    observation port shows gymnasium's float32 observation exactly."""
    brian2.prefs.codegen.target = target
    env = gym.make("CartPole-v1")
    obs, _ = env.reset(seed=11)
    part, head, net = driven_cartpole(1, [11], f"cp_{target}")
    load_tables(part)
    head.command = RESET
    net.run(10 * ms)
    np.testing.assert_array_equal(part.obs_port.obs[:], obs.astype(float), err_msg="reset observation")
    rng = np.random.default_rng(0)
    worst = 0.0
    for step in range(60):
        action = int(rng.integers(2))
        head.command, head.action = STEP, action
        net.run(10 * ms)
        obs, reward, terminated, _, _ = env.step(action)
        ref = np.asarray(env.unwrapped.state, dtype=float)
        e = part.env
        got = np.array([e.x[0] / meter, e.x_dot[0] / (meter / second), e.theta[0], e.theta_dot[0] * second])
        worst = max(worst, float(np.max(np.abs(got - ref))))
        np.testing.assert_array_equal(
            part.obs_port.obs[:], obs.astype(float), err_msg=f"observation at step {step}"
        )
        assert int(e.terminated[0]) == int(terminated), f"termination differs at step {step}"
        assert float(e.reward[0]) == reward and int(e.stepped[0]) == 1
        if terminated:
            assert int(e.needs_reset[0]) == 1, "a terminal step must ask for a reset"
            break
    assert worst < 1e-12, f"Brian2 CartPole deviates from gymnasium by {worst:g}"


def test_hold_changes_nothing_and_copies_are_independent():
    brian2.prefs.codegen.target = "numpy"
    part, head, net = driven_cartpole(3, [0, 1, 2], "cp_batch")
    load_tables(part)
    head.command = RESET
    net.run(10 * ms)
    starts = np.array([part.initial_state(s) for s in (0, 1, 2)])
    np.testing.assert_allclose(part.env.x[:] / meter, starts[:, 0], rtol=0, atol=0)
    head.command = [STEP, 0, STEP]  # copy 1 holds
    head.action = [1, 1, 0]
    before = part.env.x_dot[:].copy()
    net.run(10 * ms)
    assert part.env.x_dot[1] == before[1], "a held copy must not move"
    assert part.env.x_dot[0] > before[0] and part.env.x_dot[2] < before[2], "pushes go right (1) and left (0)"
    assert list(part.env.stepped[:]) == [1, 0, 1]
    assert list(part.env.steps_done[:]) == [1, 0, 1]


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
    part, head, net = driven_cartpole(n, list(range(n)), "cp_one_step")
    e = part.env
    e.x, e.x_dot = states[:, 0] * meter, states[:, 1] * meter / second
    e.theta, e.theta_dot = states[:, 2], states[:, 3] / second
    e.needs_reset = 0
    head.command, head.action = STEP, actions
    net.run(10 * ms)
    got = np.column_stack(
        [e.x[:] / meter, e.x_dot[:] / (meter / second), e.theta[:], e.theta_dot[:] * second]
    )
    ref = np.empty_like(states)
    for i, (state, action) in enumerate(zip(states, actions)):
        env.state, env.steps_beyond_terminated = state.copy(), None
        env.step(int(action))
        ref[i] = env.state
    worst = float(np.max(np.abs(got - ref)))
    assert worst <= 1e-15, f"one step from the same state differs by {worst:g} (rounding is ~4e-16)"
