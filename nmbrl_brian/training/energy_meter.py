"""The energy meter: operations, e-prop trace updates, steps and periods of every run, per phase.

Every run of a closed loop goes through :meth:`EnergyMeter.run`, which names its phase
(``real``, ``evaluation``, ``dream``, ``world_model``) and the e-prop networks that compute in it.
The counts come from the networks' spike monitors and counters (:func:`~nmbrl_brian.snn.eprop_network.
activity_marks`, :func:`~nmbrl_brian.snn.eprop_network.counts_between`) and are priced by
:mod:`nmbrl_brian.energy` (``energy.csv``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from nmbrl_brian.energy import OperationCounts
from nmbrl_brian.loop import ClosedLoop, RunRecord
from nmbrl_brian.snn.eprop_network import activity_marks, counts_between

#: The phase whose runs compute inference only (no traces, no weight updates) and is not training.
EVALUATION = "evaluation"
#: The phase whose "steps" are transitions presented (one per period), not environment steps.
WORLD_MODEL = "world_model"


class EnergyMeter:
    """Operation counts, trace counts, steps and periods of a closed loop's runs, per phase."""

    def __init__(self) -> None:
        self.counts: dict[str, OperationCounts] = {}
        self.traces: dict[str, dict[str, int]] = {}
        self.steps: dict[str, int] = {}
        self.periods: dict[str, int] = {}

    def run(
        self,
        loop: ClosedLoop,
        periods: int,
        values: dict,
        active,
        phase: str,
        networks: list[tuple[Any, int, int]],
        *,
        inference: bool = False,
    ) -> dict[str, RunRecord]:
        """``loop.run(periods, values, active=active)``, adding its operations to ``phase``.

        Parameters
        ----------
        loop : ClosedLoop
            The loop to run.
        periods, values, active
            As for :meth:`ClosedLoop.run`.
        phase : str
            The phase the run belongs to.
        networks : list of (e-prop network, steps per period, weights written per period)
            What computes in this phase.
        inference : bool
            Learning is off in this run (every evaluation, real or dreamed, and a real phase that
            only collects): no trace or weight updates are counted, as a chip computes none.
        """
        before = [activity_marks(e, loop.value, spikes=not loop.standalone) for e, _, _ in networks]
        records = loop.run(periods, values, active=active)
        ran = next(iter(records.values())).periods
        steps = sum(r.steps for r in records.values())
        self.steps[phase] = self.steps.get(phase, 0) + (steps if phase != WORLD_MODEL else ran)
        self.periods[phase] = self.periods.get(phase, 0) + ran
        for (eprop, steps_per_period, learned), mark in zip(networks, before):
            after = activity_marks(eprop, loop.value)
            counts, traces = counts_between(eprop, mark, after, ran * steps_per_period, learned * ran)
            if inference:
                counts = dataclasses.replace(counts, synapse_updates=0, weight_updates=0)
            self.counts[phase] = self.counts.get(phase, OperationCounts()) + counts
            old = self.traces.get(phase, {"performed": 0, "skipped": 0, "total": 0})
            self.traces[phase] = {k: old[k] + traces[k] for k in old}
        return records

    def training_counts(self) -> OperationCounts:
        """Operations of training (every phase but evaluation)."""
        total = OperationCounts()
        for phase, counts in self.counts.items():
            if phase != EVALUATION:
                total = total + counts
        return total

    def training_traces(self) -> dict[str, int]:
        """Eligibility-trace updates performed, skipped and in total, over every phase but evaluation."""
        totals = {"performed": 0, "skipped": 0, "total": 0}
        for phase, traces in self.traces.items():
            if phase != EVALUATION:
                totals = {k: totals[k] + traces[k] for k in totals}
        return totals

    def state_dict(self) -> dict[str, Any]:
        """The counters as data (keys of the agent checkpoint: ``phase_counts``, ``phase_traces``, ...)."""
        return {
            "phase_counts": {k: v.as_dict() for k, v in self.counts.items()},
            "phase_traces": {k: dict(v) for k, v in self.traces.items()},
            "phase_steps": dict(self.steps),
            "phase_periods": dict(self.periods),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.counts = {k: OperationCounts(**v) for k, v in state["phase_counts"].items()}
        self.traces = {k: {n: int(c) for n, c in v.items()} for k, v in state["phase_traces"].items()}
        self.steps = {k: int(v) for k, v in state["phase_steps"].items()}
        self.periods = {k: int(v) for k, v in state["phase_periods"].items()}
