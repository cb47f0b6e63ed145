"""The real environment wrapper, WorldModelEnv and the EnvLoop bookkeeping."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from nmbrl_brian.envs import EnvironmentWrapper, WorldModelEnv
from nmbrl_brian.envs.env_loop import EnvLoop
from nmbrl_brian.errors import ConfigError


def test_wrapper_contract():
    env = EnvironmentWrapper()
    obs, info = env.reset(seed=3)
    assert env.observation_space.contains(obs), f"reset obs {obs} not in the observation space"
    assert isinstance(info, dict)
    out = env.step(0)
    assert len(out) == 5, "step must return (obs, reward, terminated, truncated, info)"
    obs2, reward, terminated, truncated, _ = out
    assert env.observation_space.contains(obs2)
    assert isinstance(reward, float) and isinstance(terminated, bool) and isinstance(truncated, bool)
    again, _ = EnvironmentWrapper().reset(seed=3)
    np.testing.assert_array_equal(obs, again, err_msg="same reset seed should give the same initial state")


@pytest.mark.parametrize(
    "env_id, what",
    [("MountainCarContinuous-v0", "Discrete action"), ("FrozenLake-v1", "Box observation")],
)
def test_wrapper_rejects_unsupported_spaces(env_id, what):
    with pytest.raises(ConfigError, match=what) as info:
        EnvironmentWrapper(env_id)
    assert str(info.value).startswith("env_id:"), f"error should name env_id: {info.value}"


def test_wrapper_rejects_unknown_id():
    with pytest.raises(ConfigError, match=r"^env_id: expected a registered gymnasium"):
        EnvironmentWrapper("NoSuchEnv-v9")


def test_other_box_discrete_env_works():
    env = EnvironmentWrapper("Acrobot-v1")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (6,), "Acrobot observations have 6 dimensions"


def test_world_model_env_passes_check_env():
    env = WorldModelEnv(EnvironmentWrapper("CartPole-v1"), max_episode_steps=500)
    check_env(env, skip_render_check=True)
    assert isinstance(env, gym.Env)


def test_world_model_env_time_limit_and_bad_action():
    env = WorldModelEnv(EnvironmentWrapper("CartPole-v1"), max_episode_steps=3)
    env.reset(seed=0)
    flags = [env.step(i % 2)[3] for i in range(3)]
    assert flags == [False, False, True], f"max_episode_steps=3 should truncate at step 3, got {flags}"
    with pytest.raises(ValueError, match="action"):
        env.step(5)


def test_env_loop_resets_and_counts():
    ended = []
    loop = EnvLoop(EnvironmentWrapper(), seed=0, on_episode_end=lambda r, n: ended.append((r, n)))
    for _ in range(200):
        loop.step(0)  # always pushing left ends episodes quickly
    assert loop.env_steps == 200
    assert loop.episodes == len(ended) > 3, "constant action should end several episodes in 200 steps"
    assert sum(n for _, n in ended) + loop.episode_length == 200, "episode lengths must add up to the steps"
    assert all(r == n for r, n in ended), "CartPole's return equals its episode length"


def test_env_loop_truncation_flag():
    model = EnvironmentWrapper("CartPole-v1", max_episode_steps=5)
    loop = EnvLoop(model, seed=0)
    transitions = [loop.step(i % 2) for i in range(5)]
    assert transitions[-1].truncated and not transitions[-1].terminated, "time limit should truncate"
    assert loop.at_episode_start and loop.episodes == 1
