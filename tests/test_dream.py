"""Dream environment parts: the same ports as the real environment, steps from a model."""

from __future__ import annotations

import brian2
import numpy as np
from brian2 import Network, NeuronGroup, meter, ms, second

from nmbrl_brian.envs import EnvironmentWrapper
from nmbrl_brian.equations.environment import RESET, STEP
from nmbrl_brian.parts import CartPolePart
from nmbrl_brian.parts.dream import DreamPart, LinearPredictor, PerfectAcrobot, PerfectCartPole
from nmbrl_brian.world_models import LinearWorldModel, collect_transitions
from nmbrl_brian.world_models.termination import AcrobotTermination, CartPoleTermination


def drive(parts, prefix: str):
    """A stand-in head (``command``, ``action``) driving every part in ``parts``."""
    head = NeuronGroup(1, "command : integer\naction : integer", clock=parts[0].clock, name=f"{prefix}_head")
    for part in parts:
        part.connect_agent(head)
    return head, Network(head, *[obj for p in parts for obj in p.objects])


def load_tables(part, value=lambda g, v: np.asarray(getattr(g, v)[:])):
    for table, values in part.tables(value, 1).items():
        table.values[:] = values


def test_perfect_dream_reproduces_the_cartpole_part():
    """The dream with the CartPole equations as its model, started from the same state and given
    the same actions, follows the CartPole part's trajectory and ends its episodes the same way."""
    brian2.prefs.codegen.target = "numpy"
    real = CartPolePart(period=10 * ms, seeds=[4], resets_per_run=20, prefix="real")
    dream = DreamPart(
        4,
        2,
        PerfectCartPole(),
        period=10 * ms,
        horizon=500,
        termination=CartPoleTermination.from_env(),
        starts_per_run=20,
        prefix="perfect",
    )
    dream.set_start_states(real.initial_state(4)[None, :])
    head, net = drive([real, dream], "perfect")
    load_tables(real)
    load_tables(dream)
    head.command = RESET
    net.run(10 * ms)
    rng = np.random.default_rng(2)
    for step in range(200):
        head.command, head.action = STEP, int(rng.integers(2))
        net.run(10 * ms)
        e = real.env
        state = np.array([e.x[0] / meter, e.x_dot[0] / (meter / second), e.theta[0], e.theta_dot[0] * second])
        np.testing.assert_allclose(dream.obs_port.obs[:], state, rtol=0, atol=1e-12, err_msg=f"step {step}")
        assert dream.env.terminated[0] == real.env.terminated[0] and dream.env.reward[0] == real.env.reward[0]
        if real.env.needs_reset[0]:
            assert dream.env.needs_reset[0] == 1
            break
    else:
        raise AssertionError("a random policy should end the episode within 200 steps")


def test_perfect_dream_reproduces_gymnasium_acrobot():
    """The dream with Acrobot's equations as its model (one Runge-Kutta step in cosines and sines),
    started from gymnasium's reset state and given the same random torques, matches gymnasium's
    own state (angles wrapped, velocities clipped) step for step, with its reward and termination;
    from a swung-up start, the free end crosses the bar in both on the same step."""
    import gymnasium as gym

    brian2.prefs.codegen.target = "numpy"
    rng = np.random.default_rng(3)
    for case, start in (("rest", None), ("swung", np.array([2.4, -0.6, 3.0, -4.0]))):
        env = gym.make("Acrobot-v1").unwrapped
        env.reset(seed=7)
        if start is not None:
            env.state = start.copy()

        def observed(env=env):
            t1, t2, w1, w2 = np.asarray(env.state, dtype=np.float64)  # float32 after a reset
            return np.array([np.cos(t1), np.sin(t1), np.cos(t2), np.sin(t2), w1, w2])

        termination = AcrobotTermination.from_env()
        low, high = env.observation_space.low.astype(float), env.observation_space.high.astype(float)
        dream = DreamPart(
            6,
            3,
            PerfectAcrobot(),
            period=10 * ms,
            horizon=500,
            termination=termination,
            reward=termination.reward_code(),
            starts_per_run=20,
            bounds=(low, high),
            prefix=f"acro_{case}",
        )
        dream.set_start_states(observed()[None, :])
        head, net = drive([dream], f"acro_{case}")
        load_tables(dream)
        head.command = RESET
        net.run(10 * ms)
        np.testing.assert_allclose(dream.obs_port.obs[:], observed(), rtol=0, atol=1e-12)
        for step in range(60):
            action = int(rng.integers(3))
            head.command, head.action = STEP, action
            net.run(10 * ms)
            _, reward, terminated, _, _ = env.step(action)
            np.testing.assert_allclose(
                dream.obs_port.obs[:], observed(), rtol=0, atol=1e-10, err_msg=f"{case}, step {step}"
            )
            assert dream.env.terminated[0] == terminated and dream.env.reward[0] == reward, (case, step)
            if terminated:
                break
        assert terminated == (case == "swung"), case
        env.close()


def linear_dream(starts: np.ndarray, prefix: str, **kwds):
    """A linear model fitted to 300 random-policy CartPole transitions, dreaming from ``starts``
    (reset and at rest): returns the model, the dream, the head and the network."""
    brian2.prefs.codegen.target = "numpy"
    data = collect_transitions(EnvironmentWrapper(), None, 300, seed=0)
    model = LinearWorldModel.for_env("CartPole-v1").fit(data)
    predictor = LinearPredictor(4, 2)
    dream = DreamPart(
        4,
        2,
        predictor,
        period=10 * ms,
        termination=CartPoleTermination.from_env(),
        starts_per_run=20,
        prefix=prefix,
        **kwds,
    )
    dream.set_start_states(starts)
    head, net = drive([dream], prefix)
    for (group, name), value in predictor.values_from(model, dream).items():
        getattr(group, name)[:] = value
    load_tables(dream)
    head.command = RESET
    net.run(10 * ms)
    return model, dream, head, net


def test_linear_dream_steps_like_the_fitted_model_and_truncates_at_the_horizon():
    data = collect_transitions(EnvironmentWrapper(), None, 300, seed=0)
    model, dream, head, net = linear_dream(data.obs[:5], "linear", horizon=7)
    obs = np.array(dream.obs_port.obs[:])
    assert any(np.array_equal(obs, s) for s in data.obs[:5]), "a dream starts from one of the given states"
    for step in range(7):
        action = step % 2
        head.command, head.action = STEP, action
        net.run(10 * ms)
        next_obs, reward, _ = model.predict(obs[None, :], np.array([action]))
        np.testing.assert_allclose(dream.obs_port.obs[:], next_obs[0], rtol=1e-12, atol=1e-12)
        assert dream.env.reward[0] == np.float64(reward[0]) or abs(dream.env.reward[0] - reward[0]) < 1e-12
        obs = next_obs[0]
        if dream.env.terminated[0]:
            break
        assert dream.env.truncated[0] == int(step == 6), f"horizon 7: truncated only at the 7th step ({step})"


def test_dreamed_states_stay_within_the_observation_space():
    """A prediction beyond the bounds given to the dream (the observation space's) is clipped to them,
    so a rollout that drifts cannot grow without bound (and 0 * inf cannot make a NaN)."""
    low, high = np.array([-0.01, -0.02, -0.003, -0.04]), np.array([0.01, 0.02, 0.003, 0.04])
    model, dream, head, net = linear_dream(np.zeros((5, 4)), "bounded", horizon=50, bounds=(low, high))
    obs = np.array(dream.obs_port.obs[:])
    clipped = 0
    for _ in range(5):
        head.command, head.action = STEP, 1
        net.run(10 * ms)
        next_obs, _, _ = model.predict(obs[None, :], np.array([1]))
        expected = np.clip(next_obs[0], low, high)
        np.testing.assert_allclose(dream.obs_port.obs[:], expected, rtol=1e-12, atol=1e-12)
        clipped += int(not np.array_equal(expected, next_obs[0]))
        obs = expected
    assert clipped > 0, "pushing right for 5 steps should leave the tight bounds"
