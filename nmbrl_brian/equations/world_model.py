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

Its parameters are :class:`WorldModelConfig` (config section ``world_model``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

from nmbrl_brian.equations.eprop_neurons import SpikingNetworkConfig
from nmbrl_brian.equations.population_code import EncodingConfig
from nmbrl_brian.errors import ConfigError

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


TERMINATION_MODES = ("auto", "given", "learned")
"""``auto``: use the environment's termination function when there is one, else learn it."""
REWARD_MODES = ("learned", "given")
"""``learned``: the reward readout rewards dreamed steps; ``given``: the task's reward rule."""

DEFAULT_WORLD_MODEL_NETWORK = SpikingNetworkConfig(
    neuron_model="LIF",
    n_recurrent=300,
    recurrent=True,
    p_input=0.3,
    p_recurrent=0.1,
    input_kind="current",
    dt_ms=1.0,
    steps_per_env_step=10,
    tau_m_ms=20.0,
    tau_out_ms=20.0,
    refractory_ms=2.0,
    feedback="symmetric",
    update_interval_steps=10,
    hidden_learning=True,
    learning_rate=1e-3,  # replaced by WorldModelConfig.learning_rate at every run
    readout_learning_rate=2e-5,  # replaced by WorldModelConfig.readout_learning_rate at every run
    input_weight_scale=0.5,
    recurrent_weight_scale=0.3,
    readout_weight_scale=0.0,
)
"""The spiking layer of the world model: 300 LIF neurons, 10 steps of 1 ms per transition (the
spiking agent's clock), analog current inputs, weight updates once per transition, readouts
starting at zero."""

DEFAULT_WORLD_MODEL_ENCODING = EncodingConfig(kind="population", neurons_per_dim=12, width=1.0)
"""12 Gaussian tuning curves per state dimension, as wide as their spacing."""


@dataclass(frozen=True)
class WorldModelConfig:
    """Settings of the spiking world model (config section ``world_model``)."""

    network: SpikingNetworkConfig = field(default_factory=lambda: DEFAULT_WORLD_MODEL_NETWORK)
    """The e-prop network; ``input_kind`` must be ``"current"`` and ``update_interval_steps`` a
    multiple of ``steps_per_env_step``. Its learning rates are replaced by the ones below."""
    encoding: EncodingConfig = field(default_factory=lambda: DEFAULT_WORLD_MODEL_ENCODING)
    """Population coding of the state (``kind="population"``); its ranges are used only when
    ``encoding_span_std`` is 0."""
    encoding_span_std: float = 3.0
    """> 0: encode each state dimension over its training mean ± this many standard deviations;
    0: over ``encoding.obs_low .. obs_high``."""
    input_current: float = 1.0
    """Current (threshold units per step, before the input weights) of a state neuron at its
    preferred value."""
    tuning_cutoff: float = 0.01
    """Tuning-curve values below this fraction of the peak send nothing (keeps input events sparse)."""
    state_current: float = 1.0
    """> 0: beside the population code, one input neuron per state dimension carries the signed
    current ``state_current * z_d``, with ``z`` the state standardised (or whitened) with the
    statistics of the training data, a well-conditioned linear code; 0: no such neurons."""
    whiten_state: bool = True
    """The signed state code ``z`` is whitened (ZCA: unit variance, no correlations) instead of
    standardised per dimension."""
    action_neurons_per_action: int = 5
    """Input neurons per action; only the chosen action's population carries a current."""
    action_current: float = 1.0
    """Current of an active action neuron."""
    bias_neurons: int = 5
    """Input neurons with a constant current (random offsets of the recurrent neurons); 0 for none."""
    bias_current: float = 1.0
    """Current of a bias neuron."""
    error_steps: int = 1
    """The last this many steps of each period carry the readout error, and the prediction is the
    mean readout over them."""
    target_scale: float = 1.0
    """Standardised targets (Δs, reward) are multiplied by this before they reach the readouts."""
    termination: str = "auto"
    """``"given"``: use the environment's termination function; ``"learned"``: learn a termination
    readout; ``"auto"``: given when the environment has one, else learned."""
    reward: str = "learned"
    """``"learned"``: dreamed steps are rewarded by the model's reward readout; ``"given"``: by the
    task's reward rule (:meth:`~nmbrl_brian.world_models.termination.CartPoleTermination.reward_code`:
    CartPole 1 per step, Acrobot -1 per step and 0 on the terminating one, MountainCar -1 per step;
    an error for a task without one). The reward readout is learned either way."""
    termination_positive_weight: float = 5.0
    """Error weight of terminal transitions relative to others on the termination readout
    (raises recall; terminal steps are rare)."""
    termination_weight: float = 10.0
    """Error weight of the termination readout."""
    reward_weight: float = 1.0
    """Error weight of the reward readout."""
    learning_rate: float = 1e-3
    """E-prop step size of the input and recurrent weights (per accumulated period gradient)."""
    readout_learning_rate: float = 2e-5
    """Step size of the readout weights and biases (per accumulated period gradient). Not
    normalised: beside the normalised direct pathway, on states far beyond the range of the first
    data (the code is fitted to it and kept) refits can make the weights grow without bound; 0
    leaves the direct pathway to learn alone (the make run job; tests/test_world_model_drift.py)."""
    direct_readout: bool = True
    """Connect the signed state, action and bias inputs straight to the readouts of Δs and reward,
    learned by the readout rule (:mod:`nmbrl_brian.snn.direct_readout`); off: the readouts see only
    the spiking layer."""
    direct_normalized: bool = True
    """Normalise the direct pathway's steps by the squared norm of its inputs (normalised LMS)."""
    readout_gain: float = 0.0
    """``lambda`` > 0: one normalised LMS over both pathways (:mod:`nmbrl_brian.equations.direct_readout`,
    "Joint normalisation"): the direct weights step by ``direct_learning_rate * err * x / D`` and
    the spiking readout's weights by ``direct_learning_rate * lambda * err * z / D``, with
    ``D = |x|^2 + lambda |z|^2`` over the readout's filtered inputs, so an update removes the fraction
    ``direct_learning_rate`` of the error whatever the states' scale; ``readout_learning_rate``
    then steps the readout biases only. 0: the direct pathway is normalised alone and the spiking
    readout takes plain steps of ``readout_learning_rate``. Needs ``direct_readout`` and
    ``direct_normalized``."""
    direct_learning_rate: float = 1.0
    """Step size of the direct weights. Normalised: the fraction of a transition's error the direct
    pathway removes in one update, in (0, 2), shared among the ``error_steps`` steps; else a plain
    step per accumulated gradient."""
    final_learning_rate_fraction: float = 0.2
    """All step sizes decay linearly over the passes of a fit (:meth:`epochs_for`) to this fraction
    of their first value."""
    epochs: int = 5
    """Passes over the data made by :meth:`SNNWorldModel.fit` (at least; see ``min_updates``)."""
    min_updates: int = 10_000
    """:meth:`SNNWorldModel.fit` makes at least this many weight updates (one per transition):
    ``max(epochs, ceil(min_updates / N))`` passes over N transitions, so little data gets many
    passes. The step-size schedule spans those passes."""
    shuffle: bool = True
    """Present the transitions of each epoch in a fresh random order."""
    periods_per_run: int = 5000
    """Transitions per run of the network (longer data takes several runs); the tables hold one
    more row, a silent period that ends every run, and under standalone every run simulates
    ``periods_per_run + 1`` periods."""
    seed: int = 0
    """Seeds the connectivity, the initial weights and the presentation order."""

    def unused_fields(self, used: bool = True) -> dict[str, str]:
        """Fields of this section a run leaves unused, each with the reason.

        Parameters
        ----------
        used : bool
            Whether the run has a spiking world model at all (``agent.kind = "spiking_model_based"``
            and ``model_based.model = "spiking"``); if not, every field is unused.

        Returns
        -------
        dict of str to str
            Dotted field name within the section (``"network.beta"``) to the reason
            (see :func:`nmbrl_brian.config.check_unused`).
        """
        unused: dict[str, str] = {}
        if not used:
            for f in fields(WorldModelConfig):
                if f.name not in ("network", "encoding"):
                    unused[f.name] = "no spiking world model is used (model_based.model, agent.kind)"
            for f in fields(SpikingNetworkConfig):
                unused[f"network.{f.name}"] = "no spiking world model is used"
            for f in fields(EncodingConfig):
                unused[f"encoding.{f.name}"] = "no spiking world model is used"
            return unused
        unused.update({f"network.{k}": v for k, v in self.network.unused_fields().items()})
        for name in ("learning_rate", "readout_learning_rate", "direct_readout"):
            unused[f"network.{name}"] = f"world_model.{name} sets it"
        unused["seed"] = "the world model takes the run's seed"
        unused["encoding.cutoff"] = "world_model.tuning_cutoff sets the world model's cut-off"
        unused["network.hold_input"] = (
            "the world model's inputs are sent every step (held inputs: agent only)"
        )
        # The closed loop's learner (agents/model_based.py) has the loop's periods_per_run rows;
        # shuffle is read (world_models/fitting.py pass_order).
        unused["periods_per_run"] = (
            "the model-based cycle's world model runs in the closed loop (periods_per_run sets its rows)"
        )
        if self.termination != "learned":  # CartPole has a rule: "auto" and "given" both use it
            for name in ("termination_weight", "termination_positive_weight"):
                unused[name] = (
                    f"world_model.termination is {self.termination!r} (the task's rule ends dreamed episodes)"
                )
        if self.encoding_span_std > 0:
            for name in ("obs_low", "obs_high"):
                unused[f"encoding.{name}"] = "world_model.encoding_span_std > 0 fits the range to the data"
        return unused

    def __post_init__(self) -> None:
        def need(ok: bool, name: str, allowed: str) -> None:
            if not ok:
                raise ConfigError(f"world_model.{name}", allowed, getattr(self, name))

        def number(name: str, *, minimum: float = 0.0, strict: bool = False) -> None:
            value = getattr(self, name)
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            ok = ok and (value > minimum if strict else value >= minimum)
            need(ok, name, f"a number {'>' if strict else '>='} {minimum:g}")

        def integer(name: str, minimum: int) -> None:
            value = getattr(self, name)
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= minimum
            need(ok, name, f"an integer >= {minimum}")

        need(isinstance(self.network, SpikingNetworkConfig), "network", "a SpikingNetworkConfig")
        need(
            isinstance(self.encoding, EncodingConfig) and self.encoding.kind == "population",
            "encoding",
            "an EncodingConfig with kind='population'",
        )
        net = self.network
        if net.input_kind != "current":
            raise ConfigError(
                "world_model.network.input_kind", "'current' (analog input currents)", net.input_kind
            )
        if net.update_interval_steps % net.steps_per_env_step != 0:
            raise ConfigError(
                "world_model.network.update_interval_steps",
                f"a multiple of steps_per_env_step = {net.steps_per_env_step}",
                net.update_interval_steps,
            )
        number("encoding_span_std")
        for name in ("input_current", "action_current", "bias_current"):
            number(name, strict=True)
        number("state_current")
        need(isinstance(self.whiten_state, bool), "whiten_state", "true or false")
        number("tuning_cutoff")
        need(self.tuning_cutoff < 1.0, "tuning_cutoff", "a number in [0, 1)")
        integer("action_neurons_per_action", 1)
        integer("bias_neurons", 0)
        integer("error_steps", 1)
        need(
            self.error_steps <= net.steps_per_env_step,
            "error_steps",
            f"an integer in [1, steps_per_env_step = {net.steps_per_env_step}]",
        )
        number("target_scale", strict=True)
        need(self.reward in REWARD_MODES, "reward", "one of " + ", ".join(repr(m) for m in REWARD_MODES))
        need(
            self.termination in TERMINATION_MODES,
            "termination",
            "one of " + ", ".join(repr(m) for m in TERMINATION_MODES),
        )
        for name in (
            "termination_positive_weight",
            "termination_weight",
            "reward_weight",
            "learning_rate",
            "readout_learning_rate",
            "direct_learning_rate",
        ):
            number(name)
        need(
            not self.direct_normalized or self.direct_learning_rate < 2.0,
            "direct_learning_rate",
            "a number in [0, 2) with direct_normalized (normalised LMS is stable below 2)",
        )
        number("final_learning_rate_fraction", strict=True)
        need(self.final_learning_rate_fraction <= 1.0, "final_learning_rate_fraction", "a number in (0, 1]")
        need(isinstance(self.direct_readout, bool), "direct_readout", "true or false")
        need(isinstance(self.direct_normalized, bool), "direct_normalized", "true or false")
        number("readout_gain")
        need(
            self.readout_gain == 0.0 or (self.direct_readout and self.direct_normalized),
            "readout_gain",
            "0 unless direct_readout and direct_normalized are true (it normalises both pathways together)",
        )
        integer("epochs", 1)
        integer("min_updates", 0)
        need(isinstance(self.shuffle, bool), "shuffle", "true or false")
        integer("periods_per_run", 1)
        integer("seed", 0)

    def epochs_for(self, n_transitions: int) -> int:
        """Passes :meth:`SNNWorldModel.fit` makes over ``n_transitions`` transitions."""
        return max(self.epochs, math.ceil(self.min_updates / max(n_transitions, 1)))

    def learning_rate_factor(self, epoch: int, epochs: int | None = None) -> float:
        """Step-size multiplier of epoch ``epoch`` (0-based) of ``epochs`` (default ``self.epochs``):
        1 linearly down to the final fraction."""
        epochs = self.epochs if epochs is None else epochs
        if epochs == 1:
            return 1.0
        frac = min(max(epoch, 0), epochs - 1) / (epochs - 1)
        return 1.0 - (1.0 - self.final_learning_rate_fraction) * frac


#: The world model's two ablations, as :class:`WorldModelConfig` fields: each pathway alone, learning
#: by its own rule (``readout_gain`` 0: not normalised with the other pathway). Used by
#: ``experiments/world_model_quality.py`` (``snn_direct``, ``snn_spiking``) and the model-based agent
#: dreaming in the direct pathway alone (``experiments/sample_efficiency.py``).
DIRECT_PATHWAY_ALONE = {"readout_learning_rate": 0.0, "learning_rate": 0.0, "readout_gain": 0.0}
SPIKING_LAYER_ALONE = {"direct_readout": False, "readout_gain": 0.0}
