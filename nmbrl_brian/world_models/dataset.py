"""Transition data for fitting and evaluating world models.

A :class:`TransitionDataset` holds one row per environment step
``(s, a, r, s', terminated, truncated)`` together with the episode it belongs to and
its time index inside that episode. Rows of one episode are stored contiguously and
in time order, so k-step open-loop segments can be read straight off the arrays
(:meth:`TransitionDataset.segment_starts`).

World models are fitted on the change of state, :math:`\\Delta s = s' - s`, scaled
per dimension by its standard deviation (:class:`Standardizer`), as in PETS and MBPO
(Chua et al. 2018, *Deep reinforcement learning in a handful of trials using
probabilistic dynamics models*; Janner et al. 2019, *When to trust your model*).

:func:`collect_transitions` fills a dataset by running a policy in any
:class:`~nmbrl_brian.world_models.base.BaseWorldModel` (usually the real
environment). Every episode has its own seed derived from the collection seed, so a
collection written to a file can be resumed later and gives exactly the rows an
uninterrupted run would have given.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from nmbrl_brian import seeding
from nmbrl_brian.errors import ConfigError
from nmbrl_brian.world_models.base import BaseWorldModel

__all__ = [
    "Standardizer",
    "TransitionDataset",
    "collect_transitions",
]

#: The columns of a dataset, in order.
COLUMNS = ("obs", "action", "reward", "next_obs", "terminated", "truncated", "episode", "timestep")


@dataclass(frozen=True)
class Standardizer:
    """A per-dimension affine scaling ``z = (x - mean) / std``."""

    mean: np.ndarray
    """Per-dimension offset, shape ``(D,)``."""
    std: np.ndarray
    """Per-dimension scale, shape ``(D,)``; strictly positive."""

    @classmethod
    def fit(cls, x: np.ndarray, *, center: bool = True, eps: float = 1e-8) -> Standardizer:
        """Fit the scaling to the rows of ``x``.

        Parameters
        ----------
        x : numpy.ndarray
            Data, shape ``(N, D)`` or ``(N,)``.
        center : bool
            Subtract the mean (True) or only divide by the standard deviation (False).
        eps : float
            Dimensions whose standard deviation is below ``eps`` get a scale of 1.

        Returns
        -------
        Standardizer
        """
        x = np.asarray(x, dtype=np.float64)
        x2 = x.reshape(len(x), -1)
        mean = x2.mean(axis=0) if center else np.zeros(x2.shape[1])
        std = x2.std(axis=0)
        std = np.where(std < eps, 1.0, std)
        shape = x.shape[1:]
        return cls(mean=mean.reshape(shape), std=std.reshape(shape))

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Scale ``x`` into standard units."""
        return (np.asarray(x, dtype=np.float64) - self.mean) / self.std

    def inverse(self, z: np.ndarray) -> np.ndarray:
        """Map standard units back to the original units."""
        return np.asarray(z, dtype=np.float64) * self.std + self.mean


class TransitionDataset:
    """A growable table of transitions ``(s, a, r, s', terminated, truncated)``.

    Parameters
    ----------
    obs_dim : int
        Number of observation dimensions ``D``.
    meta : dict, optional
        JSON-serialisable metadata (environment id, collection seed, ...), saved with
        the data.

    Attributes
    ----------
    obs, next_obs : numpy.ndarray
        float64, shape ``(N, D)``.
    action : numpy.ndarray
        int64, shape ``(N,)``.
    reward : numpy.ndarray
        float64, shape ``(N,)``.
    terminated, truncated : numpy.ndarray
        bool, shape ``(N,)``.
    episode : numpy.ndarray
        int64 episode id, shape ``(N,)``; rows of one episode are contiguous.
    timestep : numpy.ndarray
        int64 index of the transition inside its episode, shape ``(N,)``.
    meta : dict
        Metadata.
    """

    def __init__(self, obs_dim: int, meta: dict[str, Any] | None = None):
        if int(obs_dim) < 1:
            raise ConfigError("obs_dim", "an integer >= 1", obs_dim)
        self.obs_dim = int(obs_dim)
        self.meta: dict[str, Any] = dict(meta or {})
        self._n = 0
        self._buf = self._allocate(16)

    # ------------------------------------------------------------------ storage
    def _allocate(self, capacity: int) -> dict[str, np.ndarray]:
        d = self.obs_dim
        return {
            "obs": np.zeros((capacity, d)),
            "action": np.zeros(capacity, dtype=np.int64),
            "reward": np.zeros(capacity),
            "next_obs": np.zeros((capacity, d)),
            "terminated": np.zeros(capacity, dtype=bool),
            "truncated": np.zeros(capacity, dtype=bool),
            "episode": np.zeros(capacity, dtype=np.int64),
            "timestep": np.zeros(capacity, dtype=np.int64),
        }

    def _reserve(self, n_new: int) -> None:
        need = self._n + n_new
        cap = len(self._buf["action"])
        if need <= cap:
            return
        new = self._allocate(max(need, 2 * cap))
        for k in COLUMNS:
            new[k][: self._n] = self._buf[k][: self._n]
        self._buf = new

    def __len__(self) -> int:
        return self._n

    def __repr__(self) -> str:
        return (
            f"TransitionDataset(n={self._n}, obs_dim={self.obs_dim}, episodes={self.n_episodes}, "
            f"meta={self.meta})"
        )

    obs = property(lambda self: self._buf["obs"][: self._n], doc="Observations ``s``, shape (N, D).")
    action = property(lambda self: self._buf["action"][: self._n], doc="Actions ``a``, shape (N,).")
    reward = property(lambda self: self._buf["reward"][: self._n], doc="Rewards ``r``, shape (N,).")
    next_obs = property(lambda self: self._buf["next_obs"][: self._n], doc="Next observations ``s'``.")
    terminated = property(lambda self: self._buf["terminated"][: self._n], doc="Terminal flags.")
    truncated = property(lambda self: self._buf["truncated"][: self._n], doc="Time-limit flags.")
    episode = property(lambda self: self._buf["episode"][: self._n], doc="Episode ids.")
    timestep = property(lambda self: self._buf["timestep"][: self._n], doc="Step index in the episode.")

    @property
    def n_episodes(self) -> int:
        """Number of distinct episode ids."""
        return len(np.unique(self.episode))

    @property
    def episode_ids(self) -> np.ndarray:
        """The distinct episode ids in order of first appearance."""
        ep = self.episode
        if len(ep) == 0:
            return ep.copy()
        starts = np.r_[True, ep[1:] != ep[:-1]]
        return ep[starts]

    # ------------------------------------------------------------------ building
    def append(
        self,
        obs: np.ndarray,
        action: int,
        reward: float,
        next_obs: np.ndarray,
        terminated: bool,
        truncated: bool,
        *,
        episode: int,
        timestep: int,
    ) -> None:
        """Append one transition.

        Parameters
        ----------
        obs, next_obs : numpy.ndarray
            Observations before and after the step, shape ``(D,)``.
        action : int
            The action taken.
        reward : float
            The reward received.
        terminated, truncated : bool
            The step's episode-end flags.
        episode : int
            Episode id.
        timestep : int
            Index of this transition inside its episode (0 for the first).
        """
        self.extend(
            obs=np.asarray(obs)[None],
            action=[action],
            reward=[reward],
            next_obs=np.asarray(next_obs)[None],
            terminated=[terminated],
            truncated=[truncated],
            episode=[episode],
            timestep=[timestep],
        )

    def extend(self, **columns: Any) -> None:
        """Append many transitions given as arrays, one keyword per column.

        Parameters
        ----------
        **columns : array_like
            ``obs``, ``action``, ``reward``, ``next_obs``, ``terminated``, ``truncated``,
            ``episode`` and ``timestep``, all with the same leading length.
        """
        missing = set(COLUMNS) - set(columns)
        extra = set(columns) - set(COLUMNS)
        if missing or extra:
            raise ConfigError("columns", "exactly " + ", ".join(COLUMNS), sorted(columns))
        arrays = {k: np.asarray(columns[k]) for k in COLUMNS}
        n = len(arrays["action"])
        for k, v in arrays.items():
            if len(v) != n:
                raise ConfigError(k, f"{n} rows like 'action'", len(v))
        for k in ("obs", "next_obs"):
            if arrays[k].shape != (n, self.obs_dim):
                raise ConfigError(k, f"shape ({n}, {self.obs_dim})", arrays[k].shape)
        self._reserve(n)
        for k in COLUMNS:
            self._buf[k][self._n : self._n + n] = arrays[k]
        self._n += n

    def subset(self, index: np.ndarray | slice) -> TransitionDataset:
        """A new dataset holding the rows selected by ``index`` (a slice, mask or indices)."""
        out = TransitionDataset(self.obs_dim, meta=self.meta)
        out.extend(**{k: getattr(self, k)[index] for k in COLUMNS})
        return out

    def copy(self) -> TransitionDataset:
        """A deep copy."""
        return self.subset(slice(None))

    @classmethod
    def concatenate(cls, datasets: Sequence[TransitionDataset]) -> TransitionDataset:
        """Stack datasets; episode ids are renumbered so that they stay distinct.

        Parameters
        ----------
        datasets : sequence of TransitionDataset
            At least one dataset; all with the same ``obs_dim``.

        Returns
        -------
        TransitionDataset
            Metadata is taken from the first dataset.
        """
        if len(datasets) == 0:
            raise ConfigError("datasets", "at least one TransitionDataset", 0)
        dims = {d.obs_dim for d in datasets}
        if len(dims) != 1:
            raise ConfigError("datasets", "datasets with the same obs_dim", sorted(dims))
        out = cls(datasets[0].obs_dim, meta=datasets[0].meta)
        offset = 0
        for d in datasets:
            if len(d) == 0:
                continue
            cols = {k: getattr(d, k) for k in COLUMNS}
            # Map this dataset's ids to offset, offset+1, ... (order of first appearance).
            ids = d.episode_ids
            remap = {int(e): offset + i for i, e in enumerate(ids)}
            cols["episode"] = np.array([remap[int(e)] for e in d.episode])
            out.extend(**cols)
            offset += len(ids)
        return out

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike) -> None:
        """Write the dataset to an ``.npz`` file (atomically: a partial file never replaces a good one).

        Parameters
        ----------
        path : str or os.PathLike
            Destination; must end in ``.npz``.
        """
        path = Path(path)
        if path.suffix != ".npz":
            raise ConfigError("path", "a file name ending in .npz", str(path))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            np.savez(
                f,
                obs_dim=np.array(self.obs_dim),
                meta=np.array(json.dumps(self.meta)),
                **{k: getattr(self, k) for k in COLUMNS},
            )
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> TransitionDataset:
        """Read a dataset written by :meth:`save`.

        Parameters
        ----------
        path : str or os.PathLike
            An ``.npz`` file.

        Returns
        -------
        TransitionDataset
        """
        with np.load(path, allow_pickle=False) as z:
            out = cls(int(z["obs_dim"]), meta=json.loads(str(z["meta"])))
            out.extend(**{k: z[k] for k in COLUMNS})
        return out

    # ------------------------------------------------------------------ views for learning
    @property
    def delta(self) -> np.ndarray:
        """The state change ``s' - s``, shape ``(N, D)``."""
        return self.next_obs - self.obs

    def delta_std(self, eps: float = 1e-8) -> np.ndarray:
        """Per-dimension standard deviation of ``s' - s`` (dimensions below ``eps`` give 1)."""
        return Standardizer.fit(self.delta, center=False, eps=eps).std

    def delta_standardizer(self, *, center: bool = True) -> Standardizer:
        """A :class:`Standardizer` fitted to ``s' - s``."""
        return Standardizer.fit(self.delta, center=center)

    def obs_standardizer(self) -> Standardizer:
        """A :class:`Standardizer` fitted to ``s``."""
        return Standardizer.fit(self.obs)

    def split(
        self, held_out_fraction: float = 0.2, *, seed: int | None = None
    ) -> tuple[TransitionDataset, TransitionDataset]:
        """Split by whole episodes into a training and a held-out part.

        Parameters
        ----------
        held_out_fraction : float
            Target fraction of transitions in the held-out part, in (0, 1). Whole
            episodes are moved, so the realised fraction is approximate.
        seed : int, optional
            Shuffle episodes with this seed; if None, the last episodes are held out.

        Returns
        -------
        train, held_out : TransitionDataset
        """
        if not 0.0 < held_out_fraction < 1.0:
            raise ConfigError("held_out_fraction", "a number in (0, 1)", held_out_fraction)
        ids = self.episode_ids
        if seed is not None:
            ids = seeding.split_rng(seed).permutation(ids)
        lengths = np.array([np.count_nonzero(self.episode == e) for e in ids])
        # Take episodes from the end of `ids` until the fraction is reached.
        target = held_out_fraction * len(self)
        cum = np.cumsum(lengths[::-1])
        n_held = int(np.searchsorted(cum, target) + 1)
        n_held = min(max(n_held, 1), len(ids) - 1) if len(ids) > 1 else 0
        held_ids = ids[len(ids) - n_held :]
        mask = np.isin(self.episode, held_ids)
        return self.subset(~mask), self.subset(mask)

    def segment_starts(self, k: int) -> np.ndarray:
        """Rows that start a ``k``-step open-loop segment free of episode ends.

        Row ``i`` qualifies when rows ``i .. i+k-1`` are consecutive steps of one
        episode and none of them is terminated. (Truncation on the last of the ``k``
        rows is allowed: its ``next_obs`` is still a true successor state.)

        Parameters
        ----------
        k : int
            Segment length in steps, >= 1.

        Returns
        -------
        numpy.ndarray
            Indices ``i``; the true state after ``k`` steps is ``next_obs[i + k - 1]``.
        """
        if int(k) < 1:
            raise ConfigError("k", "an integer >= 1", k)
        n = len(self)
        if n < k:
            return np.zeros(0, dtype=np.int64)
        # link[j] is True when row j+1 continues row j (same episode, next step, no end at j).
        link = (
            (self.episode[1:] == self.episode[:-1])
            & (self.timestep[1:] == self.timestep[:-1] + 1)
            & ~self.terminated[:-1]
            & ~self.truncated[:-1]
        )
        bad = np.r_[0, np.cumsum(self.terminated.astype(np.int64))]
        broken = np.r_[0, np.cumsum(~link)]
        starts = np.arange(n - k + 1)
        no_term = bad[starts + k] - bad[starts] == 0
        linked = broken[starts + k - 1] - broken[starts] == 0
        return starts[no_term & linked]


# ---------------------------------------------------------------------- collection
PolicyLike = Callable[[np.ndarray], int] | Any


@runtime_checkable
class Actor(Protocol):
    """Anything that chooses actions like an agent (:class:`~nmbrl_brian.agents.base.BaseAgent` is one)."""

    def act(self, obs: np.ndarray, *, explore: bool = True) -> int:
        """Choose an action for ``obs`` (sampled if ``explore``, else greedy)."""


def _make_actor(
    policy: PolicyLike, n_actions: int, explore: bool
) -> Callable[[np.ndarray, np.random.Generator], int]:
    if policy is None:
        return lambda obs, rng: int(rng.integers(n_actions))
    if isinstance(policy, Actor):
        return lambda obs, rng: int(policy.act(obs, explore=explore))
    if callable(policy):
        return lambda obs, rng: int(policy(obs))
    raise ConfigError("policy", "a BaseAgent, a callable obs -> action, or None", type(policy).__name__)


def collect_transitions(
    model: BaseWorldModel,
    policy: PolicyLike,
    n_transitions: int,
    *,
    seed: int,
    path: str | os.PathLike | None = None,
    explore: bool = True,
    max_episode_steps: int | None = None,
    save_every: int | None = None,
) -> TransitionDataset:
    """Run ``policy`` in ``model`` until the dataset holds ``n_transitions`` rows.

    Episode ``e`` is reset with :func:`~nmbrl_brian.seeding.collection_episode_seed` ``(seed, e)`` and, for the random
    policy, draws its actions from a generator seeded with ``(seed, e)``. A collection
    is therefore reproducible and can be resumed: if ``path`` already holds a dataset
    from the same ``seed``, collection continues after its last row. An unfinished
    last episode is re-entered by resetting with its seed and replaying its stored
    actions (checked against the stored observations; if the replay does not match,
    that episode is dropped and collected again).

    Parameters
    ----------
    model : BaseWorldModel
        The environment (real or learned) to collect from.
    policy : BaseAgent, callable or None
        ``BaseAgent``: ``policy.act(obs, explore=explore)``; callable: ``policy(obs)``;
        None: uniformly random actions from a seeded generator.
    n_transitions : int
        Number of rows wanted in total (including rows already in ``path``).
    seed : int
        Collection seed.
    path : str or os.PathLike, optional
        ``.npz`` file to resume from and to save to.
    explore : bool
        Passed to ``BaseAgent.act``.
    max_episode_steps : int, optional
        Truncate episodes after this many steps (on top of any limit inside ``model``).
    save_every : int, optional
        With ``path``, also save after every this many new rows.

    Returns
    -------
    TransitionDataset
        Exactly ``n_transitions`` rows (the first ``n_transitions`` when the file
        already held more). ``meta`` records ``seed``, ``env_id`` (if the model has
        one) and the policy kind.

    Notes
    -----
    A learning agent's own internal state (weights, RNG) is not part of the file, so
    resumed collections are exact only for stateless policies such as the random one.
    """
    if int(n_transitions) < 0:
        raise ConfigError("n_transitions", "an integer >= 0", n_transitions)
    if max_episode_steps is not None and int(max_episode_steps) < 1:
        raise ConfigError("max_episode_steps", "None or an integer >= 1", max_episode_steps)
    obs_dim = int(model.observation_space.shape[0])
    n_actions = int(model.action_space.n)
    actor = _make_actor(policy, n_actions, explore)
    policy_kind = "random" if policy is None else type(policy).__name__
    meta = {"seed": int(seed), "env_id": getattr(model, "env_id", None), "policy": policy_kind}

    if path is not None and Path(path).exists():
        data = TransitionDataset.load(path)
        if data.meta.get("seed") != int(seed) or data.obs_dim != obs_dim:
            raise ConfigError(
                "seed",
                f"the seed {data.meta.get('seed')} and obs_dim {data.obs_dim} stored in {path} to resume it",
                (int(seed), obs_dim),
            )
        if len(data) >= n_transitions:
            return data.subset(slice(0, int(n_transitions)))
    else:
        data = TransitionDataset(obs_dim, meta=meta)

    # Where to start: a fresh episode, or the unfinished last one re-entered by replay.
    episode, obs, t, rng = 0, None, 0, None
    if len(data):
        last = int(data.episode[-1])
        ended = bool(data.terminated[-1] or data.truncated[-1])
        episode = last + 1 if ended else last
        if not ended:
            rows = np.flatnonzero(data.episode == last)
            obs, t, rng = _replay(model, data, rows, seed, last, n_actions if policy is None else None)
            if obs is None:  # replay did not reproduce the stored rows: drop them
                data = data.subset(slice(0, int(rows[0])))

    since_save = 0
    while len(data) < n_transitions:
        if obs is None:
            obs, _ = model.reset(seed=seeding.collection_episode_seed(seed, episode))
            t, rng = 0, seeding.collection_action_rng(seed, episode)
        action = actor(np.asarray(obs), rng)
        next_obs, reward, terminated, truncated, _ = model.step(action)
        if max_episode_steps is not None and t + 1 >= max_episode_steps:
            truncated = True
        data.append(obs, action, reward, next_obs, terminated, truncated, episode=episode, timestep=t)
        since_save += 1
        if terminated or truncated:
            obs, episode = None, episode + 1
        else:
            obs, t = next_obs, t + 1
        if path is not None and save_every is not None and since_save >= save_every:
            data.save(path)
            since_save = 0
    if path is not None:
        data.save(path)
    return data


def _replay(model, data, rows, seed, episode, n_random_actions):
    """Reset ``model`` into episode ``episode`` and step it through the stored ``rows``.

    ``n_random_actions`` is the action count of the random policy (whose generator
    must advance once per replayed step), or None for other policies.
    """
    obs, _ = model.reset(seed=seeding.collection_episode_seed(seed, episode))
    rng = seeding.collection_action_rng(seed, episode)
    if not np.allclose(obs, data.obs[rows[0]], rtol=0, atol=1e-6):
        return None, 0, None
    for i in rows:
        if n_random_actions is not None:
            rng.integers(n_random_actions)  # keep the random policy's generator in step
        obs, *_ = model.step(int(data.action[i]))
        if not np.allclose(obs, data.next_obs[i], rtol=0, atol=1e-6):
            return None, 0, None
    return obs, int(data.timestep[rows[-1]]) + 1, rng
