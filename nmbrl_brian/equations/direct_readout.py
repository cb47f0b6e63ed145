"""A direct pathway from the input neurons to the leaky readouts of an e-prop network.

The readouts of :mod:`nmbrl_brian.equations.eprop_neurons` see only the recurrent
layer's spikes. A direct synapse ``i -> k`` adds input ``i``'s value to readout ``k``
like a spike, so the readout becomes

.. math::

    y_k^t = \\kappa y_k^{t-1} + \\sum_j W^{out}_{kj} z_j^t + \\sum_i W^{dir}_{ki} x_i^t + b_k ,

and the part of a target that is a linear function of the inputs needs no spiking layer.
Since :math:`\\partial y_k^t / \\partial W^{dir}_{ki} = \\bar x^{out,t}_i` with the input
filtered by the readout's own decay,

.. math::

    \\bar x^{out,t}_i = \\kappa \\bar x^{out,t-1}_i + x_i^t ,

the direct weights learn by the readout rule, with :math:`\\bar x^{out}_i` as their exact
eligibility trace:

.. math::

    g_{ki} \\mathrel{+}= \\mathrm{err}_k^t\\, \\bar x^{out,t}_i
    \\qquad\\text{or, normalised (NLMS),}\\qquad
    g_{ki} \\mathrel{+}= \\frac{\\mathrm{err}_k^t\\, \\bar x^{out,t}_i}
                            {\\sum_{i'} (\\bar x^{out,t}_{i'})^2 + \\epsilon},

:math:`W^{dir}_{ki} \\leftarrow W^{dir}_{ki} - \\eta\\, g_{ki}` at every weight update.
The sum in the normalised rule runs over readout ``k``'s direct inputs; it is a
``(summed)`` variable of the readout. With one error step per update, the normalised
step :math:`\\eta` is the fraction of the error on the current input that the update
removes (normalised least mean squares; stable for :math:`0 < \\eta < 2`), whatever the
scale of the inputs.

**Joint normalisation** (``readout_gain`` :math:`\\lambda > 0`). Normalised on its own, the
direct pathway's step is measured in its inputs' norm and the spiking readout's plain step in
none: a sample with small direct inputs moves :math:`W^{dir}` far, which shows as a large error
on samples with large inputs, which the spiking readout's plain step answers in its own units.
With inputs far beyond the range the code was fitted to, refits grew the weights without bound
(``tests/test_world_model_drift.py``). One normalised LMS over both pathways, the features
:math:`[\\bar x^{out}, \\sqrt\\lambda\\, \\bar z^{out}]`, has a single metric:

.. math::

    D_k^t = \\sum_{i'} (\\bar x^{out,t}_{i'})^2 + \\lambda \\sum_{j'} (\\bar z^{out,t}_{j'})^2 + \\epsilon ,
    \\qquad
    g^{dir}_{ki} \\mathrel{+}= \\frac{\\mathrm{err}_k^t\\, \\bar x^{out,t}_i}{D_k^t} ,
    \\qquad
    g^{out}_{kj} \\mathrel{+}= \\frac{\\lambda\\, \\mathrm{err}_k^t\\, \\bar z^{out,t}_j}{D_k^t} ,

both applied with the same step :math:`\\eta`; one update then removes the fraction
:math:`\\eta` of the error on the current sample (stable for :math:`0 < \\eta < 2`) whatever
the scale of either pathway's inputs, and :math:`\\lambda` sets how the two share it. The
spiking readout sums :math:`\\sum_{j'} (\\bar z^{out}_{j'})^2` into ``znorm`` as the direct
synapses sum ``xnorm``.

Schedule, as for the recurrent readout synapses (see
:mod:`nmbrl_brian.equations.eprop_synapses`): the inputs fold this step's value into
:math:`\\bar x^{out}` with the neurons (``after_synapses``), and step ``t+1`` accumulates
:math:`\\mathrm{err}^t \\bar x^{out,t}` in the trace slot (``before_thresholds``).
"""

from __future__ import annotations

from nmbrl_brian.equations.eprop_synapses import ON_PRE, READOUT_ACCUMULATE

#: Extra state of each input neuron (``extra_equations["inputs"]`` of the e-prop builder).
INPUT_TRACE_EQUATIONS = """
zbar_out : 1         # s filtered with kappa = exp(-dt/tau_out), this step included (direct readout trace)
"""
#: ``after_synapses``, with the neurons: fold this step's ``s`` into ``zbar_out``.
INPUT_TRACE_UPDATE = "zbar_out = kappa*zbar_out + s\n"

#: Extra state of each readout in normalised mode (``extra_equations["readout"]``).
READOUT_NORM_EQUATIONS = """
xnorm : 1            # sum_i zbar_out_i^2 over the readout's direct inputs (summed by the direct synapses)
"""

#: Extra state of each readout with joint normalisation, beside ``xnorm``.
READOUT_JOINT_NORM_EQUATIONS = """
znorm : 1            # sum_j zbar_out_j^2 over the readout's spiking inputs (summed by the readout synapses)
"""
#: Extra line of the recurrent -> readout synapses with joint normalisation.
READOUT_SYNAPSE_JOINT_NORM = (
    "znorm_post = zbar_out_pre**2 : 1 (summed)   # squared norm of the spiking inputs\n"
)
#: The joint normaliser ``D`` (``readout_gain`` is ``lambda``).
_JOINT_NORM = "(xnorm_post + readout_gain*znorm_post + direct_norm_floor)"

_SYNAPSE = """
w : 1                # direct weight W_dir[k, i]
grad : 1             # accumulated (normalised) sum_t err_k zbar_out_i since the last update
lr : 1 (shared)      # step size of the direct weights
"""
_NORM = "xnorm_post = zbar_out_pre**2 : 1 (summed)   # squared norm of the readout's direct inputs\n"

#: The input's value reaches the readout like a weighted spike.
ON_PRE_DIRECT = ON_PRE

NORM_FLOOR = 1e-9
"""``epsilon`` of the normalised rule (it matters only when every direct input is 0)."""


def synapse_equations(normalized: bool) -> str:
    """State variables of a direct synapse (normalised: it also sums the readout's ``xnorm``)."""
    return _SYNAPSE + (_NORM if normalized else "")


def accumulate(normalized: bool, joint: bool = False) -> str:
    """One step of gradient accumulation, plain, normalised or jointly normalised with the spiking
    readout (``direct_norm_floor`` is ``epsilon``)."""
    if joint:
        return f"grad += err_post*zbar_out_pre/{_JOINT_NORM}\n"
    if normalized:
        return "grad += err_post*zbar_out_pre/(xnorm_post + direct_norm_floor)\n"
    return READOUT_ACCUMULATE


#: One step of the spiking readout's gradient accumulation with joint normalisation.
READOUT_ACCUMULATE_JOINT = f"grad += readout_gain*err_post*zbar_out_pre/{_JOINT_NORM}\n"
