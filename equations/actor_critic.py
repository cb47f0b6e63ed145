"""Reward-based e-prop for an actor-critic: TD(lambda) traces as synaptic state variables.

Reward-based e-prop (Bellec et al. 2020, "A solution to the learning dilemma for
recurrent networks of spiking neurons", Nat. Commun. 11:3625, Methods "Reward-based
e-prop") gives every learning synapse ``i -> j`` an eligibility trace ``e_bar_ji``
(the filtered product of the postsynaptic pseudo-derivative and the presynaptic
filtered spike train; for a readout synapse it is just ``zbar_i``). At each decision
time ``t_n`` (once per environment step) the policy's and the value's learning signals
``L_j`` are combined with it into a TD(lambda) trace, and the global TD error
``delta`` gates the weight change:

.. math::

    z_{ji} &\\leftarrow \\gamma\\lambda\\, z_{ji} + L_j(t_n)\\, \\bar e_{ji}(t_n) \\\\
    w_{ji} &\\leftarrow w_{ji} + \\delta_n\\, z_{ji}

with, for readout ``k`` (``n_actions`` policy logits, then the value),

.. math::

    L_k = \\alpha_\\pi (\\mathbb{1}[a_n = k] - \\pi_k) / \\|\\bar z\\|^2 \\quad (k < A), \\qquad
    L_V = \\alpha_V / \\|\\bar z\\|^2,

and for a recurrent neuron ``j`` the broadcast ``L_j = \\sum_k B_{jk} L_k`` through
fixed feedback weights ``B`` (random, or symmetric: ``B = W_out^T``). Dividing by the
squared norm of the filtered spike trains makes the step size independent of the
firing rate (normalised LMS).

The decision-time updates run as ``run_regularly`` operations every ``T_env``; the
signals ``L_k`` and ``delta`` are written by the environment bridge just before.
"""

from __future__ import annotations

#: Leaky readout neuron: integrates weighted spikes with time constant ``tau_out``.
#: ``y`` is a policy logit or the value; the bridge writes ``L``, ``decision`` and ``delta``.
READOUT_NEURON = """
dy/dt = -y / tau_out : 1   # readout: a policy logit or the value
L : 1                      # learning signal of this decision
decision : 1               # 1 in a period that starts with a decision, else 0
delta : 1                  # TD error completed at the start of this period
clear : 1                  # 1 in a period that starts a new episode: traces restart from 0
bias : 1                   # learned bias, added to y when read
bias_trace : 1             # TD(lambda) trace of the bias
"""

#: Recurrent -> readout synapse. The presynaptic filtered spike train ``zbar`` (time
#: constant ``tau_out``) is the exact eligibility trace of a leaky readout.
READOUT_SYNAPSE = """
w : 1                      # readout weight
z_td : 1                   # TD(lambda) trace of this weight
"""
READOUT_ON_PRE = "y_post += w"

#: Weight update at the start of every period (``run_regularly``, after the bridge).
READOUT_WEIGHT_UPDATE = "w += delta_post * z_td"
BIAS_UPDATE = "bias += delta * bias_trace"

#: Trace update (``run_regularly`` after the weight update): decay and add at a
#: decision, restart at a new episode, unchanged otherwise.
READOUT_TRACE_UPDATE = (
    "z_td = (1 - clear_post) * (z_td + decision_post * ((gamma_lambda - 1) * z_td + L_post * zbar_pre))"
)
BIAS_TRACE_UPDATE = "bias_trace = (1 - clear) * (bias_trace + decision * ((gamma_lambda - 1) * bias_trace + L))"
