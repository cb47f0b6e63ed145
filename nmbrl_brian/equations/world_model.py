"""The spiking world model inside a closed loop: learning from a table, and predicting in a dream.

The model is the e-prop network of :mod:`nmbrl_brian.world_models.snn_world_model` (its
maths are there and in :mod:`nmbrl_brian.equations.direct_readout`): one transition per
environment period, the network at rest at the start of every period, the prediction
read from the readouts at the end of the period. It runs in a
:class:`~nmbrl_brian.loop.ClosedLoop` (alone, for :class:`SNNWorldModel`'s own fits and
predictions, or beside the agent, on the agent's period) in two roles.

**Learner.** Period ``p`` of a run presents row ``p`` of three tables: the input
currents of a real transition ``(s, a)``, the readout targets (standardised
:math:`\\Delta s` and reward) and the error weights (0 pads a run beyond the data, so
nothing is learned there). Supervised e-prop with ``err = w (y - y*)`` on the last
``error_steps`` steps; weights change once per period, at the first step of the next one (a
run ends with one silent row, so the last transition's update lands in the same run). The
input rows are :func:`input_encode` evaluated in NumPy
(:func:`nmbrl_brian.world_models.coding.encode`); predictions are read from the decoder.

**Predictor.** ``A`` copies of the network, copy ``a`` given ``(s, a)`` for the dream's
current state ``s``: the inputs are computed in Brian2 code (:func:`input_encode`) from ``s``
with the model's fitted code (:class:`nmbrl_brian.world_models.coding.InputCode`) (Gaussian population code of each dimension over its range with a
cut-off, the signed whitened state :math:`M^T (s - m)`, the action population, bias
currents):

.. math::

    x_i = \\begin{cases}
        I_{in}\\, g_i\\, [g_i \\ge c], & g_i = \\exp(-\\tfrac12((\\mathrm{clip}(s_{d_i}) - \\mu_i)/\\sigma_i)^2)
            \\quad\\text{(population)} \\\\
        I_{state} \\sum_d M_{d i} (s_d - m_d) & \\text{(signed state)} \\\\
        I_{act}\\, [a_i = a] & \\text{(action)} \\\\
        I_{bias} & \\text{(bias)}
    \\end{cases}

At the start of the next period every copy's prediction for its action is ready
(latched), and the dream steps with the one for the action the agent has chosen:
:math:`s' = s + \\sigma_\\Delta\\, y_{a} / \\text{target\\_scale} + \\mu_\\Delta`.
"""

from __future__ import annotations

#: Input kinds of the model's code.
POPULATION, STATE, ACTION, BIAS = 0, 1, 2, 3

#: Every period, first thing (learner): this period's row of the tables.
LEARNER_INPUT_EQUATIONS = "wm_row : integer   # row of this run's tables for the current period\n"
LEARNER_READOUT_EQUATIONS = """
wm_row : integer     # row of this run's tables for the current period
err_weight : 1       # error weight of this period's target
"""


def learner_input_drive(inputs: str) -> str:
    """``start``: present row ``wm_row`` of TimedArray ``inputs``, then count the period."""
    return f"x = {inputs}(wm_row*period_dt, i)\nwm_row += 1\n"


def learner_targets(targets: str, weights: str) -> str:
    """``start``: this period's targets and error weights from their TimedArrays."""
    return f"y_target = {targets}(wm_row*period_dt, i)\nerr_weight = {weights}(wm_row*period_dt, i)\nwm_row += 1\n"


#: Every step (``after_synapses``, after the readout step): the supervised error on the last
#: ``wm_error_steps`` steps of the period.
LEARNER_ERROR = (
    "err = int(timestep(t, dt) % wm_period_steps >= wm_period_steps - wm_error_steps)"
    " * err_weight * (y - y_target)\n"
)

#: First step of a period, after the last step's gradients were accumulated (``before_thresholds``):
#: back to rest (the same for learner and predictor).
RECURRENT_RESET = "v = 0\nref_left = 0\npsi = 0\nzbar = 0\nzbar_out = 0\n"
INPUT_RESET = "zbar = 0\n"
DIRECT_INPUT_RESET = "zbar_out = 0\n"
SYNAPSE_RESET = "ebar = 0\n"
READOUT_RESET = "grad_b += err*bbar\nerr = 0\ny = 0\nbbar = 0\n"


def period_resets(*, direct: bool, adaptive: bool) -> dict[str, str]:
    """The period-start reset code of each group kind (``inputs``, ``recurrent``, ``readout``,
    ``synapses``): with the direct readout the inputs' filtered trains ``zbar_out`` are cleared too,
    and ALIF neurons and their synapses clear the adaptation ``a`` and its trace ``eps_a``."""
    return {
        "inputs": INPUT_RESET + (DIRECT_INPUT_RESET if direct else ""),
        "recurrent": RECURRENT_RESET + ("a = 0\n" if adaptive else ""),
        "readout": READOUT_RESET,
        "synapses": SYNAPSE_RESET + ("eps_a = 0\n" if adaptive else ""),
    }


def input_code_equations(obs_dim: int) -> str:
    """Variables of an input neuron that encodes ``(s, a)`` itself: its code and the state it reads."""
    rows = "".join(f"code_row_{d} : 1\ncode_mean_{d} : 1\ns_{d} : 1 (linked)\n" for d in range(obs_dim))
    return (
        """
code_kind : integer (constant)   # 0 population, 1 signed state, 2 action, 3 bias
code_dim : integer (constant)    # population: the state dimension it encodes
code_action : integer (constant) # action neuron: its action
copy_action : integer (constant) # the action this copy of the model is given
code_center : 1                  # population: preferred value
code_width : 1                   # population: tuning width
code_low : 1                     # population: encoded range (values are clipped)
code_high : 1
"""
        + rows
    )


def input_encode(obs_dim: int) -> str:
    """Abstract code of the input currents of ``(s, a)`` (see the module docstring); the NumPy
    twin for tables is :func:`nmbrl_brian.world_models.coding.encode`."""
    own = " + ".join(f"int(code_dim == {d})*s_{d}" for d in range(obs_dim))
    state = " + ".join(f"code_row_{d}*(s_{d} - code_mean_{d})" for d in range(obs_dim))
    return f"""
own = {own}
tuning = exp(-0.5*((clip(own, code_low, code_high) - code_center)/code_width)**2)
population = input_current*tuning*int(tuning >= tuning_cutoff)
x = int(code_kind == 0)*population + int(code_kind == 1)*state_current*({state}) + int(code_kind == 2)*action_current*int(code_action == copy_action) + int(code_kind == 3)*bias_current
"""


#: The decoder: the readout at the end of the period (mean over the last ``wm_error_steps``).
DECODER_EQUATIONS = """
y_readout : 1 (linked)   # the readout y_k
y_sum : 1                # sum of y_k over the error window of this period
y_period : 1             # mean of y_k over the error window of the previous period
"""
DECODER_ACCUMULATE = (
    "y_sum += int(timestep(t, dt) % wm_period_steps >= wm_period_steps - wm_error_steps) * y_readout"
)
DECODER_LATCH = "y_period = y_sum / wm_error_steps\ny_sum = 0\n"
