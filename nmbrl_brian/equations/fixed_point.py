"""Chip-faithful fixed-point numerics: a Loihi-style integer LIF step, weight quantiser, stochastic rounding.

This module holds the integer twin of the float maths in
:mod:`nmbrl_brian.equations.eprop_neurons` (``network.numerics = "fixed"``; bit widths in
:class:`~nmbrl_brian.equations.eprop_neurons.SpikingNetworkConfig`). Sources: Davies et al.
2018, "Loihi: a neuromorphic manycore processor with on-chip learning", IEEE Micro 38(1):82-99
(CUBA LIF compartment, 12-bit decays, 24-bit state, 8-bit weights with a per-group exponent,
stochastic rounding in learning); Lava's bit-accurate LIF process model
(``lava.proc.lif.models.PyLifModelBitAcc``, which states it mimics Loihi 1 bit by bit) for the
exact order of operations, rounding and overflow; Frenkel & Indiveri 2022 (ReckOn, ISSCC) for
8-bit weights and 12-bit eligibility traces.

Integer LIF step
----------------
State in integer *state units* (signed ``state_bits``-bit, Loihi: 24), held in float64 Brian2
variables: every intermediate is an integer below :math:`2^{53}` (``state_bits + decay_bits <=
53``, checked by the config), so float64 holds it exactly on numpy, cython, cpp_standalone and
CUDA (double), and ``floor`` of an exact quotient by a power of two is exact. Brian2 ``integer``
variables are 32-bit and the product ``u * (4096 - du)`` needs 36 bits, hence float64. With
:math:`D = 2^{\\text{decay_bits}}` (Loihi: 4096) and :math:`M = 2^{\\text{state_bits}-1}`, the
decay of an integer :math:`x` by a constant :math:`d \\in [0, D]` rounds toward zero as the
chip's right shift of the magnitude does:

.. math::

    \\mathrm{dec}_d(x) = \\mathrm{sign}(x)\\,\\big\\lfloor |x|\\,(D - d) / D \\big\\rfloor

(float: :math:`x \\leftarrow (1 - d/D)\\,x`). One step of neuron ``j`` (``after_synapses``, in the
float model's schedule: the threshold slot saw :math:`v^t`):

.. math::

    z_j^t &= [v_j^t > \\theta]\\,[r_j^t \\le 0] \\\\
    u_j^{t+1} &= \\mathrm{wrap}_M\\big(\\mathrm{dec}_{d_u}(u_j^t) + a_j^t\\big),\\qquad
        a_j^t = \\sum_i m_{ji}\\, 2^{e_g + 6}\\, s_i^t \\\\
    v_j^{t+1} &= \\mathrm{clip}\\big(\\mathrm{dec}_{d_v}(v_j^t) + u_j^{t+1} + b_j - \\theta z_j^t,
        \\ -(M-1),\\ M-1\\big) \\qquad\\text{(subtractive reset)} \\\\
    v_j^{t+1} &= \\mathrm{clip}\\big(\\mathrm{dec}_{d_v}(v_j^t)(1 - z_j^t) + u_j^{t+1} + b_j,
        \\ -(M-1),\\ M-1\\big) \\qquad\\text{(reset to zero, Loihi 1)}

with :math:`\\mathrm{wrap}_M(x) = x - 2M[x > M] + 2M[x \\le -M]` (Lava: the current wraps
around, the voltage saturates), :math:`m_{ji}` the signed ``weight_bits``-bit mantissa,
:math:`e_g` the shared exponent of the synapse group ``g`` and 6 Loihi's MSB alignment of the
synaptic input (Lava's ``act_shift``); :math:`\\theta` the integer threshold (Loihi: the 17-bit
``vth`` shifted left by 6), :math:`b_j` an integer bias. The float twin is
:math:`v^{t+1} = \\alpha v^t + I^t - v_{th} z^t` with :math:`\\alpha = 1 - d_v/D`, :math:`d_u = D`
(the float model has no current filter: the current decays fully each step, which Loihi 1
reaches through its 1-bit ``ds_offset``) and :math:`v = v_{int}\\, v_{th} / \\theta`.

Reset. Loihi 1 (and Lava's LIF) resets the voltage to zero; the package's float neuron
subtracts the threshold, :math:`\\alpha v - v_{th} z` (Bellec et al. 2020). The default is the
**subtractive** reset, applied after the decay exactly as the float model does, so that the
fixed-point network tends to the float e-prop network as the widths grow and the e-prop
derivation (which assumes that reset) still describes it; subtractive reset is programmable on
Loihi 2's microcoded neurons but is not Loihi 1 hardware. ``reset="zero"`` gives Loihi 1's reset.
Refractoriness is the package's (the neuron integrates but cannot spike for ``refractory_steps``),
not Loihi 1's (voltage held at 0); with ``refractory_steps = 0`` they agree.

Schedule. Loihi computes :math:`u, v`, compares and resets within one time step and delivers the
spike in the next; here the comparison happens in the next step's ``thresholds`` slot (on the
unchanged :math:`v`), which delivers the spike in that step's ``synapses`` slot: the same integer
trajectory, the spike reported one step later and :math:`v` stored before its reset.

Weights and learning
--------------------
A synapse group's float weights become signed ``weight_bits``-bit mantissas times one shared
power of two (:func:`quantise_weights`, saturating at the mantissa range). A learning increment
:math:`\\Delta w` is written to the mantissa by *stochastic rounding*,
:math:`m \\leftarrow \\mathrm{clip}(m + \\lfloor \\Delta w / 2^{e} + U \\rfloor)` with
:math:`U \\sim \\mathcal U[0, 1)` from Brian2's ``rand()`` (seeded by
:func:`brian2.seed` from the run's seed), unbiased: :math:`E\\lfloor x + U\\rfloor = x`
(:data:`STOCHASTIC_WEIGHT_UPDATE`; in the e-prop network :func:`quantised_update`, which keeps the
float weight ``w = m * w_step`` so that checkpoints, feedback and readers see float weights).

The e-prop network with ``numerics = "fixed"``
----------------------------------------------
:func:`~nmbrl_brian.snn.eprop_network.build_eprop_network` (agent and world model alike, every
device: the code uses only ``floor``, ``clip``, ``abs``, ``sign``, ``int`` and ``rand``) then runs
the recurrent LIF layer as the integer step above (``du = D``: the float model's instant current;
subtractive reset; no bias; ``v`` in state units, ``psi`` from ``(v - theta)/theta``); keeps the
input and recurrent weights on their group grids (:func:`quantise_group`: the shared exponent covers
``WEIGHT_RANGE_STDS`` initial standard deviations) with every supervised or TD increment
stochastically rounded (:func:`quantised_update`); and stores the filtered spikes and eligibility
traces on a ``trace_bits`` grid, stochastically rounded after each update (:func:`quantised_traces`).
Still float: the readouts, the gradient accumulators, ``psi``, the learning signals, and graded input
currents (``w*s`` is rounded to whole state units as it arrives; Loihi 2's integer payloads are not
modelled). ALIF has no fixed-point form yet (the config refuses it).
"""

from __future__ import annotations

import math

import numpy as np

NUMERICS = ("float", "fixed")
#: Loihi's MSB alignment (bits) of the synaptic input and the threshold (Lava: act_shift, vth_shift).
ACT_SHIFT = 6
RESETS = ("subtract", "zero")

#: State of a fixed-point LIF neuron (integers in float64 variables, state units).
FIXED_LIF_EQUATIONS = """
u : 1                # synaptic current (signed state_bits-bit integer)
v : 1                # membrane voltage (signed state_bits-bit integer)
I_syn : 1            # integer synaptic input a of this step (cleared by the update)
bias : 1             # integer bias b added every step
ref_left : 1         # refractory steps left (0: may spike)
"""

#: Threshold condition (``theta``: the integer threshold).
FIXED_LIF_THRESHOLD = "v > theta and ref_left <= 0"


def decay_code(x: str, d: str) -> str:
    """Brian2 expression of :math:`\\mathrm{sign}(x)\\lfloor |x|(D - d)/D\\rfloor` (``D = decay_unity``)."""
    return f"sign({x})*floor(abs({x})*(decay_unity - {d})/decay_unity)"


def fixed_lif_update(reset: str = "subtract", held: bool = False) -> str:
    """Abstract code of one integer LIF step (``after_synapses``); ``reset`` is ``"subtract"`` or ``"zero"``.

    Float twin: ``v = alpha*v + I_syn - v_th*z`` (:func:`~nmbrl_brian.equations.eprop_neurons.recurrent_update`).
    Integer (this code)::

        z = [v > theta][ref_left <= 0]
        u = wrap(dec(u, du) + I_syn)                          # wrap: -2M if u > M, +2M if u <= -M
        v = clip(dec(v, dv) + u + bias - theta*z, 1-M, M-1)   # subtract
        v = clip(dec(v, dv)*(1 - z) + u + bias, 1-M, M-1)     # zero (Loihi 1)

    With ``held`` the held drive ``I_in`` (``hold_input``) is added to the input like ``I_syn``.
    """
    if reset not in RESETS:
        raise ValueError(f"reset: expected one of {', '.join(RESETS)}, got {reset!r}")
    dec_v = decay_code("v", "dv")
    v_line = (
        f"v = clip({dec_v} + u + bias - theta*z, 1 - uv_max, uv_max - 1)"
        if reset == "subtract"
        else f"v = clip(({dec_v})*(1 - z) + u + bias, 1 - uv_max, uv_max - 1)"
    )
    return f"""
z = int(v > theta and ref_left <= 0)
u = {decay_code("u", "du")} + I_syn{" + I_in" if held else ""}
u = u - 2*uv_max*int(u > uv_max) + 2*uv_max*int(u <= -uv_max)
I_syn = 0
{v_line}
ref_left = z*refractory_steps + (1 - z)*clip(ref_left - 1, 0, refractory_steps)
"""


#: A fixed-point synapse: mantissa ``m`` and the group's unit ``w_unit = 2**(e + 6)`` (state units).
FIXED_SYNAPSE_EQUATIONS = """
m : 1                       # signed weight_bits-bit mantissa (an integer)
w_unit : 1 (shared, constant)   # 2**(shared exponent + 6): state units of one mantissa step
"""
#: A spike adds its integer weight to the postsynaptic input (float twin: ``I_syn_post += w``).
FIXED_ON_PRE = "I_syn_post += m*w_unit"
#: A graded (integer) input ``s_pre`` adds ``s * m * 2**(e + 6)`` (float twin: ``I_syn_post += w*s_pre``).
FIXED_ON_PRE_GRADED = "I_syn_post += m*w_unit*s_pre"

#: Stochastically rounded learning increment of a mantissa: ``dm`` is the float increment in
#: mantissa steps (float twin: ``w += dm*step``); saturates at ``[m_min, m_max]``. Integer::
#:
#:     m = clip(m + floor(dm + U), m_min, m_max),   U ~ U[0, 1) from rand()
STOCHASTIC_WEIGHT_UPDATE = """
m = clip(m + floor(dm + rand()), m_min, m_max)
"""


# --------------------------------------------------------------------------------------
# Float config -> integer constants
# --------------------------------------------------------------------------------------


def decay_constant(factor: float, decay_bits: int = 12) -> int:
    """The integer decay ``d`` with ``(2**decay_bits - d)/2**decay_bits`` nearest to the float ``factor``."""
    unity = 2**decay_bits
    if not 0.0 <= factor <= 1.0:
        raise ValueError(f"decay factor: expected a number in [0, 1], got {factor!r}")
    return int(min(unity, max(0, round(unity * (1.0 - factor)))))


def mantissa_range(weight_bits: int) -> tuple[int, int]:
    """The signed mantissa range ``(-2**(b-1), 2**(b-1) - 1)``."""
    return -(2 ** (weight_bits - 1)), 2 ** (weight_bits - 1) - 1


def shared_exponent(weights: np.ndarray, weight_bits: int = 8) -> int:
    """The smallest exponent ``e`` with every ``|w| / 2**e`` inside the mantissa range (all zero: 0)."""
    _, m_max = mantissa_range(weight_bits)
    w_max = float(np.max(np.abs(weights))) if np.size(weights) else 0.0
    if w_max == 0.0:
        return 0
    e = math.ceil(math.log2(w_max / m_max))
    while w_max / 2.0**e > m_max:  # guard the log's rounding
        e += 1
    return e


def quantise_weights(
    weights: np.ndarray, weight_bits: int = 8, exponent: int | None = None
) -> tuple[np.ndarray, int]:
    """Float weights -> (signed integer mantissas, shared exponent) with ``w ~ m * 2**exponent``.

    Round to nearest (ties to even), then saturate to :func:`mantissa_range`. Without ``exponent``
    the group's own :func:`shared_exponent` is used (nothing saturates then); with one (a fixed
    exponent after learning changed the weights), weights beyond the range saturate.
    """
    w = np.asarray(weights, dtype=float)
    e = shared_exponent(w, weight_bits) if exponent is None else int(exponent)
    lo, hi = mantissa_range(weight_bits)
    mant = np.clip(np.rint(w / 2.0**e), lo, hi).astype(np.int64)
    return mant, e


def dequantise_weights(mantissas: np.ndarray, exponent: int) -> np.ndarray:
    """``m * 2**exponent`` as floats (exact)."""
    return np.asarray(mantissas, dtype=float) * 2.0**exponent


def stochastic_round(x: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """NumPy twin of the rounding in :data:`STOCHASTIC_WEIGHT_UPDATE`: ``floor(x + U)``."""
    return np.floor(np.asarray(x, dtype=float) + np.asarray(uniforms, dtype=float))


def fixed_constants(config, reset: str = "subtract") -> dict[str, float]:
    """Integer constants (Brian2 namespace) of the fixed-point LIF step from a float network config.

    ``dv`` from ``alpha = exp(-dt/tau_m)``, ``du = 2**decay_bits`` (no current filter, as the float
    model), ``theta = 2**threshold_log2`` state units for ``v_th``, ``uv_max = 2**(state_bits-1)``.
    """
    if reset not in RESETS:
        raise ValueError(f"reset: expected one of {', '.join(RESETS)}, got {reset!r}")
    unity = 2**config.decay_bits
    return {
        "decay_unity": float(unity),
        "du": float(unity),
        "dv": float(decay_constant(config.alpha, config.decay_bits)),
        "theta": float(2**config.threshold_log2),
        "uv_max": float(2 ** (config.state_bits - 1)),
        "refractory_steps": float(config.refractory_steps),
    }


def state_scale(config) -> float:
    """State units per float membrane unit: ``2**threshold_log2 / v_th``."""
    return 2.0**config.threshold_log2 / float(config.v_th)


def weight_unit(exponent: int) -> float:
    """State units of one mantissa step of a group with shared exponent ``exponent``: ``2**(exponent + 6)``."""
    if exponent + ACT_SHIFT < 0:
        raise ValueError(
            f"weight exponent: expected >= {-ACT_SHIFT} (an integer weight unit), got {exponent}"
        )
    return float(2 ** (exponent + ACT_SHIFT))


#: The fixed-point fields of SpikingNetworkConfig (unused with numerics = "float").
FIXED_FIELDS = ("weight_bits", "decay_bits", "state_bits", "threshold_log2", "trace_bits")


def check_fixed_fields(config, need) -> None:
    """Validate the widths of a :class:`SpikingNetworkConfig` (``need(ok, name, allowed)`` raises ConfigError)."""

    def int_in(name: str, lo: int, hi: int) -> None:
        value = getattr(config, name)
        ok = isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi
        need(ok, name, f"an integer in [{lo}, {hi}]")

    need(config.numerics in NUMERICS, "numerics", "one of " + ", ".join(repr(n) for n in NUMERICS))
    int_in("weight_bits", 2, 16)
    int_in("decay_bits", 4, 16)
    int_in("state_bits", 8, 32)
    int_in("trace_bits", TRACE_INT_BITS + 3, 24)
    int_in("threshold_log2", ACT_SHIFT, config.state_bits - 2)
    need(
        config.numerics == "float" or config.neuron_model == "LIF",
        "neuron_model",
        "'LIF' with numerics = 'fixed' (the adaptive threshold has no fixed-point form yet)",
    )


# --------------------------------------------------------------------------------------
# The e-prop network in fixed-point numerics (network.numerics = "fixed")
# --------------------------------------------------------------------------------------
#
# What is integer: the recurrent LIF layer (u, v in state units, the step above with du = D,
# subtractive reset, no bias); the weights of the input and recurrent synapse groups (each group on
# its grid m * w_step, m a signed weight_bits-bit mantissa, w_step a power of two in state units;
# every increment stochastically rounded); the filtered spikes zbar (inputs and recurrent), zbar_out
# and the eligibility traces ebar, each stored as a signed trace_bits-bit count of trace units
# (2**-(trace_bits - TRACE_INT_BITS - 1): a spike is 2**(trace_bits - 6) units, the largest value
# about 32), stochastically rounded after every update (the float update computed, then written
# back rounded). What stays float: the readouts, the gradient accumulators grad, the pseudo-derivative
# psi, the learning signals, and graded input currents (the product w*s is rounded to a whole state
# unit as it reaches the neuron).

#: Standard deviations of a group's initial weight distribution that its mantissa range covers
#: (the shared exponent is fixed at build time from the config, so copies share it).
WEIGHT_RANGE_STDS = 4.0

#: The variables of a fixed-point recurrent LIF neuron beyond the float ones (``v`` is in state units).
FIXED_RECURRENT_EXTRA = """
u : 1                # synaptic current (integer state units; du = 2**decay_bits: the float model's instant current)
bias : 1 (constant)  # integer bias (0: the float model has none)
"""
#: A learning synapse group's weight step (float units per mantissa step), fixed at build time.
FIXED_WEIGHT_STEP = """
w_step : 1 (shared, constant)   # 2**e / state_scale: the float weight of one mantissa step
"""
#: Bits of a trace above the sign and below the binary point: traces reach about 2**5 = 32.
TRACE_INT_BITS = 5
#: The traces that are stored on the trace grid (stochastically rounded after each update).
FIXED_TRACES = ("zbar", "zbar_out", "ebar")

#: The learning neuron's lines after the integer step (psi in threshold units: (v - theta)/theta).
_FIXED_RECURRENT_TAIL = """
zbar = alpha*zbar + z
zbar_out = kappa*zbar_out + z
psi = gamma_pd/v_th * clip(1 - abs(v - theta)/theta, 0, 1) * int(ref_left <= 0)
"""


def fixed_recurrent_update(hold_input: bool = False) -> str:
    """The fixed-point twin of :func:`~nmbrl_brian.equations.eprop_neurons.recurrent_update` (LIF)."""
    return fixed_lif_update("subtract", held=hold_input) + quantised_traces(_FIXED_RECURRENT_TAIL)


def quantised_traces(code: str, names: tuple[str, ...] = FIXED_TRACES) -> str:
    """Rewrite every line ``x = expr`` with ``x`` in ``names`` as a stochastically rounded, saturating
    write to the trace grid (the other lines unchanged)::

        x = trace_unit*clip(floor((expr)/trace_unit + rand()), -trace_max, trace_max)
    """
    out = []
    for line in code.split("\n"):
        name, _, expr = line.partition(" = ")
        if name.strip() in names and expr:
            line = f"{name} = trace_unit*clip(floor(({expr.strip()})/trace_unit + rand()), -trace_max, trace_max)"
        out.append(line)
    return "\n".join(out)


def fixed_on_pre(on_pre: str) -> str:
    """``X_post += expr`` -> ``X_post += floor((expr)*state_scale + 0.5)``: the weight reaches the neuron
    as a whole number of state units (exactly ``m * 2**e`` for a weight on its grid: rounding to nearest
    removes the float product's last-bit error; Brian2 has no ``round``)."""
    target, expr = (part.strip() for part in on_pre.split("+=", 1))
    return f"{target} += floor(({expr})*state_scale + 0.5)"


def quantised_update(code: str) -> str:
    """Rewrite the weight line ``w += inc`` / ``w -= inc`` of a float update as a stochastically rounded
    mantissa step on the group's grid (the other lines unchanged)::

        w = w_step*clip(floor(w/w_step + 0.5) + floor((+-inc)/w_step + rand()), m_min, m_max)

    ``floor(w/w_step + 0.5)`` recovers the mantissa of a weight on the grid exactly (and snaps one written
    off the grid from Python to its nearest point).
    """
    lines = code.strip("\n").split("\n")
    for k, line in enumerate(lines):
        for op, sign in (("+=", ""), ("-=", "-")):
            if line.startswith(f"w {op} "):
                inc = line.split(op, 1)[1].strip()
                lines[k] = (
                    f"w = w_step*clip(floor(w/w_step + 0.5) + floor({sign}({inc})/w_step + rand()), m_min, m_max)"
                )
                return "\n" + "\n".join(lines) + "\n"
    raise ValueError(f"no 'w += ...' or 'w -= ...' line in the weight update {code!r}")


def fixed_namespace(config) -> dict[str, float]:
    """Constants of the fixed-point network: :func:`fixed_constants`, ``state_scale``, ``m_min``, ``m_max``,
    ``trace_unit`` and ``trace_max`` (in trace units)."""
    lo, hi = mantissa_range(config.weight_bits)
    return {
        **fixed_constants(config),
        "state_scale": state_scale(config),
        "m_min": float(lo),
        "m_max": float(hi),
        "trace_unit": 2.0 ** -(config.trace_bits - TRACE_INT_BITS - 1),
        "trace_max": float(2 ** (config.trace_bits - 1) - 1),
    }


def quantise_group(weights: np.ndarray, std: float, config) -> tuple[np.ndarray, float]:
    """A synapse group's initial float weights on its grid, and the grid step ``w_step`` (float units).

    The shared exponent makes ``WEIGHT_RANGE_STDS * std`` (the config's initial scale) fit the mantissa
    range, in state units; weights beyond it saturate.
    """
    scale = state_scale(config)
    exponent = shared_exponent(np.array([WEIGHT_RANGE_STDS * std * scale]), config.weight_bits)
    mant, e = quantise_weights(np.asarray(weights, dtype=float) * scale, config.weight_bits, exponent)
    step = 2.0**e / scale
    return mant * step, step
