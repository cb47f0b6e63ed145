"""The real environment behind the :class:`BaseWorldModel` interface."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from nmbrl_brian.errors import ConfigError
from nmbrl_brian.world_models.base import BaseWorldModel


def check_spaces(observation_space: gym.Space, action_space: gym.Space, *, field: str = "env_id") -> None:
    """Raise :class:`ConfigError` unless the spaces are a 1-D Box and a Discrete.

    Parameters
    ----------
    observation_space, action_space : gymnasium.Space
        The spaces to check.
    field : str
        The config field named in the error message.
    """
    if not (isinstance(observation_space, gym.spaces.Box) and len(observation_space.shape) == 1):
        raise ConfigError(
            field, "an environment with a 1-D Box observation space", type(observation_space).__name__
        )
    if not isinstance(action_space, gym.spaces.Discrete):
        raise ConfigError(field, "an environment with a Discrete action space", type(action_space).__name__)


class EnvironmentWrapper(BaseWorldModel):
    """A gymnasium environment exposed as a :class:`BaseWorldModel`.

    Parameters
    ----------
    env_id : str
        A registered gymnasium id whose observation space is a 1-D ``Box`` and whose
        action space is ``Discrete``. Defaults to ``"CartPole-v1"``.
    allow_import : bool
        Accept ids of the form ``"module:Env-v0"``, for which gymnasium imports
        ``module`` (running its code) to register ``Env-v0``. Off by default, so a
        config (or a run folder handed over by someone else) cannot import code.
    **make_kwargs
        Passed to :func:`gymnasium.make`.

    Raises
    ------
    ConfigError
        If the id is unknown, names a module without ``allow_import``, or its spaces
        are not supported.
    """

    def __init__(self, env_id: str = "CartPole-v1", *, allow_import: bool = False, **make_kwargs: Any):
        if ":" in env_id and not allow_import:
            raise ConfigError(
                "env_id",
                "a registered gymnasium id ('module:Env' ids import that module: opt in with --allow-env-import)",
                env_id,
            )
        try:
            self.env = gym.make(env_id, **make_kwargs)
        except (gym.error.Error, ImportError) as exc:
            raise ConfigError("env_id", "a registered gymnasium environment id", env_id) from exc
        check_spaces(self.env.observation_space, self.env.action_space)
        self.env_id = env_id
        self.observation_space = self.env.observation_space
        self.action_space = self.env.action_space

    @property
    def max_episode_steps(self) -> int | None:
        """The time limit of the environment's registration, if any."""
        return self.env.spec.max_episode_steps if self.env.spec is not None else None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        return np.asarray(obs, dtype=self.observation_space.dtype), info

    def step(self, action: int):
        obs, reward, terminated, truncated, info = self.env.step(int(action))
        return np.asarray(obs, dtype=self.observation_space.dtype), float(reward), terminated, truncated, info

    def close(self) -> None:
        self.env.close()
