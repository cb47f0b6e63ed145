"""Operation counts of an e-prop network between two moments of a run (energy accounting).

:func:`activity_marks` reads the raw activity counters of a network; :func:`counts_between`
turns two marks into the :class:`~nmbrl_brian.energy.OperationCounts` of what happened
between them. (Also importable from :mod:`nmbrl_brian.snn.eprop_network`.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from brian2 import Synapses

from nmbrl_brian.energy import OperationCounts

if TYPE_CHECKING:
    from nmbrl_brian.snn.eprop_network import EpropNetwork


def activity_marks(eprop: EpropNetwork, value, *, spikes: bool = True) -> dict[str, np.ndarray]:
    """Raw activity counters of ``eprop``: spikes per input and recurrent neuron (its monitors; zeros
    with ``spikes=False``, e.g. before a standalone run, whose monitors start empty) and the trace
    updates performed by its learning synapse groups (``value(group, name)`` reads the state)."""
    marks = {
        "spikes_in": np.asarray(eprop.spikes_in.count[:]) if spikes else np.zeros(len(eprop.inputs), int),
        "spikes_rec": np.asarray(eprop.spikes_rec.count[:])
        if spikes
        else np.zeros(len(eprop.recurrent), int),
    }
    if eprop.config.activity_sparse:
        for syn in eprop.learning_synapses:
            marks[syn.name] = int(np.sum(value(syn, "n_trace_updates")))  # (empty before a standalone build)
    return marks


def counts_between(
    eprop: EpropNetwork, before: dict, after: dict, steps: int, weight_updates: int
) -> tuple[OperationCounts, dict[str, int]]:
    """Operations of ``eprop`` between two :func:`activity_marks` ``steps`` time steps apart.

    Returns the :class:`OperationCounts` (with the given ``weight_updates``) and the trace
    updates performed, skipped and in total.
    """

    def events(key: str, synapses: Synapses | None, source) -> int:
        if synapses is None:
            return 0
        fan_out = np.bincount(np.asarray(synapses.i[:]), minlength=len(source))
        return int(np.sum((after[key] - before[key]) * fan_out))

    spikes = int(
        np.sum(after["spikes_in"] - before["spikes_in"]) + np.sum(after["spikes_rec"] - before["spikes_rec"])
    )
    synaptic_events = (
        events("spikes_in", eprop.syn_in, eprop.inputs)
        + events("spikes_rec", eprop.syn_rec, eprop.recurrent)
        + events("spikes_rec", eprop.syn_out, eprop.recurrent)
    )
    total = sum(len(syn) for syn in eprop.learning_synapses) * steps
    if eprop.config.activity_sparse:
        performed = int(sum(np.sum(after[syn.name] - before[syn.name]) for syn in eprop.learning_synapses))
    else:
        performed = total
    n_neurons = len(eprop.inputs) + len(eprop.recurrent) + len(eprop.readout)
    counts = OperationCounts(
        spikes=spikes,
        synaptic_events=synaptic_events,
        neuron_updates=n_neurons * steps,
        synapse_updates=performed + len(eprop.syn_out) * steps,
        weight_updates=int(weight_updates),
    )
    return counts, {"performed": performed, "skipped": total - performed, "total": total}
