"""A direct pathway from the inputs of an e-prop network to its readouts, learned by the readout rule.

Build the network with :func:`direct_readout_equations` as (part of) its
``extra_equations``, then call :func:`add_direct_readout`; add the returned
:attr:`DirectReadout.synapses` to the ``brian2.Network`` beside the network's own
objects. Maths and schedule: :mod:`nmbrl_brian.equations.direct_readout`.

Example
-------
>>> from brian2 import Network, ms
>>> from nmbrl_brian.equations.eprop_neurons import SpikingNetworkConfig
>>> from nmbrl_brian.snn.eprop_network import build_eprop_network
>>> net = build_eprop_network(4, 2, SpikingNetworkConfig(n_recurrent=20), input_kind="current",
...                           extra_equations=direct_readout_equations(True), name_prefix="demo")
>>> direct = add_direct_readout(net, normalized=True, learning_rate=0.5)
>>> Network(*net.objects, direct.synapses).run(20 * ms)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from brian2 import Synapses

from nmbrl_brian.energy import OperationCounts
from nmbrl_brian.equations import direct_readout as deq
from nmbrl_brian.equations.eprop_synapses import WEIGHT_UPDATE
from nmbrl_brian.snn.eprop_network import (
    NEURON_SLOT,
    SYNAPSE_COPY_EQUATION,
    TRACE_SLOT,
    WEIGHT_SLOT,
    EpropNetwork,
)

DIRECT_WEIGHT_KEY = "w_direct"
"""Name of the direct weights among a network's learned parameters (checkpoints, weight dicts)."""


def direct_readout_equations(normalized: bool, joint: bool = False) -> dict[str, str]:
    """The ``extra_equations`` the e-prop builder needs for a direct pathway (inputs and readouts;
    ``joint``: normalised together with the spiking readout, which then sums ``znorm`` too, and the
    builder's ``readout_accumulate`` is :data:`~nmbrl_brian.equations.direct_readout.READOUT_ACCUMULATE_JOINT`)."""
    if joint and not normalized:
        raise ValueError("direct_readout_equations: joint normalisation needs normalized=True")
    return {
        "inputs": deq.INPUT_TRACE_EQUATIONS,
        "readout": (deq.READOUT_NORM_EQUATIONS if normalized else "")
        + (deq.READOUT_JOINT_NORM_EQUATIONS if joint else ""),
        "syn_out": deq.READOUT_SYNAPSE_JOINT_NORM if joint else "",
    }


@dataclass
class DirectReadout:
    """The direct input -> readout synapses of one e-prop network and their operations."""

    synapses: Synapses
    """Input -> readout synapses (``w``, ``grad``, ``lr``); add them to the ``brian2.Network``."""
    normalized: bool
    """Normalised (NLMS) steps."""
    operations: dict = field(default_factory=dict)
    """The ``run_regularly`` operations by role (``input_trace``, ``accumulate``, ``weight_update``)."""
    indices: tuple[np.ndarray, np.ndarray] = (np.zeros(0, np.int32), np.zeros(0, np.int32))
    """Input and readout index ``(i, k)`` of every synapse, in synapse order."""

    def weights(self) -> np.ndarray:
        """A copy of the direct weights (synapse order)."""
        return np.array(self.synapses.w[:])

    def counts(self, input_sends: np.ndarray, steps: int, n_updates: int) -> OperationCounts:
        """Operations of the direct pathway over ``steps`` time steps with ``n_updates`` weight
        updates: a synaptic event per nonzero input send (``input_sends``: sends per input neuron)
        and direct synapse, one accumulation per synapse and step, one update per synapse and
        weight update."""
        fan_out = np.bincount(self.indices[0], minlength=len(input_sends))
        return OperationCounts(
            synaptic_events=int(np.sum(np.asarray(input_sends) * fan_out)),
            synapse_updates=len(self.synapses) * steps,
            weight_updates=len(self.synapses) * n_updates,
        )


def add_direct_readout(
    eprop: EpropNetwork,
    connections: np.ndarray | None = None,
    *,
    normalized: bool,
    learning_rate: float,
    extra_equations: str = "",
    joint_gain: float = 0.0,
) -> DirectReadout:
    """Connect the inputs of ``eprop`` straight to its readouts.

    Parameters
    ----------
    eprop : EpropNetwork
        A network (one or several copies) built with ``extra_equations`` including
        :func:`direct_readout_equations` of the same ``normalized``.
    connections : ndarray of bool, shape (n_inputs, n_outputs), optional
        Which input reaches which readout within a copy (default all to all); every copy is
        connected alike. Direct weights start at 0.
    normalized : bool
        Normalised (NLMS) steps: ``learning_rate`` is the fraction of the current error removed.
    learning_rate : float
        Step size ``lr`` of the direct weights.
    joint_gain : float
        ``lambda`` > 0: normalise jointly with the spiking readout
        (:mod:`nmbrl_brian.equations.direct_readout`; the network built with
        ``direct_readout_equations(True, joint=True)`` and ``readout_accumulate =
        READOUT_ACCUMULATE_JOINT``, its readout synapses' step equal to ``learning_rate``); 0: alone.
    extra_equations : str
        More variables of the direct synapses (e.g. links for a TD update); every synapse also
        has ``syn_copy``, the copy it belongs to.

    Returns
    -------
    DirectReadout
    """
    if eprop.config.hold_input:
        raise ValueError(
            "add_direct_readout: hold_input sends inputs once per period; the direct pathway needs every step"
        )
    copies = eprop.n_copies
    n_in, n_out = len(eprop.inputs) // copies, len(eprop.readout) // copies
    if "zbar_out" not in eprop.inputs.variables or (normalized and "xnorm" not in eprop.readout.variables):
        raise ValueError(
            "add_direct_readout: build the network with extra_equations=direct_readout_equations()"
        )
    joint = joint_gain > 0
    if joint and (not normalized or "znorm" not in eprop.readout.variables):
        raise ValueError(
            "add_direct_readout: joint_gain needs normalized=True and a network built with "
            "extra_equations=direct_readout_equations(True, joint=True)"
        )
    mask = np.ones((n_in, n_out), dtype=bool) if connections is None else np.asarray(connections, dtype=bool)
    if mask.shape != (n_in, n_out):
        raise ValueError(f"connections: expected shape ({n_in}, {n_out}), got {mask.shape}")
    prefix = eprop.clock.name.removesuffix(
        "clock"
    )  # the network's name prefix (its clock is "<prefix>_clock")
    ns = eprop.namespace
    ns["direct_norm_floor"] = deq.NORM_FLOOR
    if joint:
        ns["readout_gain"] = float(joint_gain)
    syn = Synapses(
        eprop.inputs,
        eprop.readout,
        deq.synapse_equations(normalized) + SYNAPSE_COPY_EQUATION + extra_equations,
        on_pre=deq.ON_PRE_DIRECT,
        namespace=ns,
        clock=eprop.clock,
        name=prefix + "syn_direct",
    )
    i0, k0 = np.nonzero(mask)  # every copy connects its own inputs to its own readouts alike
    i = np.concatenate([i0 + c * n_in for c in range(copies)]).astype(np.int32)
    k = np.concatenate([k0 + c * n_out for c in range(copies)]).astype(np.int32)
    if len(i):
        syn.connect(i=i, j=k)
    else:
        syn.connect(condition="False")  # Brian2 wants connect() called even for no synapses
    syn.w = 0.0
    syn.lr = float(learning_rate)
    syn.syn_copy = np.repeat(np.arange(copies), len(i0)).astype(np.int32)
    ops = {
        "input_trace": eprop.inputs.run_regularly(
            deq.INPUT_TRACE_UPDATE,
            when=NEURON_SLOT[0],
            order=NEURON_SLOT[1],
            name=prefix + "input_direct_trace",
        ),
        "accumulate": syn.run_regularly(
            deq.accumulate(normalized, joint),
            when=TRACE_SLOT[0],
            order=TRACE_SLOT[1],
            name=prefix + "syn_direct_accumulate",
        ),
    }
    if eprop.interval_weight_updates:
        ops["weight_update"] = syn.run_regularly(
            WEIGHT_UPDATE,
            dt=eprop.config.update_interval_steps * eprop.config.dt,
            when=WEIGHT_SLOT[0],
            order=WEIGHT_SLOT[1],
            name=prefix + "syn_direct_weight_update",
        )
    return DirectReadout(synapses=syn, normalized=normalized, operations=ops, indices=(i, k))


def weight_variables(eprop: EpropNetwork, direct: DirectReadout | None) -> dict[str, tuple[Any, str]]:
    """The learned parameters of a network with an optional direct pathway, by name:
    ``w_in``, ``w_rec``, ``w_out``, ``b_out`` (``B``) and :data:`DIRECT_WEIGHT_KEY` -> ``(group, variable)``."""
    out = eprop.weight_variables()
    if direct is not None:
        out[DIRECT_WEIGHT_KEY] = (direct.synapses, "w")
    return out


def initial_weights(eprop: EpropNetwork, direct: DirectReadout | None) -> dict[str, np.ndarray]:
    """The weights as built (copies; the direct weights start at 0), by the names of :func:`weight_variables`."""
    weights = {k: v.copy() for k, v in eprop.initial_weights.items()}
    if direct is not None:
        weights[DIRECT_WEIGHT_KEY] = np.zeros(len(direct.synapses))
    return weights
