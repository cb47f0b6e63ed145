"""Any :class:`BaseWorldModel` exposed as a ``gymnasium.Env``.

With this wrapper a learned world model can be handed to gymnasium tooling and
third-party agents exactly like the real environment.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from nmbrl_brian.envs.environment_wrapper import check_spaces
from nmbrl_brian.world_models.base import BaseWorldModel


class WorldModelEnv(gym.Env):
    """A gymnasium environment whose dynamics come from a :class:`BaseWorldModel`.

    Description
        Steps are answered by ``model.step``; resets by ``model.reset``.

    Action Space
        ``model.action_space`` (Discrete).

    Observation Space
        ``model.observation_space`` (1-D Box).

    Rewards
        As predicted (or produced) by the model.

    Starting State
        As produced by ``model.reset(seed=...)``.

    Episode End
        When the model reports ``terminated`` or ``truncated``; an optional
        ``max_episode_steps`` adds a time limit on top.

    Arguments
        model : BaseWorldModel
            The dynamics.
        max_episode_steps : int, optional
            Truncate episodes after this many steps.
    """

    metadata = {"render_modes": []}

    def __init__(self, model: BaseWorldModel, max_episode_steps: int | None = None):
        check_spaces(model.observation_space, model.action_space, field="model")
        self.model = model
        self.observation_space = model.observation_space
        self.action_space = model.action_space
        self.max_episode_steps = max_episode_steps
        self._elapsed = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is None:
            # Derive the model's seed from our generator so reset() without a seed is still reproducible.
            seed = int(self.np_random.integers(2**31 - 1))
        obs, info = self.model.reset(seed=seed, options=options)
        self._elapsed = 0
        return self._as_obs(obs), dict(info)

    def step(self, action):
        if not self.action_space.contains(action):
            raise ValueError(f"action: expected an element of {self.action_space}, got {action!r}")
        obs, reward, terminated, truncated, info = self.model.step(int(action))
        self._elapsed += 1
        if self.max_episode_steps is not None and self._elapsed >= self.max_episode_steps:
            truncated = True
        return self._as_obs(obs), float(reward), bool(terminated), bool(truncated), dict(info)

    def _as_obs(self, obs) -> np.ndarray:
        return np.asarray(obs, dtype=self.observation_space.dtype).reshape(self.observation_space.shape)

    def close(self) -> None:
        self.model.close()
