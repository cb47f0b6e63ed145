"""Build an e-prop network (inputs -> recurrent LIF/ALIF layer -> leaky readouts) in Brian2.

The builder returns every Brian2 object in an :class:`EpropNetwork`; the caller adds
``net.objects`` to its own explicit ``brian2.Network`` (several e-prop networks, an
environment and an agent can share one ``Network`` and one standalone build). The
builder uses no ``network_operation``: everything is Brian2 code (``run_regularly``,
thresholds, synaptic pathways, summed variables), so the network compiles with
``cpp_standalone`` and brian2cuda. Equations and schedule:
:mod:`nmbrl_brian.equations.eprop_neurons` and
:mod:`nmbrl_brian.equations.eprop_synapses`.

Example
-------
>>> from brian2 import Network, ms
>>> from nmbrl_brian.equations.eprop_neurons import SpikingNetworkConfig
>>> net = build_eprop_network(4, 2, SpikingNetworkConfig(n_recurrent=20), seed=0, name_prefix="demo")
>>> brian_net = Network(*net.objects)
>>> net.set_inputs([0.2, 0.5, 1.0, 0.0]); net.set_errors([0.1, -0.3])
>>> brian_net.run(20 * ms)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from brian2 import Clock, NeuronGroup, SpikeMonitor, Synapses, TimedArray

from nmbrl_brian import seeding
from nmbrl_brian.energy import OperationCounts
from nmbrl_brian.equations import eprop_neurons as neq
from nmbrl_brian.equations import eprop_synapses as seq
from nmbrl_brian.equations import fixed_point as fp
from nmbrl_brian.equations.eprop_neurons import SpikingNetworkConfig
from nmbrl_brian.snn.counting import activity_marks, counts_between  # noqa: F401 - re-exported

#: Keys of ``extra_equations``: the groups of the network.
EXTRA_EQUATION_KEYS = ("inputs", "recurrent", "readout", "syn_in", "syn_rec", "syn_out")
#: Every group numbers the copy its neurons belong to (synapses: ``syn_copy``, since Brian2
#: forbids a synaptic variable named like a pre- or postsynaptic one).
COPY_EQUATION = "\ncopy : integer (constant)   # index of the network copy (batch dimension)\n"
SYNAPSE_COPY_EQUATION = "\nsyn_copy : integer (constant)   # index of the network copy (batch dimension)\n"
#: The weight array of each synapse group, by connectivity key.
WEIGHT_KEYS = {"in": "w_in", "rec": "w_rec", "out": "w_out", "feedback": "B"}

#: Where each per-step operation runs (see the schedule in eprop_neurons).
INPUT_SLOT = ("before_thresholds", 0)
TRACE_SLOT = ("before_thresholds", 1)
NEURON_SLOT = ("after_synapses", 0)
HELD_CLEAR_SLOT = ("before_synapses", 0)
WEIGHT_SLOT = ("end", 0)


@dataclass
class EpropNetwork:
    """Every Brian2 object of one e-prop network, and helpers to drive and read it.

    Add :attr:`objects` to a ``brian2.Network``; the ``run_regularly`` operations are
    contained in their groups and come with them (they are listed in
    :attr:`operations` only to keep references and for inspection).
    """

    config: SpikingNetworkConfig
    """The configuration it was built from."""
    input_kind: str
    """``"poisson"``, ``"current"`` or ``"timed"``."""
    error_mode: str
    """``"external"`` (caller writes ``readout.err``) or ``"supervised"`` (``err = y - y_target``)."""
    clock: Clock
    """The clock of all per-step operations."""
    namespace: dict
    """Constants handed to Brian2 (decay factors, thresholds, TimedArrays)."""
    inputs: NeuronGroup
    """Input neurons: ``x`` (written by the caller), ``s`` (sent this step), ``zbar``."""
    recurrent: NeuronGroup
    """Recurrent LIF/ALIF neurons: ``v``, ``a``, ``psi``, ``zbar``, ``zbar_out``, ``L``, ..."""
    readout: NeuronGroup
    """Leaky readouts: ``y``, ``b``, ``err``, ``y_target``, ``grad_b``."""
    syn_in: Synapses
    """Input -> recurrent synapses (``w``, and ``ebar``, ``grad``, ``eps_a`` when learning)."""
    syn_rec: Synapses | None
    """Recurrent -> recurrent synapses (None when ``config.recurrent`` is off)."""
    syn_out: Synapses
    """Recurrent -> readout synapses (``w``, ``grad``; sum ``L`` with symmetric feedback)."""
    syn_feedback: Synapses | None
    """Readout -> recurrent random feedback (``B``); None for symmetric feedback or no hidden learning."""
    spikes_in: SpikeMonitor
    """Counts of nonzero input sends (``record=False``)."""
    spikes_rec: SpikeMonitor
    """Counts of recurrent spikes (``record=False``)."""
    operations: dict = field(default_factory=dict)
    """The ``run_regularly`` operations by role (step, traces, weight updates)."""
    timed_arrays: dict = field(default_factory=dict)
    """TimedArrays used by the network (``input_values``, ``targets``)."""
    initial_weights: dict = field(default_factory=dict)
    """The weights drawn by the builder (NumPy; readable before a standalone run)."""
    synapse_indices: dict = field(default_factory=dict)
    """``(i, j)`` index arrays of each synapse group, as connected by the builder."""
    n_copies: int = 1
    """Independent copies of the network in these groups (the batch dimension)."""
    interval_weight_updates: bool = True
    """Whether the builder scheduled the supervised weight updates every ``update_interval_steps``."""

    @property
    def objects(self) -> list:
        """The objects to add to a ``brian2.Network`` (groups, synapses, monitors)."""
        objs = [self.inputs, self.recurrent, self.readout, self.syn_in, self.syn_out]
        objs += [s for s in (self.syn_rec, self.syn_feedback) if s is not None]
        return objs + [self.spikes_in, self.spikes_rec]

    @property
    def learning_synapses(self) -> list[Synapses]:
        """The synapse groups with e-prop traces (empty when hidden learning is off)."""
        if not self.config.hidden_learning:
            return []
        return [s for s in (self.syn_in, self.syn_rec) if s is not None]

    @property
    def dt(self):
        """Time step of the network."""
        return self.clock.dt

    # Driving the network
    def set_inputs(self, x) -> None:
        """Write the input values ``x`` (Poisson scale in [0, 1], or currents)."""
        self.inputs.x[:] = np.asarray(x, dtype=float)

    def set_errors(self, err) -> None:
        """Write the per-readout error ``err_k`` (external mode; e.g. TD-error modulated)."""
        self.readout.err[:] = np.asarray(err, dtype=float)

    def set_targets(self, y_target) -> None:
        """Write supervised targets ``y*_k`` (supervised mode without a target TimedArray)."""
        self.readout.y_target[:] = np.asarray(y_target, dtype=float)

    def readout_values(self) -> np.ndarray:
        """Current readouts ``y_k`` (bias included)."""
        return np.array(self.readout.y[:])

    def set_learning_rates(self, hidden: float | None = None, readout: float | None = None) -> None:
        """Change the step sizes (0 freezes a part of the network)."""
        if hidden is not None:
            for syn in self.learning_synapses:
                syn.lr = float(hidden)
        if readout is not None:
            self.syn_out.lr = float(readout)
            self.readout.lr_b = float(readout)

    def reset_state(self) -> None:
        """Clear neuron states, traces and pending gradients (weights are kept)."""
        for var in ("x", "s", "zbar"):
            getattr(self.inputs, var)[:] = 0.0
        rec_vars = ["v", "I_syn", "ref_left", "psi", "zbar", "zbar_out", "L"]
        if self.config.hold_input:
            rec_vars.append("I_in")
        if self.config.neuron_model == "ALIF":
            rec_vars.append("a")
        for var in rec_vars:
            getattr(self.recurrent, var)[:] = 0.0
        for var in ("y", "I_syn", "bbar", "err", "grad_b"):
            getattr(self.readout, var)[:] = 0.0
        for syn in self.learning_synapses:
            syn.ebar[:] = 0.0
            syn.grad[:] = 0.0
            if self.config.neuron_model == "ALIF":
                syn.eps_a[:] = 0.0
        self.syn_out.grad[:] = 0.0

    # ----------------------------------------------------------------------------------
    # Weights (checkpoints, standalone run_args)
    def get_weights(self) -> dict[str, np.ndarray]:
        """Copies of the weights in synapse order: ``w_in``, ``w_rec``, ``w_out``, ``b_out`` (+ ``B``)."""
        weights = {
            "w_in": np.array(self.syn_in.w[:]),
            "w_out": np.array(self.syn_out.w[:]),
            "b_out": np.array(self.readout.b[:]),
        }
        if self.syn_rec is not None:
            weights["w_rec"] = np.array(self.syn_rec.w[:])
        if self.syn_feedback is not None:
            weights["B"] = np.array(self.syn_feedback.B[:])
        return weights

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Write weights saved by :meth:`get_weights` (same connectivity)."""
        for key, (obj, var) in self.weight_variables().items():
            if key in weights:
                getattr(obj, var)[:] = np.asarray(weights[key], dtype=float)

    def weight_run_args(self, weights: dict[str, np.ndarray]) -> dict:
        """``run_args`` for ``device.run`` that start a standalone run from ``weights``."""
        return {
            getattr(obj, var): np.asarray(weights[key], dtype=float)
            for key, (obj, var) in self.weight_variables().items()
            if key in weights
        }

    def weight_variables(self) -> dict:
        """The learnt variables ``{key: (group, variable)}``: ``w_in``, ``w_out``, ``b_out``, and ``w_rec``
        and ``B`` (feedback) when the network has them."""
        out = {"w_in": (self.syn_in, "w"), "w_out": (self.syn_out, "w"), "b_out": (self.readout, "b")}
        if self.syn_rec is not None:
            out["w_rec"] = (self.syn_rec, "w")
        if self.syn_feedback is not None:
            out["B"] = (self.syn_feedback, "B")
        return out

    def connectivity(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Presynaptic and postsynaptic indices ``(i, j)`` of each synapse group (keys ``in``,
        ``rec``, ``out``, ``feedback``), in synapse order; fixed at build time."""
        return {k: (i.copy(), j.copy()) for k, (i, j) in self.synapse_indices.items()}

    def gradients(self) -> dict[str, np.ndarray]:
        """The gradient accumulators since the last weight update (synapse order)."""
        grads = {"w_out": np.array(self.syn_out.grad[:]), "b_out": np.array(self.readout.grad_b[:])}
        if self.config.hidden_learning:
            grads["w_in"] = np.array(self.syn_in.grad[:])
            if self.syn_rec is not None:
                grads["w_rec"] = np.array(self.syn_rec.grad[:])
        return grads

    # ----------------------------------------------------------------------------------
    # Operation counts for energy accounting
    def steps_done(self) -> int:
        """Time steps simulated so far (from the network's clock)."""
        return int(round(float(self.recurrent.t / self.clock.dt)))

    def trace_update_counts(self) -> dict[str, int]:
        """Eligibility-trace updates performed and skipped (``skipped`` is 0 in dense mode)."""
        steps = self.steps_done()
        total = sum(len(s) for s in self.learning_synapses) * steps
        if self.config.activity_sparse:
            performed = int(sum(int(np.sum(s.n_trace_updates[:])) for s in self.learning_synapses))
        else:
            performed = total
        return {"performed": performed, "skipped": total - performed, "total": total}

    def operation_counts(self) -> OperationCounts:
        """Operations so far: spikes, synaptic events, neuron, trace and weight updates."""
        steps = self.steps_done()

        def events(monitor: SpikeMonitor, synapses: Synapses | None) -> int:
            if synapses is None:
                return 0
            fan_out = np.bincount(np.asarray(synapses.i[:]), minlength=len(monitor.source))
            return int(np.sum(np.asarray(monitor.count[:]) * fan_out))

        n_neurons = len(self.inputs) + len(self.recurrent) + len(self.readout)
        syn_events = (
            events(self.spikes_in, self.syn_in)
            + events(self.spikes_rec, self.syn_rec)
            + events(self.spikes_rec, self.syn_out)
        )
        interval = self.config.update_interval_steps
        n_updates = (steps - 1) // interval if steps > 0 else 0
        learned = sum(len(s) for s in self.learning_synapses) + len(self.syn_out) + len(self.readout)
        return OperationCounts(
            spikes=int(self.spikes_in.num_spikes + self.spikes_rec.num_spikes),
            synaptic_events=syn_events,
            neuron_updates=n_neurons * steps,
            synapse_updates=self.trace_update_counts()["performed"] + len(self.syn_out) * steps,
            weight_updates=learned * n_updates,
        )


def build_eprop_network(
    n_inputs: int,
    n_outputs: int,
    config: SpikingNetworkConfig,
    *,
    input_kind: str | None = None,
    error_mode: str = "external",
    seed: int | Sequence[int] = 0,
    name_prefix: str = "eprop",
    input_values: np.ndarray | None = None,
    targets: np.ndarray | None = None,
    extra_equations: Mapping[str, str] | None = None,
    interval_weight_updates: bool = True,
    readout_accumulate: str = seq.READOUT_ACCUMULATE,
) -> EpropNetwork:
    """Build the Brian2 objects of an e-prop network (one or several independent copies).

    Parameters
    ----------
    n_inputs, n_outputs : int
        Number of input neurons and of leaky readouts (per copy).
    config : SpikingNetworkConfig
        Sizes, time constants, connectivity, feedback and learning settings. ``hold_input``
        (current inputs only, else ValueError) sends inputs once per period into ``I_in``
        (see :mod:`nmbrl_brian.equations.eprop_neurons`), and again after each interval update.
    input_kind : str, optional
        ``"poisson"``, ``"current"`` or ``"timed"``; default ``config.input_kind``.
        ``"timed"`` plays ``input_values`` (fixed spikes or currents per step).
    error_mode : str
        ``"external"``: the caller writes ``readout.err`` (e.g. TD-error modulated);
        ``"supervised"``: ``err = y - y_target`` every step.
    seed : int or sequence of int
        Seeds connectivity and initial weights (NumPy; Brian2's own ``rand()`` for
        Poisson inputs is seeded by the caller with ``brian2.seed``). A sequence of
        ``B`` seeds builds ``B`` independent copies in the same groups: copy ``c`` is
        the network that ``seed=seeds[c]`` builds, its neurons and synapses follow those
        of copy ``c - 1``, and every group has an integer ``copy`` variable.
    name_prefix : str
        Prefix of every Brian2 object name (a Python identifier), unique per network.
    input_values : ndarray, shape (n_steps, B * n_inputs), optional
        For ``input_kind="timed"``: the value each input sends at each step (0 = nothing).
    targets : ndarray, shape (n_steps, B * n_outputs), optional
        For ``error_mode="supervised"``: targets per step as a TimedArray (else the
        caller writes ``readout.y_target``).
    extra_equations : mapping, optional
        More equation lines per group, appended to its model: keys ``inputs``,
        ``recurrent``, ``readout``, ``syn_in``, ``syn_rec``, ``syn_out``. This is how a
        part that wires the network into a closed loop adds its links (for example a
        ``(linked)`` TD error) before the groups exist.
    interval_weight_updates : bool
        Apply and clear the accumulated gradients every ``config.update_interval_steps``
        steps (supervised e-prop). False leaves the weight updates to the caller (for
        example once per environment step, by TD error).

    readout_accumulate : str
        The readout synapses' gradient accumulation per step: the plain rule, or a jointly normalised
        direct pathway's (:data:`~nmbrl_brian.equations.direct_readout.READOUT_ACCUMULATE_JOINT`).

    Returns
    -------
    EpropNetwork
    """
    input_kind = config.input_kind if input_kind is None else input_kind
    seeds = [int(seed)] if isinstance(seed, (int, np.integer)) else [int(s) for s in seed]
    extras = dict(extra_equations or {})
    if input_kind not in neq.INPUT_KINDS:
        raise ValueError(f"input_kind: expected one of {', '.join(neq.INPUT_KINDS)}, got {input_kind!r}")
    if error_mode not in neq.ERROR_MODES:
        raise ValueError(f"error_mode: expected one of {', '.join(neq.ERROR_MODES)}, got {error_mode!r}")
    if not name_prefix.isidentifier():
        raise ValueError(f"name_prefix: expected a Python identifier, got {name_prefix!r}")
    if (input_kind == "timed") != (input_values is not None):
        raise ValueError("input_values: give it exactly when input_kind='timed'")
    if targets is not None and error_mode != "supervised":
        raise ValueError("targets: only used with error_mode='supervised'")
    if config.hold_input and input_kind != "current":
        raise ValueError(f"hold_input: only with input_kind='current', got {input_kind!r}")
    if n_inputs < 1 or n_outputs < 1:
        raise ValueError(f"n_inputs, n_outputs: expected >= 1, got {n_inputs}, {n_outputs}")
    if not seeds:
        raise ValueError("seed: expected an integer or a non-empty sequence of integers")
    unknown = set(extras) - set(EXTRA_EQUATION_KEYS)
    if unknown:
        raise ValueError(
            f"extra_equations: expected keys among {', '.join(EXTRA_EQUATION_KEYS)}, got {sorted(unknown)}"
        )

    p = f"{name_prefix}_"
    model, n_rec = config.neuron_model, config.n_recurrent
    # Held inputs (eprop_neurons docstring): resend after every interval update of the input weights.
    hold = config.hold_input
    refresh = hold and interval_weight_updates and config.hidden_learning
    n_copies = len(seeds)
    rngs = [seeding.network_rng(s) for s in seeds]
    clock = Clock(dt=config.dt, name=p + "clock")
    ns = config.namespace()
    fixed = config.numerics == "fixed"  # integer recurrent layer and weight grids (equations/fixed_point.py)
    ns.update(fp.fixed_namespace(config) if fixed else {})
    timed: dict = {}
    for key, values, width in (("input_values", input_values, n_inputs), ("targets", targets, n_outputs)):
        if values is None:
            continue
        values = np.asarray(values, dtype=float)
        if values.ndim != 2 or values.shape[1] != n_copies * width:
            raise ValueError(f"{key}: expected shape (n_steps, {n_copies * width}), got {values.shape}")
        timed[key] = TimedArray(values, dt=config.dt, name=p + key)
    for ta in timed.values():
        ns[ta.name] = ta
    ops: dict = {}
    indices: dict = {}
    weights: dict = {}

    def equations(base, key: str) -> str:
        copy = SYNAPSE_COPY_EQUATION if key.startswith("syn") else COPY_EQUATION
        return str(base) + copy + extras.get(key, "")

    def number_copies(group, size: int) -> None:
        group.copy = np.repeat(np.arange(n_copies), size)

    # Neurons ---------------------------------------------------------------------------
    inputs = NeuronGroup(
        n_copies * n_inputs,
        equations(neq.INPUT_EQUATIONS, "inputs"),
        threshold=neq.input_threshold(hold, refresh),
        reset="",
        namespace=ns,
        clock=clock,
        name=p + "input",
    )
    ops["input_step"] = inputs.run_regularly(
        fp.quantised_traces(neq.input_update(input_kind, p + "input_values"), ("zbar",) if fixed else ()),
        when=INPUT_SLOT[0],
        order=INPUT_SLOT[1],
        name=p + "input_step",
    )
    recurrent = NeuronGroup(
        n_copies * n_rec,
        equations(
            str(neq.recurrent_equations(model, hold)) + (fp.FIXED_RECURRENT_EXTRA if fixed else ""),
            "recurrent",
        ),
        threshold=fp.FIXED_LIF_THRESHOLD if fixed else neq.recurrent_threshold(model),
        reset="",
        namespace=ns,
        clock=clock,
        name=p + "recurrent",
    )
    ops["recurrent_step"] = recurrent.run_regularly(
        fp.fixed_recurrent_update(hold) if fixed else neq.recurrent_update(model, hold),
        when=NEURON_SLOT[0],
        order=NEURON_SLOT[1],
        name=p + "recurrent_step",
    )
    if hold:
        ops["held_input_clear"] = recurrent.run_regularly(
            neq.held_input_clear(refresh),
            when=HELD_CLEAR_SLOT[0],
            order=HELD_CLEAR_SLOT[1],
            name=p + "held_clear",
        )
    readout = NeuronGroup(
        n_copies * n_outputs,
        equations(neq.READOUT_EQUATIONS, "readout"),
        namespace=ns,
        clock=clock,
        name=p + "readout",
    )
    ops["readout_step"] = readout.run_regularly(
        neq.readout_update(error_mode, p + "targets" if targets is not None else None),
        when=NEURON_SLOT[0],
        order=NEURON_SLOT[1],
        name=p + "readout_step",
    )
    readout.lr_b = config.readout_learning_rate
    for group, size in ((inputs, n_inputs), (recurrent, n_rec), (readout, n_outputs)):
        number_copies(group, size)

    # Synapses ---------------------------------------------------------------------------
    learn = config.hidden_learning
    interval = config.update_interval_steps * config.dt
    syn_eqs = (
        seq.learning_synapse_equations(model, config.activity_sparse, config.event_driven_traces)
        if learn
        else seq.STATIC_SYNAPSE
    )
    syn_eqs += fp.FIXED_WEIGHT_STEP if fixed else ""

    def learning_ops(syn: Synapses, key: str) -> None:
        if not learn:
            return
        syn.lr = config.learning_rate
        ops[f"{key}_traces"] = syn.run_regularly(
            fp.quantised_traces(
                seq.trace_update(model, config.activity_sparse, config.event_driven_traces),
                fp.FIXED_TRACES if fixed else (),
            ),
            when=TRACE_SLOT[0],
            order=TRACE_SLOT[1],
            name=f"{syn.name}_traces",
        )
        if interval_weight_updates:
            ops[f"{key}_weight_update"] = syn.run_regularly(
                fp.quantised_update(seq.WEIGHT_UPDATE) if fixed else seq.WEIGHT_UPDATE,
                dt=interval,
                when=WEIGHT_SLOT[0],
                order=WEIGHT_SLOT[1],
                name=f"{syn.name}_weight_update",
            )

    # Each copy draws from its own generator in the order of the single-copy network:
    # input mask and weights, recurrent mask and weights, readout weights, feedback weights.
    w_in_std = config.input_weight_scale * config.v_th / math.sqrt(max(1.0, n_inputs * config.p_input))
    w_rec_std = config.recurrent_weight_scale * config.v_th / math.sqrt(max(1.0, n_rec * config.p_recurrent))
    draws = []
    for rng in rngs:
        d = {"in": rng.random((n_inputs, n_rec)) < config.p_input}
        d["w_in"] = rng.normal(0.0, w_in_std, int(d["in"].sum()))
        if config.recurrent:
            d["rec"] = rng.random((n_rec, n_rec)) < config.p_recurrent
            np.fill_diagonal(d["rec"], False)
            d["w_rec"] = rng.normal(0.0, w_rec_std, int(d["rec"].sum()))
        d["out"] = np.ones((n_rec, n_outputs), dtype=bool)
        d["w_out"] = rng.normal(0.0, config.readout_weight_scale / math.sqrt(n_rec), n_rec * n_outputs)
        if learn and config.feedback == "random":
            d["feedback"] = np.ones((n_outputs, n_rec), dtype=bool)
            d["B"] = rng.normal(0.0, config.feedback_weight_scale / math.sqrt(n_outputs), n_rec * n_outputs)
        draws.append(d)

    def connect_copies(syn: Synapses, key: str) -> None:
        """Connect every copy's block of ``syn`` (row-major within a copy) and set its weights."""
        n_pre, n_post = syn.source.N // n_copies, syn.target.N // n_copies
        blocks = [np.nonzero(d[key]) for d in draws]
        i = np.concatenate([bi + c * n_pre for c, (bi, _) in enumerate(blocks)]).astype(np.int32)
        j = np.concatenate([bj + c * n_post for c, (_, bj) in enumerate(blocks)]).astype(np.int32)
        if len(i) == 0:
            syn.connect(condition="False")  # Brian2 wants connect() called even for no synapses
        else:
            syn.connect(i=i, j=j)
        indices[key] = (i, j)
        weight_key = WEIGHT_KEYS[key]
        weights[weight_key] = np.concatenate([d[weight_key] for d in draws])
        setattr(syn, "B" if key == "feedback" else "w", weights[weight_key])
        syn.syn_copy = np.concatenate([np.full(len(bi), c) for c, (bi, _) in enumerate(blocks)]).astype(
            np.int32
        )

    def learnt_synapses(source, target, key: str, on_pre: str) -> Synapses:
        """Synapses ``syn_<key>`` from ``source`` to ``target``, connected per copy, learning by e-prop."""
        name = f"syn_{key}"
        on_pre = fp.fixed_on_pre(on_pre) if fixed else on_pre
        syn = Synapses(
            source, target, equations(syn_eqs, name), on_pre=on_pre, namespace=ns, clock=clock, name=p + name
        )
        connect_copies(syn, key)
        if fixed:  # the group's weights on its grid (shared exponent from the config's initial scale)
            std = w_in_std if key == "in" else w_rec_std
            weights[WEIGHT_KEYS[key]], syn.w_step = fp.quantise_group(weights[WEIGHT_KEYS[key]], std, config)
            syn.w = weights[WEIGHT_KEYS[key]]
        learning_ops(syn, name)
        return syn

    syn_in = learnt_synapses(inputs, recurrent, "in", seq.ON_PRE_HELD if hold else seq.ON_PRE)
    syn_rec = learnt_synapses(recurrent, recurrent, "rec", seq.ON_PRE_RECURRENT) if config.recurrent else None

    symmetric = learn and config.feedback == "symmetric"
    out_eqs = seq.readout_synapse_equations("symmetric" if symmetric else "random")
    syn_out = Synapses(
        recurrent,
        readout,
        equations(out_eqs, "syn_out"),
        on_pre=seq.READOUT_ON_PRE,
        namespace=ns,
        clock=clock,
        name=p + "syn_out",
    )
    connect_copies(syn_out, "out")
    weights["b_out"] = np.zeros(n_copies * n_outputs)
    syn_out.lr = config.readout_learning_rate
    ops["syn_out_accumulate"] = syn_out.run_regularly(
        readout_accumulate, when=TRACE_SLOT[0], order=TRACE_SLOT[1], name=p + "syn_out_accumulate"
    )
    if interval_weight_updates:
        ops["syn_out_weight_update"] = syn_out.run_regularly(
            seq.WEIGHT_UPDATE,
            dt=interval,
            when=WEIGHT_SLOT[0],
            order=WEIGHT_SLOT[1],
            name=p + "syn_out_weight_update",
        )
        ops["readout_bias_update"] = readout.run_regularly(
            neq.READOUT_BIAS_UPDATE,
            dt=interval,
            when=WEIGHT_SLOT[0],
            order=WEIGHT_SLOT[1],
            name=p + "readout_bias_update",
        )

    syn_feedback = None
    if learn and config.feedback == "random":
        syn_feedback = Synapses(
            readout,
            recurrent,
            seq.RANDOM_FEEDBACK + SYNAPSE_COPY_EQUATION,
            namespace=ns,
            clock=clock,
            name=p + "feedback",
        )
        connect_copies(syn_feedback, "feedback")

    spikes_in = SpikeMonitor(inputs, record=False, name=p + "spikes_in")
    spikes_rec = SpikeMonitor(recurrent, record=False, name=p + "spikes_rec")
    return EpropNetwork(
        config=config,
        input_kind=input_kind,
        error_mode=error_mode,
        clock=clock,
        namespace=ns,
        inputs=inputs,
        recurrent=recurrent,
        readout=readout,
        syn_in=syn_in,
        syn_rec=syn_rec,
        syn_out=syn_out,
        syn_feedback=syn_feedback,
        spikes_in=spikes_in,
        spikes_rec=spikes_rec,
        operations=ops,
        timed_arrays=timed,
        initial_weights={k: v.copy() for k, v in weights.items()},
        synapse_indices=indices,
        n_copies=n_copies,
        interval_weight_updates=interval_weight_updates,
    )
