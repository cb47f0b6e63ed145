"""Fitting the spiking world model in a closed loop: the one fitting loop of the package.

The learner part (:class:`~nmbrl_brian.parts.world_model.WorldModelLearnerPart`) runs in a
:class:`~nmbrl_brian.loop.ClosedLoop`: alone, when :class:`SNNWorldModel` fits or predicts,
or beside the agent (:class:`~nmbrl_brian.agents.model_based.ModelBasedSpikingAgent`). Either
way the rows of a pass go through :func:`present`, runs of at most
``learner.rows_per_run`` transitions each followed by a silent row, and
:func:`fit_in_loop` makes the passes of a whole fit.

The caller's ``run(periods, values, active)`` does each run (``loop.run`` with the same
arguments, or a wrapper that measures it, e.g. the agent's energy accounting) and returns
the loop's records.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from nmbrl_brian import seeding
from nmbrl_brian.world_models.dataset import TransitionDataset

#: ``run(periods, values, active) -> records``: one run of the loop (see :meth:`ClosedLoop.run`).
RunFn = Callable[[int, dict, list], dict]


def present(
    loop,
    learner,
    inputs: np.ndarray,
    targets: np.ndarray,
    weights: np.ndarray,
    values: dict,
    *,
    run: RunFn,
) -> np.ndarray | None:
    """Present rows (one transition per period) to the learner, ``learner.rows_per_run`` per run.

    Every run ends with a silent row (no input, error weight 0): its first step applies the
    last transition's update, and nothing is pending when the run ends. Under standalone
    every run simulates ``loop.periods_per_run`` periods (the rest of the table is silent).

    Parameters
    ----------
    loop : ClosedLoop
        A loop holding ``learner``.
    learner : WorldModelLearnerPart
        The learner.
    inputs, targets, weights : numpy.ndarray
        Input currents, readout targets and error weights of every row (weights 0: nothing
        is learned from the row, e.g. for predictions).
    values : dict
        Loop values written before the first run (weights, step sizes).
    run : callable
        ``run(periods, values, active)``, see the module docstring.

    Returns
    -------
    numpy.ndarray or None
        The prediction of every row, shape ``(N, n_outputs)`` (the mean readout over the error
        window, before the row's own update), if the learner records its outputs; else None.
    """
    n, cap = len(inputs), learner.rows_per_run
    outputs = []
    for start in range(0, n, cap):
        stop = min(start + cap, n)
        learner.set_rows(inputs[start:stop], targets[start:stop], weights[start:stop])
        periods = loop.periods_per_run if loop.standalone else stop - start + 1
        records = run(periods, values, [learner])
        values = {}
        if learner.recorded:
            # Sample k is latched at the start of period k: the prediction of period k - 1.
            outputs.append(records[learner.prefix].samples["y_period"][1 : stop - start + 1])
    if not learner.recorded:
        return None
    return np.concatenate(outputs) if outputs else np.zeros((0, learner.model.n_outputs))


def _nmse(model, outputs: np.ndarray, data: TransitionDataset) -> float:
    """Mean over dimensions of the squared Δs error of ``outputs``, over the variance of Δs (NaN: no data)."""
    if len(data) == 0:
        return float("nan")
    next_obs, _, _ = model.decode(outputs, data.obs)
    err = (next_obs - data.obs) - data.delta
    var = data.delta.var(axis=0)
    return float(np.mean((err**2).mean(axis=0) / np.where(var > 0, var, np.nan)))


def fit_pass(
    loop,
    learner,
    model,
    data: TransitionDataset,
    *,
    epoch: int,
    n_transitions: int,
    run: RunFn,
    values=None,
    newest: np.ndarray | None = None,
) -> dict[str, Any]:
    """One pass of online supervised e-prop over ``data``, in its order.

    The step sizes are those of pass ``epoch`` of a fit to ``n_transitions`` transitions
    (:meth:`SNNWorldModel.learning_rates`); ``values`` (e.g. the weights) go in with the
    first run. The weights stay in the loop (see :func:`fit_in_loop` to read them back).

    Returns
    -------
    dict
        ``n_transitions``, ``learning_rate``, ``readout_learning_rate``,
        ``direct_learning_rate``, ``online_nmse`` (mean over dimensions of the Δs error made
        on each transition just before learning from it, normalised by the variance of Δs;
        NaN when the learner does not record its outputs), ``newest_nmse`` (the same over the
        rows that ``newest``, a boolean mask in ``data``'s order, marks; NaN without it) and
        ``run_s`` (wall time of the runs).
    """
    inputs = model.encode(data.obs, data.action)
    targets, weights = model.targets(data)
    rates = model.learning_rates(epoch=epoch, n_transitions=n_transitions)
    start = time.perf_counter()
    outputs = present(
        loop,
        learner,
        inputs,
        targets,
        weights,
        {**(values or {}), **learner.learning_rate_values(rates)},
        run=run,
    )
    run_s = time.perf_counter() - start
    online = newest_nmse = float("nan")
    if outputs is not None:
        online = _nmse(model, outputs, data)
        if newest is not None:
            rows = np.flatnonzero(newest)
            newest_nmse = _nmse(model, outputs[rows], data.subset(rows))
    return {
        "n_transitions": len(data),
        "learning_rate": rates[0],
        "readout_learning_rate": rates[1],
        "direct_learning_rate": rates[2],
        "online_nmse": online,
        "newest_nmse": newest_nmse,
        "run_s": run_s,
    }


def pass_order(config, n: int, seed: list[int]) -> np.ndarray:
    """The order of a pass over ``n`` transitions: a permutation drawn with ``seed`` (``config.shuffle``),
    else ``0 .. n-1``."""
    if not config.shuffle:
        return np.arange(n)
    return seeding.order_rng(seed).permutation(n)


def fit_in_loop(
    loop,
    learner,
    model,
    data: TransitionDataset,
    *,
    cycle: int,
    run: RunFn,
    newest: int = 0,
    patience: int = 0,
    tolerance: float = 0.0,
) -> list[dict]:
    """Fit the world model on all real data so far, in ``loop``: the whole of one fit.

    The code (encoding range, whitening, target scalers) is fitted to the first data the
    model sees and kept (:meth:`SNNWorldModel.prepare`). Then ``model.config.epochs_for(len(data))``
    passes, pass ``p`` in a fresh order (seeded ``[config.seed, cycle, p]``) with the step sizes
    decaying over the passes from their first value to ``final_learning_rate_fraction`` of it;
    the learner starts from ``model.weights`` and they are read back at the end.

    Parameters
    ----------
    loop : ClosedLoop
        A loop holding ``learner`` (alone or beside an agent).
    learner : WorldModelLearnerPart
        The learner of ``model``.
    model : SNNWorldModel
        The model (its code, weights and schedule).
    data : TransitionDataset
        All real transitions so far.
    cycle : int
        Which fit this is (seeds the presentation orders).
    run : callable
        ``run(periods, values, active)``: the caller's (e.g. measured) run of the loop.
    newest, patience, tolerance
        The stopping rule (``patience`` > 0 and a learner that records its outputs): the fit
        stops once the one-step error on the ``newest`` (last) transitions of ``data``, measured
        as each pass presents them (before learning from them), has not fallen below
        ``(1 - tolerance)`` times its best for ``patience`` passes in a row.

    Returns
    -------
    list of dict
        One row per pass (:func:`fit_pass`, with ``pass``).
    """
    model.prepare(data)
    passes = model.config.epochs_for(len(data))
    values = learner.weight_values(model.weights)
    stopping = patience > 0 and newest > 0 and bool(learner.recorded)
    best, stale = np.inf, 0
    rows = []
    for p in range(passes):
        order = pass_order(model.config, len(data), seeding.fit_pass_seed(model.config.seed, cycle, p))
        mask = order >= len(data) - newest if stopping else None
        row = fit_pass(
            loop,
            learner,
            model,
            data.subset(order),
            epoch=p,
            n_transitions=len(data),
            run=run,
            values=values,
            newest=mask,
        )
        rows.append({"pass": p, **row})
        values = {}
        if stopping:
            error = row["newest_nmse"]
            if error < best * (1.0 - tolerance):
                best, stale = error, 0
            else:
                stale += 1
            if stale >= patience:
                break
    model.weights = learner.read_weights(loop.value)
    return rows
