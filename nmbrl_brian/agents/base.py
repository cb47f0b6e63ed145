"""The agent interface shared by the dense baseline and the spiking actor-critic.

An agent chooses actions (:meth:`BaseAgent.act`) and learns online from the
transitions it sees (:meth:`BaseAgent.observe`). The interaction loop itself is
:meth:`BaseAgent.interact`: the default is a plain Python loop over ``act`` and
``observe``; a spiking agent overrides it to run the environment inside its Brian2
network through a ``network_operation``.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from nmbrl_brian.training.env_loop import EnvLoop


class BaseAgent(ABC):
    """An online-learning agent for Box observations and Discrete actions."""

    #: Short name used in results folder names, e.g. ``"dense_actor_critic"``.
    name: str = "agent"

    @abstractmethod
    def act(self, obs: np.ndarray, *, explore: bool = True) -> int:
        """Choose an action for ``obs``.

        Parameters
        ----------
        obs : numpy.ndarray
            The current observation.
        explore : bool
            If True, sample from the policy; if False, act greedily.

        Returns
        -------
        int
            The chosen action.
        """

    def begin_episode(self, obs: np.ndarray) -> None:
        """Learning hook called with the first observation of every episode."""

    @abstractmethod
    def observe(
        self,
        obs: np.ndarray,
        action: int,
        reward: float,
        next_obs: np.ndarray,
        terminated: bool,
        truncated: bool,
    ) -> None:
        """Learning hook called after every transition taken with ``explore=True``.

        Parameters
        ----------
        obs, action, reward, next_obs : array, int, float, array
            The transition.
        terminated : bool
            The episode ended in a terminal state: the target is ``reward`` alone.
        truncated : bool
            The episode was cut off by a time limit: bootstrap from ``next_obs``.
        """

    def interact(
        self,
        loop: EnvLoop,
        *,
        max_steps: int | None = None,
        max_episodes: int | None = None,
        explore: bool = True,
        learn: bool = True,
    ) -> None:
        """Run the agent in ``loop`` until a step or episode budget is used up.

        Parameters
        ----------
        loop : EnvLoop
            The environment loop; it resets finished episodes and keeps counters.
        max_steps : int, optional
            Stop after this many environment steps.
        max_episodes : int, optional
            Stop after this many completed episodes.
        explore : bool
            Sample actions (True) or act greedily (False).
        learn : bool
            Call :meth:`observe` after every transition.
        """
        steps = 0
        episodes_at_start = loop.episodes
        while (max_steps is None or steps < max_steps) and (
            max_episodes is None or loop.episodes - episodes_at_start < max_episodes
        ):
            if loop.at_episode_start:
                self.begin_episode(loop.obs)
            obs = loop.obs
            action = self.act(obs, explore=explore)
            t = loop.step(action)
            if learn:
                self.observe(obs, action, t.reward, t.next_obs, t.terminated, t.truncated)
            steps += 1

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume learning exactly: parameters, traces, RNG state.

        Returns
        -------
        dict
            Maps names to numpy arrays or picklable Python values.
        """

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""

    def save(self, path: str | os.PathLike) -> None:
        """Save :meth:`state_dict` to ``path`` (a pickle file)."""
        import pickle

        with open(path, "wb") as f:
            pickle.dump(self.state_dict(), f)

    def load(self, path: str | os.PathLike) -> None:
        """Load a state saved by :meth:`save` into this agent."""
        import pickle

        with open(path, "rb") as f:
            self.load_state_dict(pickle.load(f))
