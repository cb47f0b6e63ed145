"""LIF and ALIF neurons for e-prop, and leaky readouts, as discrete-time Brian2 code.

E-prop (Bellec et al. 2020, "A solution to the learning dilemma for recurrent
networks of spiking neurons", Nat. Commun. 11:3625, Methods) is derived for the
discrete-time dynamics below, so they are written here as explicit one-step maps
(``run_regularly`` code with exact decay factors) rather than ODEs: the Brian2 network
and the NumPy reference (:mod:`nmbrl_brian.snn.reference`) then compute the same
numbers. With time step ``dt`` the decay factors are

.. math::

    \\alpha = e^{-dt/\\tau_m}, \\qquad \\rho = e^{-dt/\\tau_a}, \\qquad
    \\kappa = e^{-dt/\\tau_{out}},

the exact solutions of ``dv/dt = -v/tau_m``, ``da/dt = -a/tau_a`` and
``dy/dt = -y/tau_out`` over one step.

Recurrent neuron ``j`` (the paper's Eqs. (1)-(2) and Methods "ALIF"), spikes
:math:`z_j^t \\in \\{0, 1\\}`, input values :math:`x_i^t` (see the note on time
indices below):

.. math::

    A_j^t &= v_{th} + \\beta a_j^t \\qquad (\\text{LIF}: \\beta = 0,\\ a \\equiv 0) \\\\
    z_j^t &= H(v_j^t - A_j^t)\\,[r_j^t = 0] \\\\
    v_j^{t+1} &= \\alpha v_j^t + \\sum_i W^{in}_{ji} x_i^t + \\sum_i W^{rec}_{ji} z_i^t
                - v_{th} z_j^t \\\\
    a_j^{t+1} &= \\rho a_j^t + z_j^t \\\\
    \\psi_j^t &= \\frac{\\gamma_{pd}}{v_{th}}
                \\max\\Big(0, 1 - \\Big|\\frac{v_j^t - A_j^t}{v_{th}}\\Big|\\Big)\\,[r_j^t = 0]

:math:`r_j^t` counts the refractory steps left (``refractory_steps`` after a spike, during
which the neuron cannot spike and :math:`\\psi = 0`); :math:`\\psi` is the
pseudo-derivative standing in for :math:`\\partial z / \\partial v`. Each neuron
also keeps two filtered spike trains:

.. math::

    \\bar z_j^{t+1} = \\alpha \\bar z_j^t + z_j^t \\qquad
    \\text{(the eligibility vector } \\epsilon^v\\text{ of every synapse leaving } j),
    \\qquad
    \\bar z^{out,t}_j = \\kappa \\bar z^{out,t-1}_j + z_j^t
    \\quad\\text{(the readouts' input; their exact eligibility trace)}.

Readout ``k`` (leaky, no spikes) and its error and learning signal:

.. math::

    y_k^t &= \\kappa y_k^{t-1} + \\sum_j W^{out}_{kj} z_j^t + b_k \\\\
    \\mathrm{err}_k^t &= y_k^t - y_k^{*,t} \\quad\\text{(supervised; otherwise set by the caller)} \\\\
    L_j^t &= \\sum_k B_{jk}\\, \\mathrm{err}_k^t

with feedback weights ``B`` random or symmetric (``B = W_out^T``). The synaptic side
(eligibility traces, accumulators, weight updates) is in
:mod:`nmbrl_brian.equations.eprop_synapses`.

Time indices and the Brian2 schedule. An input neuron emits :math:`x_i^t` in the
``thresholds`` slot of step ``t``; it reaches :math:`v^{t+1}` like a recurrent spike
(the paper's :math:`x^{t+1}` is our :math:`x^t`, a relabelling). Within step ``t``:

1. ``groups``: the learning signal :math:`L^{t-1}` (summed variable) from the error
   of the previous step;
2. ``before_thresholds`` (order 0): input neurons draw :math:`x^t` and update
   :math:`\\bar z`; (order 1) synapses accumulate gradients and advance traces;
3. ``thresholds``: :math:`z^t` from :math:`v^t, A^t, r^t`;
4. ``before_synapses`` (``hold_input`` only): ``I_in`` emptied at a send step;
   ``synapses``: spikes add weights into the input buffers ``I_syn`` (held inputs: ``I_in``);
5. ``after_synapses``: :data:`RECURRENT_UPDATE` (:math:`v^{t+1}`, :math:`a^{t+1}`,
   :math:`\\bar z`, :math:`\\psi^{t+1}`) and :data:`READOUT_UPDATE` (:math:`y^t`,
   :math:`\\mathrm{err}^t`);
6. ``end``: every ``update_interval`` steps, the weight updates.

Spikes go into a buffer ``I_syn`` (not straight into ``v``) so that the update in
step 5 can decay ``v`` first, as the discrete map says; the update re-evaluates the
threshold condition on the unchanged state to know which neurons spiked, so the
neurons need neither a reset nor a Brian2 refractory mechanism.

Held input drive (``hold_input``, current inputs only). Without it, an input re-sends its
nonzero current in every step, although the caller writes :math:`x` once per
environment step. With ``hold_input`` an input neuron sends only at the *send steps* ``t``
(``timestep(t, dt)`` below; :math:`P` = ``steps_per_env_step``, :math:`K` =
``update_interval_steps``):

.. math::

    \\mathrm{send}^t = [t \\bmod P = 0]
        \\ \\vee\\ \\big(\\text{refresh} \\wedge [t \\bmod K = 1 \\bmod K]\\big)

into the recurrent variable ``I_in`` (cleared in ``before_synapses`` of every send step,
then filled by the ``synapses`` slot), which every recurrent step adds:

.. math::

    I^{in,t}_j = \\begin{cases} \\sum_i W^{in}_{ji} x_i^t & \\mathrm{send}^t \\
                                I^{in,t-1}_j & \\text{otherwise} \\end{cases}
    \\qquad
    v_j^{t+1} = \\alpha v_j^t + I^{in,t}_j + \\sum_i W^{rec}_{ji} z_i^t - v_{th} z_j^t .

This equals the per-step map above whenever :math:`x` and :math:`W^{in}` change only just
before a send step: the caller writes :math:`x` at period starts (the agent's ``encode`` in the
``start`` slot of the first step of every period, the ClosedLoop running whole periods from
``t = 0``), and the weight updates every :math:`K` steps (``end`` slot of steps
:math:`t \\bmod K = 0`) take effect from step :math:`t+1`, hence the *refresh* send in that
step when the builder schedules interval weight updates of the input weights (``refresh``:
``hidden_learning`` and ``interval_weight_updates``; the agent's TD updates run in the
``start`` slot of a period's first step, before its send, and need none). Inputs and weights
written from Python between runs take effect at the next send step. The input neurons still
fold :math:`s` into :math:`\\bar z` every step (:math:`s^t = x^t` whether sent or not), so
the eligibility maths is unchanged; only the synaptic events change: one send per input
per period (plus one per refresh) instead of one per step.

The constants (``alpha``, ``kappa``, ``rho``, ``beta``, ``v_th``, ``gamma_pd``,
``refractory_steps``, ``input_rate_hz``) come from
:meth:`SpikingNetworkConfig.namespace`: the decay factors and the refractory steps derived
from the time constants, the others under their config names. :class:`SpikingNetworkConfig`
(config section ``network``, and ``world_model.network``) is the one place where the network's
parameters are defined (the unit is in the field name: ``_ms``, ``_hz``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from brian2 import Equations

from nmbrl_brian.equations.eprop_synapses import FEEDBACK_KINDS
from nmbrl_brian.equations.fixed_point import FIXED_FIELDS, check_fixed_fields
from nmbrl_brian.errors import ConfigError

NEURON_MODELS = ("LIF", "ALIF")
INPUT_KINDS = ("poisson", "current", "timed")

# --------------------------------------------------------------------------------------
# Recurrent LIF / ALIF neurons: one template, the adaptive lines composed in or out
# --------------------------------------------------------------------------------------

_RECURRENT_COMMON = """
v : 1                # membrane potential (threshold units: v_th is dimensionless)
I_syn : 1            # weighted spikes that arrived in this step (cleared by the update)
ref_left : 1         # refractory steps left (0: may spike)
psi : 1              # pseudo-derivative dz/dv for the next step's threshold
zbar : 1             # spike train filtered with alpha = exp(-dt/tau_m) (eligibility vector)
zbar_out : 1         # spike train filtered with kappa = exp(-dt/tau_out) (readout trace)
L : 1                # learning signal sum_k B_jk err_k (summed by the feedback synapses)
"""
_RECURRENT_HELD = """
I_in : 1             # held input drive sum_i W_in_ji s_i, refilled at send steps (hold_input)
"""
_RECURRENT_ADAPTIVE = """
a : 1                # threshold adaptation (spike count filtered with rho = exp(-dt/tau_adapt))
"""

#: Threshold condition; ``{A}`` is the (adaptive) threshold expression.
_RECURRENT_THRESHOLD = "v > {A} and ref_left <= 0"

#: One step of the discrete dynamics (``after_synapses``). ``z`` repeats the threshold
#: test on the state the thresholder saw (nothing between them changes v, a, ref_left).
_RECURRENT_UPDATE = """
z = int(v > {A} and ref_left <= 0)
v = alpha*v + I_syn{held} - v_th*z
I_syn = 0
{adapt}ref_left = z*refractory_steps + (1 - z)*clip(ref_left - 1, 0, refractory_steps)
zbar = alpha*zbar + z
zbar_out = kappa*zbar_out + z
psi = gamma_pd/v_th * clip(1 - abs(v - {A})/v_th, 0, 1) * int(ref_left <= 0)
"""


def _threshold_expression(model: str) -> str:
    _check_model(model)
    return "(v_th + beta*a)" if model == "ALIF" else "v_th"


def _check_model(model: str) -> None:
    if model not in NEURON_MODELS:
        raise ValueError(f"neuron model: expected one of {', '.join(NEURON_MODELS)}, got {model!r}")


def recurrent_equations(model: str, hold_input: bool = False) -> Equations:
    """State variables of a recurrent ``"LIF"`` or ``"ALIF"`` neuron (``I_in`` with ``hold_input``)."""
    _check_model(model)
    held = _RECURRENT_HELD if hold_input else ""
    return Equations(_RECURRENT_COMMON + held + (_RECURRENT_ADAPTIVE if model == "ALIF" else ""))


def recurrent_threshold(model: str) -> str:
    """Threshold condition ``v > A and not refractory``."""
    return _RECURRENT_THRESHOLD.format(A=_threshold_expression(model))


def recurrent_update(model: str, hold_input: bool = False) -> str:
    """Abstract code of one discrete step (run every ``dt`` in the ``after_synapses`` slot);
    with ``hold_input`` the held drive ``I_in`` is added too (``v = alpha*v + I_syn + I_in - v_th*z``)."""
    adapt = "a = rho*a + z\n" if model == "ALIF" else ""
    held = " + I_in" if hold_input else ""
    return _RECURRENT_UPDATE.format(A=_threshold_expression(model), adapt=adapt, held=held)


RECURRENT_UPDATE = recurrent_update("ALIF")
"""The ALIF step (documentation; :func:`recurrent_update` gives either variant)."""

# --------------------------------------------------------------------------------------
# Input neurons: a value s per step (0/1 spike or analog current), "fired" when s != 0
# --------------------------------------------------------------------------------------

#: Input neuron ``i``: ``s`` is :math:`x_i^t`, delivered when nonzero; ``zbar`` is its
#: alpha-filtered history (the eligibility vector of its outgoing synapses).
INPUT_EQUATIONS = """
x : 1                # value written by the caller: firing probability scale (poisson) or current
s : 1                # what this neuron sends in this step (0/1 spike, or the current)
zbar : 1             # s filtered with alpha = exp(-dt/tau_m), excluding this step
"""
INPUT_THRESHOLD = "s != 0"


def hold_send_condition(refresh: bool) -> str:
    """The send steps of held inputs: a period's first step (``t mod P = 0``) and, with
    ``refresh``, the step after every interval weight update (``t mod K = 1 mod K``)."""
    cond = "timestep(t, dt) % hold_period_steps == 0"
    if refresh:
        cond += " or timestep(t, dt) % hold_update_steps == hold_refresh_phase"
    return cond


def input_threshold(hold_input: bool = False, refresh: bool = False) -> str:
    """Condition for an input neuron to send: ``s != 0`` (every step), or with ``hold_input``
    also a send step (:func:`hold_send_condition`)."""
    if not hold_input:
        return INPUT_THRESHOLD
    return f"{INPUT_THRESHOLD} and ({hold_send_condition(refresh)})"


def held_input_clear(refresh: bool) -> str:
    """``before_synapses`` of every step, recurrent neurons: empty ``I_in`` at a send step,
    just before the sends refill it (``hold_input``)."""
    return f"I_in = I_in*int(not ({hold_send_condition(refresh)}))\n"


#: ``before_thresholds``: fold the previous step's ``s`` into ``zbar``, then draw the new one.
_INPUT_UPDATE = """
zbar = alpha*zbar + s
s = {source}
"""
_INPUT_SOURCES = {
    "poisson": "int(rand() < x*input_rate_hz*dt/second)",
    "current": "x",
    "timed": "{timed_array}(t, i)",
}


def input_update(kind: str, timed_array_name: str = "input_values") -> str:
    """Abstract code of the input neurons' step for input ``kind`` (see :data:`INPUT_KINDS`).

    ``poisson``: spike with probability ``x * input_rate_hz * dt``; ``current``: send ``x``;
    ``timed``: send row ``t/dt`` of a TimedArray called ``timed_array_name`` (fixed test
    spikes or currents).
    """
    if kind not in INPUT_KINDS:
        raise ValueError(f"input kind: expected one of {', '.join(INPUT_KINDS)}, got {kind!r}")
    return _INPUT_UPDATE.format(source=_INPUT_SOURCES[kind].format(timed_array=timed_array_name))


# --------------------------------------------------------------------------------------
# Leaky readouts
# --------------------------------------------------------------------------------------

READOUT_EQUATIONS = """
y : 1                # readout (includes the bias through the recursion)
I_syn : 1            # weighted spikes that arrived in this step
b : 1                # bias, added every step
bbar : 1             # constant 1 filtered with kappa (eligibility trace of b)
err : 1              # error: y - y_target (supervised) or written by the caller
y_target : 1         # target of a supervised readout
grad_b : 1           # accumulated dE/db since the last weight update
lr_b : 1 (shared)    # step size of the bias
"""

#: ``after_synapses``: accumulate the bias gradient with the previous step's error,
#: then advance the readout. ``{target}`` and ``{error}`` are filled per error mode.
_READOUT_UPDATE = """
grad_b += err*bbar
y = kappa*y + I_syn + b
I_syn = 0
bbar = kappa*bbar + 1
{target}{error}"""
ERROR_MODES = ("external", "supervised")


def readout_update(error_mode: str, target_array_name: str | None = None) -> str:
    """Abstract code of the readouts' step.

    ``error_mode="supervised"`` sets ``err = y - y_target`` every step (``y_target``
    read from a TimedArray called ``target_array_name`` if given, else a variable the
    caller writes); ``"external"`` leaves ``err`` to the caller.
    """
    if error_mode not in ERROR_MODES:
        raise ValueError(f"error mode: expected one of {', '.join(ERROR_MODES)}, got {error_mode!r}")
    if error_mode == "external":
        return _READOUT_UPDATE.format(target="", error="")
    target = f"y_target = {target_array_name}(t, i)\n" if target_array_name else ""
    return _READOUT_UPDATE.format(target=target, error="err = y - y_target\n")


READOUT_BIAS_UPDATE = """
b -= lr_b*grad_b
grad_b = 0
"""


#: Input kinds a config may choose (``"timed"`` is internal: tables fed by the world model).
CONFIG_INPUT_KINDS = ("poisson", "current")


@dataclass(frozen=True)
class SpikingNetworkConfig:
    """A recurrent LIF/ALIF layer with leaky readouts, trained by e-prop (Bellec et al. 2020)."""

    neuron_model: str = "LIF"
    """``"LIF"`` or ``"ALIF"`` (adaptive threshold) recurrent neurons."""
    n_recurrent: int = 200
    """Number of recurrent neurons."""
    recurrent: bool = True
    """Recurrent connections between the spiking neurons (off: a single feed-forward spiking layer)."""
    p_input: float = 0.2
    """Connection probability input -> recurrent (traces exist only for existing synapses)."""
    p_recurrent: float = 0.1
    """Connection probability recurrent -> recurrent (no self-connections)."""
    input_kind: str = "poisson"
    """``"poisson"`` (spike with probability ``x * input_rate_hz * dt``) or ``"current"`` (send ``x``)."""
    input_rate_hz: float = 200.0
    """Firing rate of a Poisson input neuron at ``x = 1``."""
    dt_ms: float = 1.0
    """Simulation time step of the network."""
    steps_per_env_step: int = 20
    """Network time steps per environment step."""
    tau_m_ms: float = 20.0
    """Membrane time constant."""
    tau_out_ms: float = 20.0
    """Time constant of the leaky readouts and of the eligibility-trace filter."""
    tau_adapt_ms: float = 200.0
    """Time constant of threshold adaptation (ALIF only)."""
    beta: float = 0.5
    """Threshold increase per unit of adaptation (ALIF only)."""
    v_th: float = 1.0
    """Spike threshold (dimensionless membrane units; also the subtractive reset)."""
    refractory_ms: float = 2.0
    """Refractory period after a spike (whole time steps)."""
    gamma_pd: float = 0.3
    """Dampening factor of the pseudo-derivative."""
    feedback: str = "symmetric"
    """Learning-signal feedback: ``"symmetric"`` (B = W_out^T) or ``"random"`` (fixed random B)."""
    update_interval_steps: int = 20
    """Apply the accumulated e-prop gradients every this many time steps."""
    activity_sparse: bool = False
    """Skip eligibility-trace updates of silent synapses (and count them)."""
    sparse_eps: float = 1e-6
    """Skip criterion of the activity-sparse mode (traces and filtered spikes below it count as 0)."""
    event_driven_traces: bool = False
    """With ``activity_sparse``: a trace is updated only when it is read (a non-zero learning signal)
    or fed (an input while the pseudo-derivative is non-zero) and decays in closed form in between,
    so a synapse whose trace only decays costs nothing (float numerics only;
    :mod:`nmbrl_brian.equations.eprop_synapses`)."""
    direct_readout: bool = False
    """The inputs also reach the readouts through learned weights (the readout rule), beside the
    recurrent layer: the part of the task linear in the input code needs no spiking layer."""
    hidden_learning: bool = True
    """Learn input and recurrent weights with e-prop (off: only the readouts learn)."""
    learning_rate: float = 1e-3
    """E-prop step size of the input and recurrent weights."""
    readout_learning_rate: float = 1e-3
    """Step size of the readout weights and biases."""
    input_weight_scale: float = 0.5
    """Input weights ~ N(0, (scale * v_th)^2 / (n_inputs * p_input))."""
    recurrent_weight_scale: float = 0.5
    """Recurrent weights ~ N(0, (scale * v_th)^2 / (n_recurrent * p_recurrent))."""
    readout_weight_scale: float = 1.0
    """Readout weights ~ N(0, scale^2 / n_recurrent)."""
    feedback_weight_scale: float = 1.0
    """Random feedback weights ~ N(0, scale^2 / n_outputs)."""
    hold_input: bool = False
    """``input_kind = "current"`` only: an input sends its current once per environment step (its
    first network step; again after an interval weight update) into a held drive ``I_in`` that every
    recurrent step adds, instead of re-sending it every step. Same dynamics while inputs change only
    at period starts; ``steps_per_env_step`` times fewer input synaptic events."""
    numerics: str = "float"
    """``"float"`` (float64 state) or ``"fixed"`` (LIF only): the recurrent layer in Loihi-style integers and
    the input and recurrent weights on ``weight_bits`` grids with stochastically rounded updates, traces on
    ``trace_bits`` grids; the widths below
    (:mod:`nmbrl_brian.equations.fixed_point` says what is integer and what stays float)."""
    weight_bits: int = 8
    """Signed mantissa bits of a weight; each synapse group shares one power-of-two exponent (Loihi: 8)."""
    decay_bits: int = 12
    """Bits of the decay constants: a decay ``d`` means ``x <- x*(2**decay_bits - d)/2**decay_bits`` (Loihi: 12)."""
    state_bits: int = 24
    """Signed width of the membrane voltage and current, in state units (Loihi: 24)."""
    threshold_log2: int = 16
    """The threshold ``v_th`` is ``2**threshold_log2`` state units (Loihi: a 17-bit mantissa shifted by 6)."""
    trace_bits: int = 12
    """Signed width of filtered spikes and eligibility traces, stochastically rounded to units of
    ``2**-(trace_bits - 6)`` (a spike is ``2**(trace_bits - 6)`` units; ReckOn: 12-bit eligibility traces)."""

    # ----------------------------------------------------------------------------------
    # Derived constants and the Brian2 namespace
    @property
    def dt(self):
        """The time step as a Brian2 quantity."""
        from brian2 import ms

        return self.dt_ms * ms

    @property
    def period(self):
        """Network time of one environment step (``steps_per_env_step * dt``) as a Brian2 quantity."""
        return self.steps_per_env_step * self.dt

    @property
    def alpha(self) -> float:
        """Membrane decay per step, ``exp(-dt/tau_m)``."""
        return math.exp(-self.dt_ms / self.tau_m_ms)

    @property
    def kappa(self) -> float:
        """Readout (and eligibility-trace filter) decay per step, ``exp(-dt/tau_out)``."""
        return math.exp(-self.dt_ms / self.tau_out_ms)

    @property
    def rho(self) -> float:
        """Adaptation decay per step, ``exp(-dt/tau_adapt)``."""
        return math.exp(-self.dt_ms / self.tau_adapt_ms)

    @property
    def period_gain(self) -> float:
        """Membrane potential that a held unit drive builds up over one environment period from rest,
        ``sum_{t<P} alpha**t = (1 - alpha**P) / (1 - alpha)`` (``P = steps_per_env_step``; without
        spikes). A network with fewer, longer steps reaches the same end-of-period potential when its
        input and recurrent weight scales grow by the ratio of the two gains (10 steps of 1 ms with
        ``tau_m`` 20 ms: 8.07; 5 steps of 2 ms: 4.13)."""
        return (1.0 - self.alpha**self.steps_per_env_step) / (1.0 - self.alpha)

    @property
    def refractory_steps(self) -> int:
        """The refractory period in whole steps."""
        return int(round(self.refractory_ms / self.dt_ms))

    def namespace(self) -> dict[str, Any]:
        """Constants for Brian2's ``namespace=``: derived decay factors, then parameters under their own names."""
        return {
            "alpha": self.alpha,
            "kappa": self.kappa,
            "rho": self.rho,
            "refractory_steps": float(self.refractory_steps),
            "beta": float(self.beta) if self.neuron_model == "ALIF" else 0.0,
            "v_th": float(self.v_th),
            "gamma_pd": float(self.gamma_pd),
            "input_rate_hz": float(self.input_rate_hz),
            "sparse_eps": float(self.sparse_eps),
            "hold_period_steps": int(self.steps_per_env_step),
            "hold_update_steps": int(self.update_interval_steps),
            "hold_refresh_phase": 1 % int(self.update_interval_steps),
        }

    def unused_fields(self) -> dict[str, str]:
        """Fields that these settings make irrelevant, each with the reason (see :func:`nmbrl_brian.config.check_unused`)."""
        unused = {}
        if self.neuron_model == "LIF":
            for name in ("tau_adapt_ms", "beta"):
                unused[name] = "neuron_model is 'LIF' (no adaptation)"
        if self.input_kind != "poisson":
            unused["input_rate_hz"] = f"input_kind is {self.input_kind!r}"
        if self.input_kind != "current":
            unused["hold_input"] = f"input_kind is {self.input_kind!r} (only currents are held)"
        elif self.direct_readout:
            unused["hold_input"] = "direct_readout is true (the direct pathway reads every step's send)"
        if not self.recurrent:
            for name in ("p_recurrent", "recurrent_weight_scale"):
                unused[name] = "recurrent is false"
        if self.numerics == "float":
            for name in FIXED_FIELDS:
                unused[name] = "numerics is 'float'"
        if not self.activity_sparse:
            unused["sparse_eps"] = "activity_sparse is false"
            unused["event_driven_traces"] = (
                "activity_sparse is false (it uses its skip criterion and counter)"
            )
        if not self.hidden_learning:
            for name in (
                "learning_rate",
                "feedback",
                "feedback_weight_scale",
                "activity_sparse",
                "sparse_eps",
                "event_driven_traces",
            ):
                unused[name] = "hidden_learning is false"
        elif self.feedback == "symmetric":
            unused["feedback_weight_scale"] = "feedback is 'symmetric'"
        return unused

    def __post_init__(self) -> None:
        def need(ok: bool, name: str, allowed: str) -> None:
            if not ok:
                raise ConfigError(f"network.{name}", allowed, getattr(self, name))

        def positive(name: str) -> None:
            value = getattr(self, name)
            need(isinstance(value, (int, float)) and math.isfinite(value) and value > 0, name, "a number > 0")

        def non_negative(name: str) -> None:
            value = getattr(self, name)
            need(
                isinstance(value, (int, float)) and math.isfinite(value) and value >= 0, name, "a number >= 0"
            )

        def probability(name: str) -> None:
            value = getattr(self, name)
            need(isinstance(value, (int, float)) and 0.0 <= value <= 1.0, name, "a probability in [0, 1]")

        def choice(name: str, options: tuple[str, ...]) -> None:
            need(getattr(self, name) in options, name, "one of " + ", ".join(repr(o) for o in options))

        def integer(name: str, minimum: int) -> None:
            value = getattr(self, name)
            need(
                isinstance(value, int) and not isinstance(value, bool) and value >= minimum,
                name,
                f"an integer >= {minimum}",
            )

        choice("neuron_model", NEURON_MODELS)
        check_fixed_fields(self, need)
        integer("n_recurrent", 1)
        need(isinstance(self.recurrent, bool), "recurrent", "true or false")
        probability("p_input")
        probability("p_recurrent")
        choice("input_kind", CONFIG_INPUT_KINDS)
        non_negative("input_rate_hz")
        positive("dt_ms")
        integer("steps_per_env_step", 1)
        for name in ("tau_m_ms", "tau_out_ms", "tau_adapt_ms", "v_th", "gamma_pd"):
            positive(name)
        non_negative("beta")
        non_negative("refractory_ms")
        choice("feedback", FEEDBACK_KINDS)
        integer("update_interval_steps", 1)
        need(isinstance(self.activity_sparse, bool), "activity_sparse", "true or false")
        non_negative("sparse_eps")
        need(isinstance(self.event_driven_traces, bool), "event_driven_traces", "true or false")
        need(
            not (self.event_driven_traces and self.numerics == "fixed"),
            "event_driven_traces",
            "false with numerics 'fixed' (fixed-point traces are rounded at every step)",
        )
        need(isinstance(self.hidden_learning, bool), "hidden_learning", "true or false")
        need(isinstance(self.direct_readout, bool), "direct_readout", "true or false")
        need(isinstance(self.hold_input, bool), "hold_input", "true or false")
        for name in ("learning_rate", "readout_learning_rate"):
            non_negative(name)
        for name in (
            "input_weight_scale",
            "recurrent_weight_scale",
            "readout_weight_scale",
            "feedback_weight_scale",
        ):
            non_negative(name)
        need(
            self.input_rate_hz * self.dt_ms * 1e-3 <= 1.0,
            "input_rate_hz",
            f"at most 1/dt = {1e3 / self.dt_ms:g} Hz (one spike per step)",
        )
