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

from nmbrl_brian import seeding
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
    actions: list[int] = field(init=False, default_factory=list, repr=False)
    """Actions taken since the last reset (a checkpoint replays them to restore the episode)."""

    def __post_init__(self) -> None:
        self.obs, _ = self.model.reset(seed=seeding.episode_reset_seed(self.seed, 0))

    external: bool = False
    """The environment runs elsewhere (inside a Brian2 network): :meth:`record` counts its
    transitions, :attr:`model` is not stepped and checkpoints hold the counters only."""
    abandoned: int = 0
    """Episodes :meth:`abandon_episode` left unfinished; each used up a reset seed."""

    def step(self, action: int) -> Transition:
        """Take ``action``; if the episode ends, reset and start the next one."""
        obs = self.obs
        next_obs, reward, terminated, truncated, _ = self.model.step(int(action))
        transition = Transition(
            obs, int(action), float(reward), np.asarray(next_obs), bool(terminated), bool(truncated)
        )
        self.actions.append(int(action))
        self.record(transition.reward, transition.terminated, transition.truncated)
        if terminated or truncated:
            self.obs, _ = self.model.reset(seed=self._reset_seed())
        else:
            self.obs = np.asarray(next_obs)
        return transition

    def _reset_seed(self) -> int:
        return seeding.episode_reset_seed(self.seed, self.episodes + self.abandoned)

    def abandon_episode(self) -> None:
        """Forget the episode in progress without counting it. An :attr:`external` environment
        starts a new one by itself; otherwise the loop resets its model with the next reset seed
        (an episode not yet begun is kept)."""
        if not self.external:
            if self.episode_length == 0:
                return
            self.abandoned += 1
            self.obs, _ = self.model.reset(seed=self._reset_seed())
        self.episode_return, self.episode_length = 0.0, 0
        self.actions.clear()
        self.at_episode_start = True

    def record(self, reward: float, terminated: bool, truncated: bool) -> None:
        """Count one transition: steps, returns and episode ends (with the episode-end callback).

        :meth:`step` calls it; so does an agent whose environment runs inside its Brian2
        network (see :attr:`external`) and only reports the transitions.
        """
        self.env_steps += 1
        self.episode_length += 1
        self.episode_return += float(reward)
        if terminated or truncated:
            self.episodes += 1
            if self.on_episode_end is not None:
                self.on_episode_end(self.episode_return, self.episode_length)
            self.episode_return, self.episode_length = 0.0, 0
            self.actions.clear()
            self.at_episode_start = True
        else:
            self.at_episode_start = False

    def state_dict(self) -> dict:
        """The loop as data: counters, the current observation and the actions since the last reset.

        The environment itself is not stored: :meth:`load_state_dict` resets it with
        this episode's seed and replays the actions, which restores it exactly for
        environments that are deterministic given their reset seed (gymnasium's
        classic-control tasks, time limits included).
        """
        return {
            "seed": self.seed,
            "env_steps": self.env_steps,
            "episodes": self.episodes,
            "episode_return": self.episode_return,
            "episode_length": self.episode_length,
            "obs": np.array(self.obs),
            "actions": np.asarray(self.actions, dtype=np.int64),
            "external": self.external,
            "abandoned": self.abandoned,
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned, replaying the current episode.

        Raises
        ------
        ValueError
            If the state is inconsistent, or replaying does not reproduce the saved
            observation and return (the environment is not deterministic).
        """
        if state.get("external", False):  # the environment's state is the agent's to restore
            self.seed, self.episodes, self.env_steps = (
                int(state["seed"]),
                int(state["episodes"]),
                int(state["env_steps"]),
            )
            self.episode_return, self.episode_length = (
                float(state["episode_return"]),
                int(state["episode_length"]),
            )
            self.external, self.actions = True, []
            self.at_episode_start = self.episode_length == 0
            return
        actions = [int(a) for a in np.asarray(state["actions"]).reshape(-1)]
        length, episodes = int(state["episode_length"]), int(state["episodes"])
        if len(actions) != length or int(state["env_steps"]) < length or episodes < 0:
            raise ValueError("loop: inconsistent counters")
        seed, abandoned = int(state["seed"]), int(state.get("abandoned", 0))
        obs, _ = self.model.reset(seed=seeding.episode_reset_seed(seed, episodes + abandoned))
        episode_return = 0.0
        for action in actions:
            obs, reward, terminated, truncated, _ = self.model.step(action)
            episode_return += float(reward)
            if terminated or truncated:
                raise ValueError(
                    "loop: the replayed episode ended early (the environment is not deterministic)"
                )
        saved_obs = np.asarray(state["obs"])
        if not (
            np.array_equal(np.asarray(obs), saved_obs) and episode_return == float(state["episode_return"])
        ):
            raise ValueError(
                "loop: replaying the current episode did not reproduce the saved observation "
                "(the environment is not deterministic given its reset seed)"
            )
        self.seed, self.episodes, self.env_steps = seed, episodes, int(state["env_steps"])
        self.abandoned = abandoned
        self.episode_return, self.episode_length = episode_return, length
        self.actions = actions
        self.obs = np.asarray(obs)
        self.at_episode_start = length == 0

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["on_episode_end"] = None  # callbacks are re-attached by their owner
        return state
