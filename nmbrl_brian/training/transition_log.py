"""The transition log: every real training transition, as the stream a world model learns from."""

from __future__ import annotations

from typing import Any

import numpy as np

from nmbrl_brian.loop import RunRecord
from nmbrl_brian.world_models.dataset import COLUMNS, TransitionDataset


class TransitionLog:
    """Real transitions of training runs kept as a :class:`TransitionDataset`, with episode ids.

    Parameters
    ----------
    obs_dim : int
        Observation size.
    meta : dict
        The dataset's metadata (environment id, source).
    """

    def __init__(self, obs_dim: int, meta: dict):
        self.data = TransitionDataset(obs_dim, meta=meta)
        self.position = [0, 0]
        """Episode id and time step of the next transition."""

    def new_episode(self) -> None:
        """The episode in progress was abandoned: the next transition starts a new episode id."""
        episode, t = self.position
        if t > 0:
            self.position = [episode + 1, 0]

    def keep(self, record: RunRecord) -> None:
        """Append a training run's real transitions (episode ids advance at each episode end)."""
        n = record.steps
        if n == 0:
            return
        ends = record.terminated | record.truncated
        episode, timestep = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
        current, t = self.position
        for k in range(n):
            episode[k], timestep[k] = current, t
            current, t = (current + 1, 0) if ends[k] else (current, t + 1)
        self.position = [current, t]
        self.data.extend(
            obs=record.obs,
            action=record.action,
            reward=record.reward,
            next_obs=record.next_obs,
            terminated=record.terminated,
            truncated=record.truncated,
            episode=episode,
            timestep=timestep,
        )

    def state_dict(self) -> dict[str, Any]:
        """The transitions and the episode position as data (keys ``real_transitions``, ``episode_position``)."""
        return {
            "real_transitions": {name: np.array(getattr(self.data, name)) for name in COLUMNS},
            "episode_position": list(self.position),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.data = TransitionDataset(self.data.obs_dim, meta=self.data.meta)
        self.data.extend(**{name: np.asarray(v) for name, v in state["real_transitions"].items()})
        self.position = [int(v) for v in state["episode_position"]]
