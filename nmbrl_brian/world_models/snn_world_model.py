"""A spiking world model: an e-prop network that learns ``(s, a) -> (Δs, r, done)`` online.

One environment transition is one *period* of the spiking network,
``network.steps_per_env_step`` time steps of ``network.dt_ms`` (10 × 1 ms by default, the
clock of the spiking agent, so that the model can later run inside the agent's closed loop;
network time need not equal CartPole's 20 ms Euler step). During the period of transition
``n``:

* **Inputs** are analog currents, constant over the period (no Poisson noise):
  the state is population coded (:class:`~nmbrl_brian.encoding.EncodingConfig`,
  Gaussian tuning curves over a range fitted to the training data) and, beside it,
  carried by ``D`` signed currents :math:`c\\,z` with :math:`z = (s - m)M` the state
  whitened with the mean and covariance of the training data (``state_current``,
  ``whiten_state``); the chosen action drives its own population of
  ``action_neurons_per_action`` neurons (the other actions' populations are silent), and
  a small population with a constant current gives every recurrent neuron a random
  offset.
* **The network** is :func:`~nmbrl_brian.snn.eprop_network.build_eprop_network`: a
  sparse recurrent LIF/ALIF layer and leaky readouts that also receive a direct
  pathway from the signed state, action and bias inputs (``direct_readout``,
  :mod:`nmbrl_brian.snn.direct_readout`):
  :math:`y_k^t = \\kappa y_k^{t-1} + \\sum_j W^{out}_{kj} z_j^t
  + \\sum_i W^{dir}_{ki} x_i^t + b_k`. CartPole's step is nearly linear in
  :math:`(s, a)`; the direct pathway learns that part in a few passes (the whitened code
  is perfectly conditioned), and the spiking layer is left the nonlinear rest and the
  termination readout, which the direct pathway does not reach.
* **Readouts** predict :math:`\\Delta s` standardised per dimension with the mean
  and standard deviation of the training data, the standardised reward and, if
  learned, the termination flag (0/1). The prediction of a period is the mean of
  :math:`y_k` over its last ``error_steps`` steps (the last step by default: a leaky
  readout started from rest has a gain that still grows over the period, so a mean over
  several steps fitted step by step is biased low).
* **Learning** is supervised e-prop (Bellec et al. 2020, Nat. Commun. 11:3625): on the
  last ``error_steps`` steps of the period the readout error is
  :math:`\\mathrm{err}_k = w_{n,k}(y_k - y^*_{n,k})` (``w`` weights the reward and
  termination readouts and up-weights terminal transitions), elsewhere 0. Readout
  weights follow :math:`\\mathrm{err}_k \\bar z^{out}_j` and direct weights
  :math:`\\mathrm{err}_k \\bar x^{out}_i` (the inputs filtered with the readout's
  :math:`\\kappa`, their exact eligibility trace); input and recurrent weights
  follow the e-prop eligibility traces with the learning signal
  :math:`L_j = \\sum_k W^{out}_{kj}\\mathrm{err}_k` (symmetric feedback by default).
  Weights change once per period (``network.update_interval_steps`` steps), so one
  pass over the data is online stochastic gradient descent, one transition at a time;
  :meth:`SNNWorldModel.fit` makes at least ``min_updates`` updates (many passes over
  little data).
* **Every period starts from rest**: membrane potentials, refractory counters,
  filtered spike trains, eligibility traces and readouts are cleared at the first step
  of each period, after the last step's gradient has been accumulated. CartPole's
  observation is its full state, so no memory across transitions is needed, and a
  transition's prediction does not depend on the one simulated before it.

A whole epoch, or a whole batch of predictions, is *one* ``Network.run``: inputs,
targets and error weights are TimedArrays with one row per period, written by
``run_regularly`` operations at the start of each period, and a StateMonitor with
the period as its time step reads the period means. In runtime mode every run starts
from a stored initial state (``Network.restore``) with the current weights written in,
which is also what a standalone re-run does.

Under ``cpp_standalone`` the project is generated and compiled once, at the first run;
every later epoch or prediction re-runs the binary with ``device.run(run_args=...)``
(weights, learning rates and the TimedArray contents; the TimedArrays have a fixed
number of rows, ``periods_per_run``, and shorter data is padded with silent periods).
``rebuild_each_run=True`` regenerates and recompiles the project for every run
instead (to measure what re-running saves, and as the "fresh build" reference).

Example
-------
>>> from nmbrl_brian.envs import EnvironmentWrapper
>>> from nmbrl_brian.world_models import collect_transitions
>>> data = collect_transitions(EnvironmentWrapper("CartPole-v1"), None, 500, seed=0)
>>> model = SNNWorldModel.for_env("CartPole-v1", config=WorldModelConfig(epochs=2))
>>> model.fit(data).predict(data.obs[:3], data.action[:3])[0].shape
(3, 4)
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nmbrl_brian.encoding import EncodingConfig, PopulationEncoder
from nmbrl_brian.equations import world_model as wm_eqs
from nmbrl_brian.energy import OperationCounts
from nmbrl_brian.errors import ConfigError
from nmbrl_brian.snn.config import SpikingNetworkConfig
from nmbrl_brian.world_models.baselines import PredictiveWorldModel, _check_dataset
from nmbrl_brian.world_models.dataset import Standardizer, TransitionDataset

DIRECT_WEIGHT_KEY = "w_direct"
"""Key of the direct input -> readout weights in :attr:`SNNWorldModel.weights`."""

__all__ = [
    "DEFAULT_WORLD_MODEL_NETWORK",
    "TERMINATION_MODES",
    "SNNWorldModel",
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
    """Rows of the TimedArrays: transitions per ``Network.run`` (longer data takes several runs;
    under standalone every run simulates this many periods)."""
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


# ----------------------------------------------------------------------------------------
# The Brian2 side: the e-prop network plus the per-period drive, reset and read-out
# ----------------------------------------------------------------------------------------

#: Per-period input drive: ``x`` of every input neuron from a TimedArray with one row per period.
_INPUT_DRIVE = "x = {inputs}(t, i)"

#: Every step, after the readout step (``after_synapses``, order 1): supervised error on the
#: last ``wm_error_steps`` steps of the period, weighted per period and readout.
_READOUT_ERROR = """
y_target = {targets}(t, i)
err = int(timestep(t, dt) % wm_period_steps >= wm_period_steps - wm_error_steps) * {weights}(t, i) * (y - y_target)
"""


class _BrianWorldModel:
    """The Brian2 objects of one world model and how to run them (runtime or standalone)."""

    def __init__(
        self,
        n_inputs: int,
        n_outputs: int,
        config: WorldModelConfig,
        *,
        weights: dict | None,
        input_values: np.ndarray,
        targets: np.ndarray,
        error_weights: np.ndarray,
        learning_rates: tuple[float, float, float],
        name_prefix: str,
        direct_connections: np.ndarray | None = None,
    ):
        from brian2 import Clock, Network, NeuronGroup, SpikeMonitor, StateMonitor, TimedArray

        from nmbrl_brian.devices import active_device_is_standalone
        from nmbrl_brian.snn.direct_readout import add_direct_readout, direct_readout_equations
        from nmbrl_brian.snn.eprop_network import build_eprop_network

        net_cfg = config.network
        self.standalone = active_device_is_standalone()
        self.capacity = config.periods_per_run
        self.period_steps = net_cfg.steps_per_env_step
        p = name_prefix + "_"
        eprop = build_eprop_network(
            n_inputs,
            n_outputs,
            net_cfg,
            input_kind="current",
            error_mode="external",
            seed=config.seed,
            name_prefix=name_prefix,
            extra_equations=direct_readout_equations(config.direct_normalized)
            if config.direct_readout
            else None,
        )
        self.eprop = eprop
        self.direct = None
        if config.direct_readout:
            self.direct = add_direct_readout(
                eprop,
                direct_connections,
                normalized=config.direct_normalized,
                learning_rate=learning_rates[2],
            )
        dt = eprop.dt
        self.dt = dt
        period = self.period_steps * dt
        self.period_clock = Clock(dt=period, name=p + "wm_period_clock")
        ns = eprop.namespace
        self.ta_inputs = TimedArray(input_values, dt=period, name=p + "wm_inputs")
        self.ta_targets = TimedArray(targets, dt=period, name=p + "wm_targets")
        self.ta_error_weights = TimedArray(error_weights, dt=period, name=p + "wm_error_weights")
        for ta in (self.ta_inputs, self.ta_targets, self.ta_error_weights):
            ns[ta.name] = ta  # the groups resolve names in this namespace (same dict object)
        ns["wm_period_steps"] = self.period_steps
        ns["wm_error_steps"] = config.error_steps

        # First step of a period, after the previous step's gradients were accumulated
        # (``before_thresholds``, order 2): back to rest (the code the closed-loop parts use too).
        reset = wm_eqs.period_resets(direct=config.direct_readout, adaptive=net_cfg.neuron_model == "ALIF")

        def at_period_start(group, code: str, name: str, when: str = "before_thresholds", order: int = 2):
            """``code`` once per period, on the first step (after the last step's gradients by default)."""
            return group.run_regularly(code, clock=self.period_clock, when=when, order=order, name=name)

        self.ops = {
            "input_drive": at_period_start(
                eprop.inputs,
                _INPUT_DRIVE.format(inputs=self.ta_inputs.name),
                p + "wm_input_drive",
                "start",
                0,
            ),
            "input_reset": at_period_start(eprop.inputs, reset["inputs"], p + "wm_input_reset"),
            "recurrent_reset": at_period_start(eprop.recurrent, reset["recurrent"], p + "wm_recurrent_reset"),
            "readout_reset": at_period_start(eprop.readout, reset["readout"], p + "wm_readout_reset"),
            "readout_error": eprop.readout.run_regularly(
                _READOUT_ERROR.format(targets=self.ta_targets.name, weights=self.ta_error_weights.name),
                when="after_synapses",
                order=1,
                name=p + "wm_readout_error",
            ),
        }
        for syn in eprop.learning_synapses:
            self.ops[f"{syn.name}_reset"] = at_period_start(syn, reset["synapses"], f"{syn.name}_wm_reset")

        self.decoder = NeuronGroup(
            n_outputs, wm_eqs.DECODER_EQUATIONS, namespace=ns, clock=eprop.clock, name=p + "wm_decoder"
        )
        self.decoder.y_readout = _linked(eprop.readout, "y")
        self.ops["decoder_accumulate"] = self.decoder.run_regularly(
            wm_eqs.DECODER_ACCUMULATE, when="after_synapses", order=2, name=p + "wm_decoder_accumulate"
        )
        self.ops["decoder_latch"] = self.decoder.run_regularly(
            wm_eqs.DECODER_LATCH, clock=self.period_clock, when="start", order=0, name=p + "wm_decoder_latch"
        )
        self.monitor = StateMonitor(
            self.decoder,
            "y_period",
            record=True,
            clock=self.period_clock,
            when="start",
            order=1,
            name=p + "wm_prediction_monitor",
        )
        objects = [*eprop.objects, self.decoder, self.monitor]
        if self.direct is not None:
            objects.append(self.direct.synapses)
        self.spike_monitor = None
        if not self.standalone:  # switched on per run (runtime only: standalone structure is fixed)
            self.spike_monitor = SpikeMonitor(eprop.recurrent, record=True, name=p + "wm_spikes")
            objects.append(self.spike_monitor)
        self.network = Network(*objects, name=p + "wm_network")
        #: Operations that only matter for learning (switched off for predictions in runtime mode).
        self.learning_ops = [
            op
            for key, op in eprop.operations.items()
            if key.endswith(("_traces", "_weight_update", "_accumulate")) or key == "readout_bias_update"
        ]
        self.learning_ops += [self.ops[f"{syn.name}_reset"] for syn in eprop.learning_synapses]
        if self.direct is not None:
            self.learning_ops += [op for key, op in self.direct.operations.items() if key != "input_trace"]
        if weights is not None:
            self.set_weights(weights)
        self.set_learning_rates(learning_rates)
        self.built = False

    # ------------------------------------------------------------------------------------
    # Weights and step sizes of the e-prop network and the direct pathway
    def initial_weights(self) -> dict[str, np.ndarray]:
        """The weights as built (the direct weights start at 0)."""
        weights = {k: v.copy() for k, v in self.eprop.initial_weights.items()}
        if self.direct is not None:
            weights[DIRECT_WEIGHT_KEY] = np.zeros(len(self.direct.synapses))
        return weights

    def get_weights(self) -> dict[str, np.ndarray]:
        """Copies of the current weights."""
        weights = self.eprop.get_weights()
        if self.direct is not None:
            weights[DIRECT_WEIGHT_KEY] = self.direct.weights()
        return weights

    def set_weights(self, weights: dict) -> None:
        """Write weights saved by :meth:`get_weights`."""
        self.eprop.set_weights(weights)
        if self.direct is not None and DIRECT_WEIGHT_KEY in weights:
            self.direct.synapses.w[:] = np.asarray(weights[DIRECT_WEIGHT_KEY], dtype=float)

    def set_learning_rates(self, learning_rates: tuple[float, float, float]) -> None:
        """Hidden, readout and direct step sizes."""
        self.eprop.set_learning_rates(hidden=learning_rates[0], readout=learning_rates[1])
        if self.direct is not None:
            self.direct.synapses.lr = float(learning_rates[2])

    def run_args(self, weights: dict, learning_rates: tuple[float, float, float]) -> dict:
        """``run_args`` of a standalone re-run that starts from ``weights`` with these step sizes."""
        eprop = self.eprop
        run_args = eprop.weight_run_args(weights)
        for syn in eprop.learning_synapses:
            run_args[syn.lr] = float(learning_rates[0])
        run_args[eprop.syn_out.lr] = float(learning_rates[1])
        run_args[eprop.readout.lr_b] = float(learning_rates[1])
        if self.direct is not None:
            run_args[self.direct.synapses.w] = np.asarray(weights[DIRECT_WEIGHT_KEY], dtype=float)
            run_args[self.direct.synapses.lr] = float(learning_rates[2])
        return run_args

    def operation_counts(self) -> OperationCounts:
        """Operations of the last run: the e-prop network's and the direct pathway's."""
        counts = self.eprop.operation_counts()
        if self.direct is not None:
            steps = self.eprop.steps_done()
            n_updates = (steps - 1) // self.eprop.config.update_interval_steps if steps > 0 else 0
            counts = counts + self.direct.counts(np.asarray(self.eprop.spikes_in.count[:]), steps, n_updates)
        return counts

    # ------------------------------------------------------------------------------------
    def run_duration(self, n_periods: int):
        """``n_periods`` periods plus one step, so the monitor sees the last period's mean."""
        return (n_periods * self.period_steps + 1) * self.dt

    def write_values(
        self, weights: dict, learning_rates: tuple[float, float, float], input_values, targets, error_weights
    ) -> None:
        """Write weights, step sizes and the TimedArray contents into the Brian2 objects.

        The TimedArrays are filled in place: runtime code reads these very arrays, and a
        standalone build takes them as the project's initial values.
        """
        self.set_weights(weights)
        self.set_learning_rates(learning_rates)
        for ta, values in (
            (self.ta_inputs, input_values),
            (self.ta_targets, targets),
            (self.ta_error_weights, error_weights),
        ):
            ta.values[:] = values

    def runtime_run(
        self,
        n_periods: int,
        weights: dict,
        learning_rates: tuple[float, float, float],
        learn: bool,
        record_spikes: bool,
        input_values,
        targets,
        error_weights,
    ) -> None:
        """One runtime ``Network.run`` over ``n_periods`` from the stored initial state."""
        if not self.built:
            self.network.store("wm_initial")
            self.built = True
        self.network.restore("wm_initial")
        self.write_values(weights, learning_rates, input_values, targets, error_weights)
        for op in self.learning_ops:
            op.active = learn
        self.spike_monitor.active = record_spikes
        self.network.run(self.run_duration(n_periods), namespace={})

    def standalone_build(self, build_dir: Path) -> None:
        """Generate and compile the project (the initial values become its defaults)."""
        from brian2 import get_device

        self.network.run(self.run_duration(self.capacity), namespace={})
        get_device().build(directory=str(build_dir), compile=True, run=False, with_output=False)
        self.built = True

    def standalone_build_and_run(
        self,
        build_dir: Path,
        weights: dict,
        learning_rates: tuple[float, float, float],
        input_values,
        targets,
        error_weights,
    ) -> None:
        """Write weights, step sizes and data as initial values, then generate, compile and run."""
        from brian2 import get_device

        self.write_values(weights, learning_rates, input_values, targets, error_weights)
        self.network.run(self.run_duration(self.capacity), namespace={})
        get_device().build(directory=str(build_dir), compile=True, run=True, with_output=False)
        self.built = True

    def standalone_run(
        self,
        build_dir: Path,
        weights: dict,
        learning_rates: tuple[float, float, float],
        input_values,
        targets,
        error_weights,
    ) -> None:
        """Re-run the compiled binary with new weights, step sizes and data (no recompilation)."""
        from brian2 import get_device

        run_args = self.run_args(weights, learning_rates)
        run_args[self.ta_inputs] = np.ascontiguousarray(input_values, dtype=float)
        run_args[self.ta_targets] = np.ascontiguousarray(targets, dtype=float)
        run_args[self.ta_error_weights] = np.ascontiguousarray(error_weights, dtype=float)
        get_device().run(directory=str(build_dir), with_output=False, run_args=run_args)

    def period_outputs(self, n_periods: int) -> np.ndarray:
        """Decoded readouts of the first ``n_periods`` periods of the last run, shape ``(n, n_outputs)``."""
        values = np.asarray(self.monitor.y_period)  # (n_outputs, samples at 0, T, 2T, ...)
        return values[:, 1 : n_periods + 1].T.copy()


def _linked(group, name):
    from brian2 import linked_var

    return linked_var(group, name)


# ----------------------------------------------------------------------------------------
# The world model
# ----------------------------------------------------------------------------------------


class SNNWorldModel(PredictiveWorldModel):
    """A spiking world model trained online with supervised e-prop.

    Parameters
    ----------
    observation_space, action_space, initial_state_sampler, termination_fn, termination_threshold
        See :class:`~nmbrl_brian.world_models.baselines.PredictiveWorldModel`. With
        ``config.termination`` ``"given"`` or ``"auto"`` a ``termination_fn`` replaces the
        learned termination readout; with ``"learned"`` it is ignored.
    config : WorldModelConfig, optional
        Network, coding and training settings.
    build_dir : str or Path, optional
        Standalone project folder; by default the ``directory`` given to ``select_device``.
        Unused in runtime mode.
    rebuild_each_run : bool
        Standalone only: regenerate and recompile the project for every run instead of
        re-running the compiled binary with ``run_args`` (slow; for timing and as a
        fresh-build reference).
    record_spikes : bool
        Runtime only: record the recurrent spikes of every prediction run (see
        :meth:`recorded_spikes`); the attribute can be switched at any time.
    name_prefix : str
        Prefix of the Brian2 object names.

    Attributes
    ----------
    weights : dict of str to numpy.ndarray
        Current weights (``w_in``, ``w_rec``, ``w_out``, ``b_out`` and ``w_direct``), the truth between runs.
    epochs_done : int
        Training passes made so far (sets the step-size schedule).
    training_log : list of dict
        One row per :meth:`train_epoch`.
    timings : dict of str to list of float
        Wall time (s) of every ``"build"``, ``"train_run"`` and ``"predict_run"``.
    """

    def __init__(
        self,
        observation_space,
        action_space,
        *,
        config: WorldModelConfig | None = None,
        build_dir: str | Path | None = None,
        rebuild_each_run: bool = False,
        record_spikes: bool = False,
        name_prefix: str = "wm",
        **kwargs: Any,
    ):
        super().__init__(observation_space, action_space, **kwargs)
        self.config = config if config is not None else WorldModelConfig()
        if not isinstance(self.config, WorldModelConfig):
            raise ConfigError("world_model", "a WorldModelConfig", type(self.config).__name__)
        mode = self.config.termination
        if mode == "given" and self.termination_fn is None:
            raise ConfigError(
                "world_model.termination",
                "'learned' or 'auto' when the environment has no termination function",
                mode,
            )
        self.given_termination_fn = self.termination_fn
        if mode == "learned":
            self.termination_fn = None
        self.learns_termination = self.termination_fn is None
        self.build_dir = None if build_dir is None else Path(build_dir)
        self.rebuild_each_run = bool(rebuild_each_run)
        self.record_spikes = bool(record_spikes)
        self.name_prefix = name_prefix
        cfg = self.config
        n_pop = self.obs_dim * cfg.encoding.neurons_per_dim
        self.n_state_inputs = self.obs_dim if cfg.state_current > 0 else 0
        self.n_inputs = (
            n_pop + self.n_state_inputs + self.n_actions * cfg.action_neurons_per_action + cfg.bias_neurons
        )
        self.n_outputs = self.obs_dim + 1 + int(self.learns_termination)
        self.encoder: PopulationEncoder | None = None
        self.state_code: tuple[np.ndarray, np.ndarray] | None = None
        self.delta_scaler: Standardizer | None = None
        self.reward_scaler: Standardizer | None = None
        self.weights: dict[str, np.ndarray] | None = None
        self.epochs_done = 0
        self.training_log: list[dict] = []
        self.timings: dict[str, list[float]] = {"build": [], "train_run": [], "predict_run": []}
        self.training_counts = OperationCounts()
        self._brian: _BrianWorldModel | None = None
        self._spikes: list[tuple[np.ndarray, np.ndarray]] = []
        self._spike_time_offset_ms = 0.0

    # ------------------------------------------------------------------------------------
    # Coding
    @property
    def period_ms(self) -> float:
        """Network time per transition (ms)."""
        return self.config.network.steps_per_env_step * self.config.network.dt_ms

    def _prepare(self, dataset: TransitionDataset) -> None:
        """Fit the encoding range and the target scalers to ``dataset`` (first call only)."""
        if self.encoder is not None:
            return
        cfg = self.config
        enc = cfg.encoding
        if cfg.encoding_span_std > 0:
            mean, std = dataset.obs.mean(axis=0), dataset.obs.std(axis=0)
            std = np.where(std > 1e-8, std, 1.0)
            enc = dataclasses.replace(
                enc,
                obs_low=tuple(map(float, mean - cfg.encoding_span_std * std)),
                obs_high=tuple(map(float, mean + cfg.encoding_span_std * std)),
            )
        self.encoder = PopulationEncoder(enc, self.obs_dim)
        self.state_code = _fit_state_code(dataset.obs, whiten=cfg.whiten_state)
        self.delta_scaler = dataset.delta_standardizer()
        self.reward_scaler = Standardizer.fit(dataset.reward)
        if self.weights is None:
            self.weights = self._initial_weights()

    def encode(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Input currents of each ``(s, a)`` pair, shape ``(N, n_inputs)``.

        Parameters
        ----------
        obs : numpy.ndarray
            States, shape ``(N, D)``.
        actions : numpy.ndarray
            Integer actions, shape ``(N,)``.

        Returns
        -------
        numpy.ndarray
            Currents (threshold units per step): state populations, signed standardised
            state (``state_current > 0``), action populations (only the chosen action's is
            nonzero), bias neurons.
        """
        if self.encoder is None:
            raise RuntimeError(f"{type(self).__name__}: call fit(dataset) or train_epoch(dataset) first")
        cfg = self.config
        obs = np.asarray(obs, dtype=np.float64).reshape(-1, self.obs_dim)
        actions = np.asarray(actions).astype(np.int64).reshape(-1)
        pop = np.stack([self.encoder(o) for o in obs]) if len(obs) else np.zeros((0, self.encoder.size))
        pop = np.where(pop >= cfg.tuning_cutoff, pop, 0.0) * cfg.input_current
        mean, matrix = self.state_code
        state = ((obs - mean) @ matrix)[:, : self.n_state_inputs] * cfg.state_current
        k = cfg.action_neurons_per_action
        act = np.zeros((len(obs), self.n_actions * k))
        for a in range(self.n_actions):
            act[actions == a, a * k : (a + 1) * k] = cfg.action_current
        bias = np.full((len(obs), cfg.bias_neurons), cfg.bias_current)
        return np.hstack([pop, state, act, bias])

    def direct_connections(self) -> np.ndarray:
        """Which inputs connect straight to which readouts, shape ``(n_inputs, n_outputs)``.

        The signed state, action and bias neurons (every input but the population code) reach
        the readouts of Δs and reward: the near-linear part of the dynamics. The termination
        readout, a threshold function of the state, reads only the spiking layer.
        """
        mask = np.zeros((self.n_inputs, self.n_outputs), dtype=bool)
        mask[self.obs_dim * self.config.encoding.neurons_per_dim :, : self.obs_dim + 1] = True
        return mask

    def targets(self, dataset: TransitionDataset) -> tuple[np.ndarray, np.ndarray]:
        """Readout targets and error weights of every transition, both ``(N, n_outputs)``."""
        cfg = self.config
        cols = [
            self.delta_scaler.transform(dataset.delta) * cfg.target_scale,
            self.reward_scaler.transform(dataset.reward)[:, None] * cfg.target_scale,
        ]
        weights = [np.ones((len(dataset), self.obs_dim)), np.full((len(dataset), 1), cfg.reward_weight)]
        if self.learns_termination:
            term = dataset.terminated.astype(np.float64)
            cols.append(term[:, None])
            weights.append(
                (cfg.termination_weight * np.where(term > 0, cfg.termination_positive_weight, 1.0))[:, None]
            )
        return np.hstack(cols), np.hstack(weights)

    def _decode(self, outputs: np.ndarray, obs: np.ndarray):
        cfg, d = self.config, self.obs_dim
        delta = self.delta_scaler.inverse(outputs[:, :d] / cfg.target_scale)
        reward = self.reward_scaler.inverse(outputs[:, d] / cfg.target_scale)
        if self.learns_termination:
            term = np.clip(outputs[:, d + 1], 0.0, 1.0)
        else:
            term = np.zeros(len(obs))
        return obs + delta, reward, term

    # ------------------------------------------------------------------------------------
    # Brian2 runs
    def _initial_weights(self) -> dict[str, np.ndarray]:
        """The weights drawn by the network builder (seeded by ``config.seed``)."""
        brian = self._network(learning_rates=(0.0, 0.0, 0.0))
        return brian.initial_weights()

    def _blank_data(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = self.config.periods_per_run
        return np.zeros((n, self.n_inputs)), np.zeros((n, self.n_outputs)), np.zeros((n, self.n_outputs))

    def _network(self, *, learning_rates, data=None) -> _BrianWorldModel:
        """The Brian2 objects, built on first use (rebuilt for every run in rebuild mode)."""
        if self._brian is None:
            inputs, targets, weights = data if data is not None else self._blank_data()
            start = time.perf_counter()
            self._brian = _BrianWorldModel(
                self.n_inputs,
                self.n_outputs,
                self.config,
                weights=self.weights,
                input_values=inputs,
                targets=targets,
                error_weights=weights,
                learning_rates=learning_rates,
                name_prefix=self.name_prefix,
                direct_connections=self.direct_connections(),
            )
            self.timings["build"].append(time.perf_counter() - start)
        return self._brian

    def _standalone_dir(self) -> Path:
        if self.build_dir is not None:
            return self.build_dir
        from brian2 import get_device

        directory = getattr(get_device(), "build_options", {}).get("directory")
        if directory is None:
            raise ConfigError(
                "build_dir",
                "a standalone build folder (give build_dir or select_device('cpp_standalone', build_dir))",
                None,
            )
        self.build_dir = Path(directory)
        return self.build_dir

    def _simulate(
        self,
        inputs: np.ndarray,
        targets: np.ndarray | None,
        error_weights: np.ndarray | None,
        *,
        learning_rates: tuple[float, float, float],
    ) -> np.ndarray:
        """Run all rows (one period each), in runs of at most ``periods_per_run``; return decoded readouts.

        With nonzero learning rates the weights in :attr:`weights` are updated.
        """
        n = len(inputs)
        cap = self.config.periods_per_run
        learn = any(lr > 0 for lr in learning_rates)
        if targets is None:
            targets = np.zeros((n, self.n_outputs))
            error_weights = np.zeros((n, self.n_outputs))
        outputs = np.zeros((n, self.n_outputs))
        for start in range(0, n, cap):
            stop = min(start + cap, n)
            m = stop - start
            padded = []
            for arr in (inputs, targets, error_weights):
                block = np.zeros((cap, arr.shape[1]))
                block[:m] = arr[start:stop]
                padded.append(block)
            t0 = time.perf_counter()
            outputs[start:stop] = self._run_block(m, padded, learning_rates, learn)
            self.timings["train_run" if learn else "predict_run"].append(time.perf_counter() - t0)
        return outputs

    def _run_block(self, m: int, padded: list[np.ndarray], learning_rates, learn: bool) -> np.ndarray:
        if not _standalone():
            brian = self._network(learning_rates=learning_rates)
            brian.runtime_run(
                m, self.weights, learning_rates, learn, self.record_spikes and not learn, *padded
            )
            self._after_run(brian, m, learn)
            return brian.period_outputs(m)
        build_dir = self._standalone_dir()
        if self.rebuild_each_run:
            if self._brian is not None and self._brian.built:
                from brian2 import get_device

                device = get_device()
                options = {k: v for k, v in getattr(device, "build_options", {}).items() if k != "directory"}
                device.reinit()
                device.activate(build_on_run=False, directory=str(build_dir), **options)
                self._brian = None
            brian = self._network(learning_rates=learning_rates)
            brian.standalone_build_and_run(build_dir, self.weights, learning_rates, *padded)
        else:
            brian = self._network(learning_rates=learning_rates)
            if not brian.built:
                start = time.perf_counter()
                brian.standalone_build(build_dir)
                self.timings["build"].append(time.perf_counter() - start)
            brian.standalone_run(build_dir, self.weights, learning_rates, *padded)
        self._after_run(brian, m, learn)
        return brian.period_outputs(m)

    def _after_run(self, brian: _BrianWorldModel, m: int, learn: bool) -> None:
        if learn:
            self.weights = brian.get_weights()
            self.training_counts = self.training_counts + brian.operation_counts()
        if self.record_spikes and brian.spike_monitor is not None and not learn:
            t_ms = np.asarray(brian.spike_monitor.t / _ms())
            keep = t_ms < m * self.period_ms
            self._spikes.append(
                (t_ms[keep] + self._spike_time_offset_ms, np.asarray(brian.spike_monitor.i)[keep])
            )
            self._spike_time_offset_ms += m * self.period_ms

    # ------------------------------------------------------------------------------------
    # Learning
    def learning_rates(
        self, epoch: int | None = None, n_transitions: int | None = None
    ) -> tuple[float, float, float]:
        """Hidden, readout and direct-pathway step sizes of epoch ``epoch`` (default: the next one)
        of a fit to ``n_transitions`` transitions (default: ``config.epochs`` passes)."""
        cfg = self.config
        epochs = cfg.epochs if n_transitions is None else cfg.epochs_for(n_transitions)
        factor = cfg.learning_rate_factor(self.epochs_done if epoch is None else epoch, epochs)
        hidden = cfg.learning_rate * factor if cfg.network.hidden_learning else 0.0
        direct = cfg.direct_learning_rate * factor if cfg.direct_readout else 0.0
        if cfg.direct_normalized:
            direct /= cfg.error_steps  # each error step removes its share of the error
        return hidden, cfg.readout_learning_rate * factor, direct

    def train_epoch(self, dataset: TransitionDataset) -> dict[str, Any]:
        """One pass of online supervised e-prop over ``dataset`` (one run per ``periods_per_run`` rows).

        The first call also fits the encoding range, the signed state code and the target
        scalers to ``dataset``. The step sizes follow the schedule of a fit to ``len(dataset)``
        transitions (:meth:`WorldModelConfig.epochs_for` passes).

        Parameters
        ----------
        dataset : TransitionDataset
            Real transitions.

        Returns
        -------
        dict
            ``epoch``, ``n_transitions``, ``learning_rate``, ``readout_learning_rate``,
            ``direct_learning_rate``, ``online_nmse`` (mean over dimensions of the Δs error made on each transition
            just before learning from it, normalised by the variance of Δs) and ``run_s``
            (wall time of the network runs, s).
        """
        _check_dataset(dataset, self.obs_dim)
        self._prepare(dataset)
        order = np.arange(len(dataset))
        if self.config.shuffle:
            order = np.random.default_rng([self.config.seed, self.epochs_done]).permutation(len(dataset))
        data = dataset.subset(order)
        inputs = self.encode(data.obs, data.action)
        targets, error_weights = self.targets(data)
        lrs = self.learning_rates(n_transitions=len(dataset))
        start = time.perf_counter()
        outputs = self._simulate(inputs, targets, error_weights, learning_rates=lrs)
        run_s = time.perf_counter() - start
        next_obs, _, _ = self._decode(outputs, data.obs)
        err = (next_obs - data.obs) - data.delta
        var = data.delta.var(axis=0)
        online = float(np.mean((err**2).mean(axis=0) / np.where(var > 0, var, np.nan)))
        row = {
            "epoch": self.epochs_done,
            "n_transitions": len(data),
            "learning_rate": lrs[0],
            "readout_learning_rate": lrs[1],
            "direct_learning_rate": lrs[2],
            "online_nmse": online,
            "run_s": run_s,
        }
        self.epochs_done += 1
        self.fitted = True
        self.training_log.append(row)
        return row

    def fit(self, dataset: TransitionDataset) -> SNNWorldModel:
        """Train for ``config.epochs_for(len(dataset))`` passes over ``dataset`` (continuing the
        schedule); return ``self``."""
        for _ in range(self.config.epochs_for(len(dataset))):
            self.train_epoch(dataset)
        return self

    # ------------------------------------------------------------------------------------
    # Prediction
    def _predict(self, obs: np.ndarray, actions: np.ndarray):
        outputs = self._simulate(self.encode(obs, actions), None, None, learning_rates=(0.0, 0.0, 0.0))
        return self._decode(outputs, obs)

    def recorded_spikes(self, *, clear: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Recurrent spikes of all prediction runs since the last clear (``record_spikes=True``).

        Parameters
        ----------
        clear : bool
            Forget them afterwards (the time axis restarts at 0).

        Returns
        -------
        t_ms : numpy.ndarray
            Spike times (ms), the prediction runs laid end to end, one period per transition.
        neuron : numpy.ndarray
            Recurrent neuron index of each spike.
        """
        if self._spikes:
            t_ms = np.concatenate([s[0] for s in self._spikes])
            neuron = np.concatenate([s[1] for s in self._spikes])
        else:
            t_ms, neuron = np.zeros(0), np.zeros(0, dtype=np.int64)
        if clear:
            self._spikes, self._spike_time_offset_ms = [], 0.0
        return t_ms, neuron

    # ------------------------------------------------------------------------------------
    # Checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Weights, scalers, encoding range and schedule position (plain NumPy and Python objects)."""
        if self.encoder is None:
            return {"epochs_done": self.epochs_done, "fitted": False}
        enc = self.encoder.config
        return {
            "weights": {k: v.copy() for k, v in self.weights.items()},
            "state_code": tuple(a.copy() for a in self.state_code),
            "delta_scaler": (self.delta_scaler.mean.copy(), self.delta_scaler.std.copy()),
            "reward_scaler": (
                np.asarray(self.reward_scaler.mean).copy(),
                np.asarray(self.reward_scaler.std).copy(),
            ),
            "obs_low": tuple(enc.obs_low),
            "obs_high": tuple(enc.obs_high),
            "epochs_done": self.epochs_done,
            "fitted": self.fitted,
            "training_log": [dict(r) for r in self.training_log],
            "n_inputs": self.n_inputs,
            "n_outputs": self.n_outputs,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (same config and seed, hence same connectivity)."""
        self.epochs_done = int(state.get("epochs_done", 0))
        if "weights" not in state:
            return
        if state["n_inputs"] != self.n_inputs or state["n_outputs"] != self.n_outputs:
            raise ConfigError(
                "state",
                f"a checkpoint of a model with {self.n_inputs} inputs and {self.n_outputs} readouts",
                (state["n_inputs"], state["n_outputs"]),
            )
        expected = self._initial_weights() if self.weights is None else self.weights
        for key, value in state["weights"].items():
            if key not in expected or np.shape(value) != np.shape(expected[key]):
                raise ConfigError(
                    "state", "weights with this model's connectivity (same config and seed)", key
                )
        self.weights = {k: np.asarray(v, dtype=float).copy() for k, v in state["weights"].items()}
        enc = dataclasses.replace(
            self.config.encoding, obs_low=tuple(state["obs_low"]), obs_high=tuple(state["obs_high"])
        )
        self.encoder = PopulationEncoder(enc, self.obs_dim)
        self.state_code = tuple(np.asarray(a, dtype=float).copy() for a in state["state_code"])
        self.delta_scaler = Standardizer(*map(np.asarray, state["delta_scaler"]))
        self.reward_scaler = Standardizer(*map(np.asarray, state["reward_scaler"]))
        self.fitted = bool(state.get("fitted", True))
        self.training_log = [dict(r) for r in state.get("training_log", [])]


def _fit_state_code(obs: np.ndarray, *, whiten: bool) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``m`` and matrix ``M`` of the signed state code ``(s - m) @ M``.

    ``whiten=False``: ``M = diag(1/std)`` (standardised); ``True``: ``M = C^(-1/2)`` (ZCA
    whitening with the covariance ``C`` of ``obs``: unit variance and no correlations, so every
    direction of the code is learned at the same speed).
    """
    mean = obs.mean(axis=0)
    if not whiten:
        std = obs.std(axis=0)
        return mean, np.diag(1.0 / np.where(std > 1e-8, std, 1.0))
    values, vectors = np.linalg.eigh(np.cov(obs, rowvar=False, bias=True))
    values = np.maximum(values, 1e-12 + 1e-8 * values.max())
    return mean, (vectors / np.sqrt(values)) @ vectors.T


def _standalone() -> bool:
    from nmbrl_brian.devices import active_device_is_standalone

    return active_device_is_standalone()


def _ms():
    from brian2 import ms

    return ms
