"""Reward-based e-prop for an actor-critic: TD(lambda) on top of the e-prop synapses.

Reward-based e-prop (Bellec et al. 2020, "A solution to the learning dilemma for
recurrent networks of spiking neurons", Nat. Commun. 11:3625, Methods "Reward-based
e-prop") reuses the supervised machinery of :mod:`nmbrl_brian.equations.eprop_synapses`:
every learning synapse ``i -> j`` keeps its eligibility trace ``ebar_ji`` and an
accumulator ``grad_ji`` that adds ``L_j * ebar_ji`` in every step. For an actor-critic
the readout "errors" are not prediction errors but the learning signals of one
decision ``n``, written for one step by the environment bridge:

.. math::

    \\mathrm{err}_k = \\alpha_\\pi\\,(\\mathbb{1}[a_n = k] - \\pi_k) / \\|\\bar z\\|^2 \\quad (k < A),
    \\qquad \\mathrm{err}_V = \\alpha_V / \\|\\bar z\\|^2

(``||zbar||^2``, the squared norm of the recurrent layer's filtered spike trains,
normalises the step size as in normalised LMS), broadcast to the recurrent neurons
as ``L_j = sum_k B_jk err_k`` (``B = W_out^T`` or random). With ``err`` cleared after
that step, ``grad`` gains exactly ``L_j ebar_ji`` at each decision. Letting the
accumulator decay by ``gamma*lambda`` instead of clearing it turns it into the
TD(lambda) eligibility trace ``z_ji`` of the actor-critic, and the global TD error
``delta_n = r_n + gamma V(s_{n+1}) - V(s_n)`` gates the weight change:

.. math::

    w_{ji} &\\leftarrow w_{ji} + \\eta\\,\\delta_n\\, z_{ji} \\\\
    z_{ji} &\\leftarrow \\gamma\\lambda\\, z_{ji} + L_j\\, \\bar e_{ji}

The bridge writes ``lr = -eta * delta_n`` into each synapse group's shared step size
right before :data:`TD_WEIGHT_UPDATE` runs (``eta = 1`` for the readouts, whose step
sizes are already in ``err``; ``eta`` = ``network.learning_rate`` for the input and
recurrent synapses), once per environment step.
"""

from __future__ import annotations

#: Once per environment step, right after the bridge: apply the TD error, decay the trace.
TD_WEIGHT_UPDATE = """
w -= lr*grad
grad = gamma_lambda*grad
"""

#: The same for the readout biases (eligibility ``bbar``, accumulator ``grad_b``).
TD_BIAS_UPDATE = """
b -= lr_b*grad_b
grad_b = gamma_lambda*grad_b
"""

#: At the end of every step: a decision's learning signal lasts exactly one step.
CLEAR_LEARNING_SIGNAL = "err = 0"
