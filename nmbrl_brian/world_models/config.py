"""Settings of the spiking world model (config section ``world_model``).

The model itself: :class:`~nmbrl_brian.world_models.snn_world_model.SNNWorldModel`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from nmbrl_brian.encoding import EncodingConfig
from nmbrl_brian.errors import ConfigError
from nmbrl_brian.snn.config import SpikingNetworkConfig

__all__ = [
    "DEFAULT_WORLD_MODEL_ENCODING",
    "DEFAULT_WORLD_MODEL_NETWORK",
    "TERMINATION_MODES",
    "WorldModelConfig",
]

TERMINATION_MODES = ("auto", "given", "learned")
"""``auto``: use the environment's termination function when there is one, else learn it."""

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
    """Step size of the readout weights and biases (per accumulated period gradient)."""
    direct_readout: bool = True
    """Connect the signed state, action and bias inputs straight to the readouts of Δs and reward,
    learned by the readout rule (:mod:`nmbrl_brian.snn.direct_readout`); off: the readouts see only
    the spiking layer."""
    direct_normalized: bool = True
    """Normalise the direct pathway's steps by the squared norm of its inputs (normalised LMS)."""
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
