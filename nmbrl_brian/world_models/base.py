"""The world-model interface: anything that answers ``(s, a) -> (s', r, done)``.

The real environment (:class:`~nmbrl_brian.envs.EnvironmentWrapper`) and a learned
model (``SNNWorldModel``) both implement it, so an agent or trainer never needs to
know which one it is talking to.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import gymnasium as gym
import numpy as np


class BaseWorldModel(ABC):
    """A steppable model of an environment with the Gymnasium step signature.

    Attributes
    ----------
    observation_space : gymnasium.spaces.Box
        The space of observations returned by :meth:`reset` and :meth:`step`.
    action_space : gymnasium.spaces.Discrete
        The space of actions accepted by :meth:`step`.
    """

    observation_space: gym.spaces.Box
    action_space: gym.spaces.Discrete

    @abstractmethod
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start a new episode.

        Parameters
        ----------
        seed : int, optional
            Seed for the initial-state distribution; the same seed gives the same
            initial observation.
        options : dict, optional
            Model-specific reset options.

        Returns
        -------
        obs : numpy.ndarray
            The initial observation, an element of :attr:`observation_space`.
        info : dict
            Auxiliary information.
        """

    @abstractmethod
    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Advance the model by one environment step.

        Parameters
        ----------
        action : int
            An element of :attr:`action_space`.

        Returns
        -------
        obs : numpy.ndarray
            The next observation.
        reward : float
            The reward for this transition.
        terminated : bool
            True if the episode reached a terminal state (no bootstrapping).
        truncated : bool
            True if the episode was cut off by a time limit (bootstrap from ``obs``).
        info : dict
            Auxiliary information.
        """

    def close(self) -> None:
        """Release any resources held by the model."""
