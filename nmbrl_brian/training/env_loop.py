"""The environment side of the interaction loop.

:class:`EnvLoop` owns one :class:`~nmbrl_brian.world_models.base.BaseWorldModel`, the
current observation and the episode bookkeeping. Agents drive it with
:meth:`EnvLoop.step`, either from a Python loop or from inside a Brian2
``network_operation``; it resets finished episodes itself so callers never have to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from nmbrl_brian.world_models.base import BaseWorldModel


@dataclass(frozen=True)
class Transition:
    """One environment transition as seen by a learning agent."""

    obs: np.ndarray
    """Observation the action was taken in."""
    action: int
    """The action taken."""
    reward: float
    """Reward received."""
    next_obs: np.ndarray
    """Observation after the action (before any reset)."""
    terminated: bool
    """True if ``next_obs`` is terminal: do not bootstrap."""
    truncated: bool
    """True if the time limit cut the episode: bootstrap from ``next_obs``."""


@dataclass
class EnvLoop:
    """Steps a world model, resets finished episodes and counts steps and returns.

    Parameters
    ----------
    model : BaseWorldModel
        The environment (real or learned).
    seed : int
        Seed of the first reset; episode ``k`` is reset with ``seed + k`` so a run is
        reproducible and resumable.
    on_episode_end : callable, optional
        Called with ``(episode_return, episode_length)`` when an episode ends.
    """

    model: BaseWorldModel
    seed: int
    on_episode_end: Callable[[float, int], None] | None = None
    env_steps: int = 0
    episodes: int = 0
    episode_return: float = 0.0
    episode_length: int = 0
    at_episode_start: bool = True
    obs: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.obs, _ = self.model.reset(seed=self.seed)

    def step(self, action: int) -> Transition:
        """Take ``action``; if the episode ends, reset and start the next one."""
        obs = self.obs
        next_obs, reward, terminated, truncated, _ = self.model.step(int(action))
        transition = Transition(
            obs, int(action), float(reward), np.asarray(next_obs), bool(terminated), bool(truncated)
        )
        self.record(transition.reward, transition.terminated, transition.truncated)
        if terminated or truncated:
            self.obs, _ = self.model.reset(seed=self.seed + self.episodes)
        else:
            self.obs = np.asarray(next_obs)
        return transition

    def record(self, reward: float, terminated: bool, truncated: bool) -> None:
        """Count one transition: steps, returns and episode ends (with the episode-end callback).

        :meth:`step` calls it; so does an agent whose environment runs inside its Brian2
        network and only reports the transitions (the model here is then not stepped,
        and :attr:`obs` is not kept up to date).
        """
        self.env_steps += 1
        self.episode_length += 1
        self.episode_return += float(reward)
        if terminated or truncated:
            self.episodes += 1
            if self.on_episode_end is not None:
                self.on_episode_end(self.episode_return, self.episode_length)
            self.episode_return, self.episode_length = 0.0, 0
            self.at_episode_start = True
        else:
            self.at_episode_start = False

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["on_episode_end"] = None  # callbacks are re-attached by their owner
        return state
