"""The agent interface shared by the dense baseline and the spiking actor-critic.

An agent chooses actions (:meth:`BaseAgent.act`) and runs in an environment loop
(:meth:`BaseAgent.interact`): the dense baseline learns in a plain Python loop over
``act`` and its own ``observe``; the spiking agent runs the environment and its learning
inside its Brian2 network (one :class:`~nmbrl_brian.loop.ClosedLoop`, as the phases of
:mod:`nmbrl_brian.training.phases`).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

import numpy as np

from nmbrl_brian.checkpoints import read_checkpoint, write_checkpoint
from nmbrl_brian.errors import CheckpointError, check_finite

if TYPE_CHECKING:  # pragma: no cover
    from nmbrl_brian.envs.env_loop import EnvLoop


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

    @abstractmethod
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
            Learn from the transitions (False: evaluation, which leaves the agent unchanged).
        """

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume learning exactly: parameters, traces, RNG state.

        Returns
        -------
        dict
            Data only, so checkpoints cannot run code (:mod:`nmbrl_brian.checkpoints`):
            nested dicts, lists and tuples of NumPy arrays and scalars, Python numbers,
            strings, bools and None.
        """

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""

    def close(self) -> None:
        """Release what the agent holds beyond its own process (e.g. a worker process); called by the trainer."""

    def progress(self) -> dict[str, Any]:
        """Extra columns for each ``metrics.csv`` row (e.g. a model-based agent's dreamed steps)."""
        return {}

    def finite_values(self) -> dict[str, Any]:
        """Named quantities that must stay finite while learning: weights, readouts, TD error.

        :meth:`check_finite` checks them; the trainer calls it at every evaluation and
        before every checkpoint. Values are numbers or arrays (or dicts of them).
        """
        return {}

    def check_finite(self, env_step: int | None = None) -> None:
        """Raise :class:`~nmbrl_brian.errors.DivergenceError` naming the first non-finite value."""
        for name, values in self.finite_values().items():
            check_finite(name, values, env_step)

    def save(self, path: str | os.PathLike) -> None:
        """Save :meth:`state_dict` to ``path`` as a data-only checkpoint (an ``.npz`` archive)."""
        write_checkpoint(path, {"agent": self.name, "state": self.state_dict()}, kind="agent")

    def load(self, path: str | os.PathLike) -> None:
        """Load a state saved by :meth:`save` into this agent.

        Raises
        ------
        CheckpointError
            If the file is not an agent checkpoint, belongs to another kind of agent or
            does not fit this agent (one line).
        """
        data = read_checkpoint(path, kind="agent")
        if not isinstance(data, dict) or data.get("agent") != self.name:
            got = data.get("agent") if isinstance(data, dict) else None
            raise CheckpointError(path, f"holds a {got!r} agent, expected {self.name!r}")
        try:
            self.load_state_dict(data["state"])
        except (KeyError, ValueError, TypeError, IndexError) as exc:
            raise CheckpointError(path, f"does not fit this agent ({' '.join(str(exc).split())})") from None
