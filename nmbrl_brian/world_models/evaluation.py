"""Held-out metrics for any world model with a vectorised one-step prediction.

A model qualifies if it implements :class:`PredictiveModel`:
``predict(obs (N, D), actions (N,)) -> (next_obs (N, D), reward (N,), term_prob (N,))``.

Metrics (all on held-out transitions):

* **One-step NMSE** per dimension :math:`d`:
  :math:`\\mathrm{NMSE}_d = \\overline{(\\hat{\\Delta s}_d - \\Delta s_d)^2} / \\mathrm{Var}(\\Delta s_d)`,
  with :math:`\\Delta s = s' - s`; 0 is perfect and 1 is as good as predicting the
  mean change. The ``dim="mean"`` row averages over dimensions.
* **k-step open-loop NMSE**: from each held-out segment of ``k`` consecutive steps
  that does not terminate, the model is rolled out on its own predictions with the
  recorded actions; the error of the state after ``k`` steps is normalised by the
  variance of the true ``k``-step change :math:`s_k - s_0` over the segments, so
  ``k = 1`` equals the one-step NMSE.
* **Termination precision and recall** of ``term_prob > threshold`` against the
  recorded ``terminated`` flags (NaN when undefined: no predicted or no true terminals).
* **Reward MSE** (``dim="reward"``).

Results are tidy pandas DataFrames with columns
``model, metric, dim, k, value, n`` (``n``: number of rows or segments used).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd

from nmbrl_brian import seeding
from nmbrl_brian.errors import ConfigError
from nmbrl_brian.world_models.dataset import TransitionDataset

__all__ = [
    "METRIC_COLUMNS",
    "PredictiveModel",
    "ZeroDeltaModel",
    "evaluate_model",
    "evaluate_models",
    "one_step_metrics",
    "rollout",
    "rollout_metrics",
    "termination_metrics",
]

METRIC_COLUMNS = ("model", "metric", "dim", "k", "value", "n")
"""Columns of every metrics table."""


@runtime_checkable
class PredictiveModel(Protocol):
    """Anything with a vectorised one-step prediction."""

    def predict(self, obs: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Predict ``(next_obs (N, D), reward (N,), term_prob (N,))`` for ``obs (N, D)`` and ``actions (N,)``."""
        ...


class ZeroDeltaModel:
    """The reference predictor ``s' = s``, reward 0, never terminal."""

    def predict(self, obs: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        obs = np.asarray(obs, dtype=np.float64)
        return obs.copy(), np.zeros(len(obs)), np.zeros(len(obs))


def rollout(
    model: PredictiveModel, obs0: np.ndarray, actions: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Roll ``model`` out open-loop from a batch of start states.

    Parameters
    ----------
    model : PredictiveModel
        The model.
    obs0 : numpy.ndarray
        Start states, shape ``(N, D)``.
    actions : numpy.ndarray
        Action sequences, shape ``(N, k)``.

    Returns
    -------
    states : numpy.ndarray
        ``(N, k + 1, D)``; ``states[:, 0] = obs0``.
    rewards : numpy.ndarray
        ``(N, k)``.
    term_probs : numpy.ndarray
        ``(N, k)``.
    """
    obs = np.asarray(obs0, dtype=np.float64)
    actions = np.asarray(actions)
    n, k = actions.shape
    states = np.empty((n, k + 1, obs.shape[1]))
    rewards = np.empty((n, k))
    term = np.empty((n, k))
    states[:, 0] = obs
    for j in range(k):
        obs, r, p = model.predict(obs, actions[:, j])
        states[:, j + 1], rewards[:, j], term[:, j] = obs, r, p
    return states, rewards, term


def _dim_names(data: TransitionDataset, dim_names: Sequence[str] | None) -> list[str]:
    if dim_names is None:
        return [str(i) for i in range(data.obs_dim)]
    if len(dim_names) != data.obs_dim:
        raise ConfigError("dim_names", f"{data.obs_dim} names", list(dim_names))
    return list(dim_names)


def _nmse_rows(name, metric, k, err, target, names) -> list[dict]:
    var = target.var(axis=0)
    nmse = (err**2).mean(axis=0) / np.where(var > 0, var, np.nan)
    rows = [
        {"model": name, "metric": metric, "dim": dn, "k": k, "value": float(v), "n": len(err)}
        for dn, v in zip(names, nmse)
    ]
    rows.append(
        {
            "model": name,
            "metric": metric,
            "dim": "mean",
            "k": k,
            "value": float(np.nanmean(nmse)),
            "n": len(err),
        }
    )
    return rows


def one_step_metrics(
    model: PredictiveModel,
    data: TransitionDataset,
    *,
    name: str = "model",
    dim_names: Sequence[str] | None = None,
) -> pd.DataFrame:
    """One-step NMSE of ``s' - s`` per dimension and averaged, plus the reward MSE.

    Parameters
    ----------
    model : PredictiveModel
        The model.
    data : TransitionDataset
        Held-out transitions.
    name : str
        Value of the ``model`` column.
    dim_names : sequence of str, optional
        Names of the observation dimensions (default ``"0"``, ``"1"``, ...).

    Returns
    -------
    pandas.DataFrame
        Rows ``metric="nmse", k=1`` (one per dimension and ``dim="mean"``) and
        ``metric="mse", dim="reward", k=1``.
    """
    names = _dim_names(data, dim_names)
    next_obs, reward, _ = model.predict(data.obs, data.action)
    delta = data.delta
    rows = _nmse_rows(name, "nmse", 1, (np.asarray(next_obs) - data.obs) - delta, delta, names)
    mse_r = float(np.mean((np.asarray(reward) - data.reward) ** 2))
    rows.append({"model": name, "metric": "mse", "dim": "reward", "k": 1, "value": mse_r, "n": len(data)})
    return pd.DataFrame(rows, columns=METRIC_COLUMNS)


def rollout_metrics(
    model: PredictiveModel,
    data: TransitionDataset,
    *,
    ks: Sequence[int] = (10, 25),
    name: str = "model",
    dim_names: Sequence[str] | None = None,
    max_segments: int | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """k-step open-loop NMSE of the state on held-out segments without episode ends.

    Parameters
    ----------
    model : PredictiveModel
        The model.
    data : TransitionDataset
        Held-out transitions (whole episodes, in order).
    ks : sequence of int
        Horizons.
    name : str
        Value of the ``model`` column.
    dim_names : sequence of str, optional
        Names of the observation dimensions.
    max_segments : int, optional
        Use at most this many segments per horizon (a seeded random subset).
    seed : int
        Seed of that subset.

    Returns
    -------
    pandas.DataFrame
        Rows ``metric="rollout_nmse"`` per dimension and ``dim="mean"`` for each
        ``k``; ``value`` is NaN and ``n`` is 0 when no segment of length ``k`` exists.
    """
    names = _dim_names(data, dim_names)
    rows: list[dict] = []
    for k in ks:
        starts = data.segment_starts(int(k))
        if max_segments is not None and len(starts) > max_segments:
            starts = np.sort(seeding.segment_rng(seed).choice(starts, max_segments, replace=False))
        if len(starts) == 0:
            rows += [
                {"model": name, "metric": "rollout_nmse", "dim": dn, "k": int(k), "value": np.nan, "n": 0}
                for dn in [*names, "mean"]
            ]
            continue
        idx = starts[:, None] + np.arange(int(k))[None, :]
        states, _, _ = rollout(model, data.obs[starts], data.action[idx])
        s0, true_k = data.obs[starts], data.next_obs[starts + int(k) - 1]
        rows += _nmse_rows(name, "rollout_nmse", int(k), states[:, -1] - true_k, true_k - s0, names)
    return pd.DataFrame(rows, columns=METRIC_COLUMNS)


def termination_metrics(
    model: PredictiveModel, data: TransitionDataset, *, name: str = "model", threshold: float = 0.5
) -> pd.DataFrame:
    """Precision and recall of one-step termination predictions.

    Parameters
    ----------
    model : PredictiveModel
        The model.
    data : TransitionDataset
        Held-out transitions.
    name : str
        Value of the ``model`` column.
    threshold : float
        A transition is predicted terminal when ``term_prob > threshold``.

    Returns
    -------
    pandas.DataFrame
        Rows ``metric`` in ``("precision", "recall")`` with ``dim="terminated"``,
        ``k=1``; ``n`` is the number of predicted (precision) or true (recall) terminals.
    """
    _, _, p = model.predict(data.obs, data.action)
    pred = np.asarray(p) > threshold
    true = data.terminated
    tp = int(np.count_nonzero(pred & true))
    n_pred, n_true = int(pred.sum()), int(true.sum())
    precision = tp / n_pred if n_pred else np.nan
    recall = tp / n_true if n_true else np.nan
    rows = [
        {"model": name, "metric": "precision", "dim": "terminated", "k": 1, "value": precision, "n": n_pred},
        {"model": name, "metric": "recall", "dim": "terminated", "k": 1, "value": recall, "n": n_true},
    ]
    return pd.DataFrame(rows, columns=METRIC_COLUMNS)


def evaluate_model(
    model: PredictiveModel,
    data: TransitionDataset,
    *,
    name: str = "model",
    ks: Sequence[int] = (10, 25),
    threshold: float = 0.5,
    dim_names: Sequence[str] | None = None,
    max_segments: int | None = None,
) -> pd.DataFrame:
    """All metrics of one model: one-step, k-step rollout and termination.

    Parameters
    ----------
    model : PredictiveModel
        The model.
    data : TransitionDataset
        Held-out transitions.
    name : str
        Value of the ``model`` column.
    ks : sequence of int
        Rollout horizons.
    threshold : float
        Termination decision threshold.
    dim_names : sequence of str, optional
        Names of the observation dimensions.
    max_segments : int, optional
        Cap on rollout segments per horizon.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`METRIC_COLUMNS`.
    """
    if not isinstance(model, PredictiveModel):
        raise ConfigError("model", "an object with predict(obs, actions)", type(model).__name__)
    return pd.concat(
        [
            one_step_metrics(model, data, name=name, dim_names=dim_names),
            rollout_metrics(model, data, ks=ks, name=name, dim_names=dim_names, max_segments=max_segments),
            termination_metrics(model, data, name=name, threshold=threshold),
        ],
        ignore_index=True,
    )


def evaluate_models(models: Mapping[str, PredictiveModel], data: TransitionDataset, **kwargs) -> pd.DataFrame:
    """:func:`evaluate_model` for several named models, stacked into one table.

    Parameters
    ----------
    models : mapping of str to PredictiveModel
        Name -> model.
    data : TransitionDataset
        Held-out transitions.
    **kwargs
        Passed to :func:`evaluate_model`.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`METRIC_COLUMNS`.
    """
    return pd.concat(
        [evaluate_model(m, data, name=n, **kwargs) for n, m in models.items()], ignore_index=True
    )
