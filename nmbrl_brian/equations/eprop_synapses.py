"""E-prop learning synapses, readout synapses and feedback, as discrete-time Brian2 code.

Bellec et al. 2020, "A solution to the learning dilemma for recurrent networks of
spiking neurons", Nat. Commun. 11:3625, Eqs. (3)-(4) and Methods. For a synapse
``i -> j`` onto a recurrent neuron (neuron maths in
:mod:`nmbrl_brian.equations.eprop_neurons`; :math:`\\bar z_i` is the presynaptic
spike train filtered with :math:`\\alpha`, i.e. the eligibility vector
:math:`\\epsilon^v_{ji}`):

.. math::

    e_{ji}^t &= \\psi_j^t\\,(\\bar z_i^t - \\beta\\,\\epsilon^{a,t}_{ji})
        \\qquad (\\text{LIF}: \\beta = 0) \\\\
    \\epsilon^{a,t+1}_{ji} &= \\psi_j^t \\bar z_i^t + (\\rho - \\psi_j^t\\beta)\\,\\epsilon^{a,t}_{ji}
        \\qquad (\\text{ALIF only}) \\\\
    \\bar e_{ji}^t &= \\kappa\\,\\bar e_{ji}^{t-1} + e_{ji}^t
        \\qquad (\\text{low-pass with the readout time constant}) \\\\
    g_{ji} &\\mathrel{+}= L_j^t\\,\\bar e_{ji}^t \\\\
    W_{ji} &\\leftarrow W_{ji} - \\eta\\, g_{ji},\\ g_{ji} \\leftarrow 0
        \\qquad \\text{every } K \\text{ steps}

so that :math:`\\sum_t L_j^t \\bar e_{ji}^t` is the e-prop estimate of
:math:`dE/dW_{ji}`; with no recurrent connections and symmetric feedback it is the
exact gradient (through the pseudo-derivative, with the reset treated as
non-differentiable). A readout synapse ``j -> k`` needs no trace of its own: its
exact eligibility trace is the presynaptic :math:`\\bar z^{out}_j`, so it only
accumulates :math:`g_{kj} \\mathrel{+}= \\mathrm{err}_k^t \\bar z^{out,t}_j`.

The learning signal :math:`L_j = \\sum_k B_{jk}\\mathrm{err}_k` is a ``(summed)``
variable: with symmetric feedback the readout synapses sum ``w * err_post`` into
``L_pre`` (so B always equals the current readout weights), with random feedback a
separate feedback ``Synapses(readout, recurrent)`` sums ``B * err_pre`` into ``L_post``.

Schedule. Traces are updated every step (``run_regularly`` every ``dt`` in the
``before_thresholds`` slot, order 1), *before* the neurons advance: the accumulation
pairs the traces of step ``t-1`` with :math:`L^{t-1}` (the summed variable is
refreshed in the ``groups`` slot from the error of step ``t-1``), then the traces
move to step ``t``. The weight update runs every ``K`` steps in the ``end`` slot, so
one update applies the contributions of the ``K`` steps before it.

Activity-sparse mode. A trace update is skipped (the trace set to exactly 0, nothing
accumulated) when it would add nothing above ``sparse_eps``: the postsynaptic
pseudo-derivative is 0 or the magnitude of the presynaptic :math:`\\bar z` is below
``sparse_eps`` (inputs may send signed currents, so :math:`\\bar z` can be negative), and
the magnitude of the trace itself (and of :math:`\\epsilon^a`) is below ``sparse_eps``. A skipped synapse
holds zeros, so staying asleep is exact; the only difference from dense updates is
the dropped tail below ``sparse_eps``. Each synapse counts its own performed updates
(an integer state variable, so no two threads write the same counter).

Event-driven mode (``network.event_driven_traces``, with activity-sparse mode). Between
events a trace only decays, :math:`\\bar e^{t}_{ji} = \\kappa\\,\\bar e^{t-1}_{ji}` (and
:math:`\\epsilon^{a,t} = \\rho\\,\\epsilon^{a,t-1}`), so a synapse stores its trace with the time
:math:`t_0` of its last update and brings it forward in closed form only when something reads or
feeds it:

.. math::

    \\bar e^{t-1}_{ji} &= \\kappa^{\\,t-1-t_0}\\,\\bar e^{t_0}_{ji} \\qquad
        (\\epsilon^{a,t-1}_{ji} = \\rho^{\\,t-1-t_0}\\,\\epsilon^{a,t_0}_{ji}) \\\\
    \\text{event at } t &\\iff \\bigl(L_j^t \\ne 0 \\wedge |\\bar e^{t-1}_{ji}| > \\varepsilon\\bigr)
        \\vee \\bigl(\\psi_j^t > 0 \\wedge (|\\bar z_i^t| > \\varepsilon
        \\ (\\vee\\ |\\epsilon^{a,t-1}_{ji}| > \\varepsilon \\text{ for ALIF}))\\bigr)

At an event the dense step runs on the brought-forward values (accumulate, advance) and
:math:`t_0 \\leftarrow t`; otherwise nothing is written and nothing is counted. The result is
the dense one except for the same dropped amounts as activity-sparse mode (an accumulation of a
trace below :math:`\\varepsilon`, an input :math:`\\psi\\bar z` with :math:`\\bar z` below it), but
a synapse costs nothing while it only decays: with a learning signal at decisions only (the
actor-critic writes its errors one step per environment step) a live trace is counted at its
inputs and once per decision, not at every network step. The closed-form decay is counted as one
trace update (on a chip a table of :math:`\\kappa^k` or a shift per elapsed step).

Sparse connectivity is sparse RTRL for free: traces are synaptic state variables,
so they exist only for the synapses created under connection probability ``p``.
"""

from __future__ import annotations

# --------------------------------------------------------------------------------------
# Learning synapses (input -> recurrent, recurrent -> recurrent)
# --------------------------------------------------------------------------------------

_LEARNING_COMMON = """
w : 1                # weight
ebar : 1             # eligibility trace e_ji filtered with kappa = exp(-dt/tau_out)
grad : 1             # accumulated e-prop gradient sum_t L_j ebar_ji since the last update
lr : 1 (shared)      # step size of this synapse group
"""
_LEARNING_ADAPTIVE = """
eps_a : 1            # adaptive eligibility vector (ALIF)
"""
_LEARNING_COUNTER = """
n_trace_updates : integer   # trace updates performed (activity-sparse mode)
"""
_LEARNING_EVENT_TIME = """
t_trace : second            # time of the trace's last update (event-driven mode)
"""
#: A non-learning synapse (fixed weight; used when hidden learning is off).
STATIC_SYNAPSE = """
w : 1                # weight
"""

#: The spike (or current ``s``) adds its weight to the postsynaptic input buffer.
ON_PRE = "I_syn_post += w*s_pre"
#: ``hold_input``: the current goes into the held drive ``I_in`` (refilled only at send steps,
#: see :func:`nmbrl_brian.equations.eprop_neurons.hold_send_condition`), not the per-step buffer.
ON_PRE_HELD = "I_in_post += w*s_pre"
ON_PRE_RECURRENT = "I_syn_post += w"

# Trace step: accumulate with the old trace, then advance it. ``{gate}`` is ``""`` in
# dense mode and ``"active*"`` in activity-sparse mode.
_TRACE_LIF = """
grad += {gate}L_post*ebar
ebar = {gate}(kappa*ebar + psi_post*zbar_pre)
"""
_TRACE_ALIF = """
grad += {gate}L_post*ebar
ebar = {gate}(kappa*ebar + psi_post*(zbar_pre - beta*eps_a))
eps_a = {gate}(psi_post*zbar_pre + (rho - psi_post*beta)*eps_a)
"""
_ACTIVE_LIF = "active = int(abs(ebar) > sparse_eps or (psi_post > 0 and abs(zbar_pre) > sparse_eps))\n"
_ACTIVE_ALIF = "active = int(abs(ebar) > sparse_eps or abs(eps_a) > sparse_eps or (psi_post > 0 and abs(zbar_pre) > sparse_eps))\n"
_COUNT = "n_trace_updates += active\n"

# Event-driven step: bring the stored trace forward to step t-1 in closed form, then run the
# dense step only at an event (see the module docstring); ``lag`` is at least 1 (a network
# restored to an earlier time must not blow a trace up).
_EVENT_LIF = """
lag = clip(timestep(t - t_trace, dt), 1, 1000000000)
prev = ebar*kappa**(lag - 1)
live = int(abs(prev) > sparse_eps)
active = int((live > 0 and L_post != 0) or (psi_post > 0 and abs(zbar_pre) > sparse_eps))
grad += active*live*L_post*prev
ebar = active*(kappa*prev + psi_post*zbar_pre) + (1 - active)*ebar
t_trace = active*t + (1 - active)*t_trace
n_trace_updates += active
"""
_EVENT_ALIF = """
lag = clip(timestep(t - t_trace, dt), 1, 1000000000)
prev = ebar*kappa**(lag - 1)
prev_a = eps_a*rho**(lag - 1)
live = int(abs(prev) > sparse_eps)
live_a = int(abs(prev_a) > sparse_eps)
active = int((live > 0 and L_post != 0) or (psi_post > 0 and (abs(zbar_pre) > sparse_eps or live_a > 0)))
grad += active*live*L_post*prev
ebar = active*(kappa*prev + psi_post*(zbar_pre - beta*prev_a)) + (1 - active)*ebar
eps_a = active*(psi_post*zbar_pre + (rho - psi_post*beta)*prev_a) + (1 - active)*eps_a
t_trace = active*t + (1 - active)*t_trace
n_trace_updates += active
"""

WEIGHT_UPDATE = """
w -= lr*grad
grad = 0
"""


def learning_synapse_equations(model: str, activity_sparse: bool, event_driven: bool = False) -> str:
    """State variables of a learning synapse onto ``model`` (``"LIF"``/``"ALIF"``) neurons."""
    eqs = _LEARNING_COMMON
    if model == "ALIF":
        eqs += _LEARNING_ADAPTIVE
    if activity_sparse:
        eqs += _LEARNING_COUNTER
    if event_driven:
        eqs += _LEARNING_EVENT_TIME
    return eqs


def trace_update(model: str, activity_sparse: bool, event_driven: bool = False) -> str:
    """Abstract code of one trace step (accumulate, then advance): dense, activity-sparse or
    event-driven (which needs activity-sparse mode's skip criterion and counter)."""
    if event_driven:
        if not activity_sparse:
            raise ValueError("event-driven traces need activity_sparse")
        return _EVENT_ALIF if model == "ALIF" else _EVENT_LIF
    body = _TRACE_ALIF if model == "ALIF" else _TRACE_LIF
    if not activity_sparse:
        return body.format(gate="")
    active = _ACTIVE_ALIF if model == "ALIF" else _ACTIVE_LIF
    return active + body.format(gate="active*") + _COUNT


# --------------------------------------------------------------------------------------
# Readout synapses and feedback
# --------------------------------------------------------------------------------------

_READOUT_SYNAPSE = """
w : 1                # readout weight W_out[k, j]
grad : 1             # accumulated sum_t err_k zbar_out_j since the last update
lr : 1 (shared)      # step size of the readout weights
"""
#: Symmetric feedback: the readout synapses themselves sum ``B_jk err_k`` with ``B = W_out^T``.
SYMMETRIC_FEEDBACK = "L_pre = w*err_post : 1 (summed)   # learning signal, B = W_out^T\n"
READOUT_ON_PRE = "I_syn_post += w"
READOUT_ACCUMULATE = "grad += err_post*zbar_out_pre\n"

#: Random feedback: a separate ``Synapses(readout, recurrent)`` with fixed ``B``.
RANDOM_FEEDBACK = """
B : 1                              # fixed random feedback weight B[j, k]
L_post = B*err_pre : 1 (summed)    # learning signal
"""

FEEDBACK_KINDS = ("random", "symmetric")


def readout_synapse_equations(feedback: str) -> str:
    """State variables of a readout synapse; with symmetric feedback it also sums ``L``."""
    if feedback not in FEEDBACK_KINDS:
        raise ValueError(f"feedback: expected one of {', '.join(FEEDBACK_KINDS)}, got {feedback!r}")
    return _READOUT_SYNAPSE + (SYMMETRIC_FEEDBACK if feedback == "symmetric" else "")
