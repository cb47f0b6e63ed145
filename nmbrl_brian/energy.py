"""Energy accounting: operation counts times energy per operation.

Every network reports :class:`OperationCounts` (spikes, synaptic events, neuron and
synapse updates, multiply-accumulates for dense code); an :class:`EnergyModel`
prices each kind of operation. Two published cost tables are provided:

- :data:`LOIHI` — Intel Loihi, Davies et al. (2018), "Loihi: A Neuromorphic
  Manycore Processor with On-Chip Learning", IEEE Micro 38(1):82-99, Table 1
  (synaptic spike op 23.6 pJ, synaptic update 120 pJ, neuron update 52 pJ, spike
  within a tile 1.7 pJ).
- :data:`CMOS_45NM_FP32` — a conventional processor's arithmetic, Horowitz (2014),
  "Computing's energy problem (and what we can do about it)", ISSCC: 32-bit float
  multiply 3.7 pJ + add 0.9 pJ per multiply-accumulate. Used for the dense baseline.

The figures cover arithmetic and on-chip spike traffic only (no memory hierarchy,
no static power), so they compare computation, not whole systems.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class OperationCounts:
    """How many operations of each kind a network performed."""

    spikes: int = 0
    """Spikes emitted (each is routed once)."""
    synaptic_events: int = 0
    """Spike arrivals at synapses (one per spike per outgoing synapse)."""
    neuron_updates: int = 0
    """Neuron state updates (neurons x time steps)."""
    synapse_updates: int = 0
    """Clock-driven synapse state updates (eligibility traces: synapses x time steps, minus skipped)."""
    weight_updates: int = 0
    """Learning-rule weight writes."""
    macs: int = 0
    """Multiply-accumulates of dense (non-spiking) arithmetic."""

    def __add__(self, other: OperationCounts) -> OperationCounts:
        return OperationCounts(
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in dataclasses.fields(self)}
        )

    def as_dict(self) -> dict[str, int]:
        """The counts by field name."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class EnergyModel:
    """Energy per operation, in picojoules."""

    name: str
    """Label of the cost table (used in tables and figures)."""
    spike_pj: float
    """Energy to emit and route one spike."""
    synaptic_event_pj: float
    """Energy of one synaptic spike operation (a weight read and accumulate)."""
    neuron_update_pj: float
    """Energy of one neuron state update."""
    synapse_update_pj: float
    """Energy of one synapse state (trace) update."""
    weight_update_pj: float
    """Energy of one learning-rule weight write."""
    mac_pj: float
    """Energy of one dense multiply-accumulate."""

    def breakdown(self, counts: OperationCounts) -> pd.DataFrame:
        """Energy per kind of operation as a tidy table (columns: operation, count, energy_j)."""
        price = {
            "spikes": self.spike_pj,
            "synaptic_events": self.synaptic_event_pj,
            "neuron_updates": self.neuron_update_pj,
            "synapse_updates": self.synapse_update_pj,
            "weight_updates": self.weight_update_pj,
            "macs": self.mac_pj,
        }
        rows = [
            {"energy_model": self.name, "operation": op, "count": n, "energy_j": n * price[op] * 1e-12}
            for op, n in counts.as_dict().items()
        ]
        return pd.DataFrame(rows)

    def joules(self, counts: OperationCounts) -> float:
        """Total energy of ``counts`` in joules."""
        return float(self.breakdown(counts)["energy_j"].sum())


#: Intel Loihi (Davies et al. 2018, Table 1). A synaptic update is a learning-engine
#: update; dense MACs are not native and priced as two synaptic ops.
LOIHI = EnergyModel(
    name="loihi",
    spike_pj=1.7,
    synaptic_event_pj=23.6,
    neuron_update_pj=52.0,
    synapse_update_pj=120.0,
    weight_update_pj=120.0,
    mac_pj=47.2,
)

#: 45 nm CMOS, 32-bit floating point (Horowitz 2014): every update is a few MACs.
CMOS_45NM_FP32 = EnergyModel(
    name="cmos45_fp32",
    spike_pj=0.0,
    synaptic_event_pj=4.6,
    neuron_update_pj=3 * 4.6,
    synapse_update_pj=2 * 4.6,
    weight_update_pj=4.6,
    mac_pj=4.6,
)
