"""A spiking world model: an e-prop network that learns ``(s, a) -> (Δs, r, done)`` online.

One environment transition is one *period* of the spiking network,
``network.steps_per_env_step`` time steps of ``network.dt_ms`` (10 × 1 ms by default, the
clock of the spiking agent, so that the model can later run inside the agent's closed loop;
network time need not equal CartPole's 20 ms Euler step). During the period of transition
``n``:

* **Inputs** are analog currents, constant over the period (no Poisson noise):
  the state is population coded (:class:`~nmbrl_brian.equations.population_code.EncodingConfig`,
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

The network is the learner part
(:class:`~nmbrl_brian.parts.world_model.WorldModelLearnerPart`), run alone in a
:class:`~nmbrl_brian.loop.ClosedLoop`, the package's one runner; fitting is
:mod:`nmbrl_brian.world_models.fitting`, the same code that fits the model beside the
model-based agent. A whole epoch, or a whole batch of predictions, is one run of
``periods_per_run`` transitions at most: inputs, targets and error weights are tables with
one row per period, and a monitor with the period as its time step reads the period means.
Every run ends with a silent period, which applies the last transition's update. A
prediction is a run with zero step sizes and error weights.

Under ``cpp_standalone`` the loop generates and compiles the project once, at the first
run; every later epoch or prediction re-runs the binary with ``device.run(run_args=...)``
(state, weights, learning rates and the table contents; the tables have a fixed number of
rows, ``periods_per_run + 1``, and shorter data is padded with silent periods).
``rebuild_each_run=True`` regenerates and recompiles the project at every
:meth:`~SNNWorldModel.train_epoch`, :meth:`~SNNWorldModel.fit` and
:meth:`~SNNWorldModel.predict` instead (to measure what re-running saves, and as the "fresh
build" reference).

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
import time
from pathlib import Path
from typing import Any

import numpy as np

from nmbrl_brian import seeding
from nmbrl_brian.encoding import PopulationEncoder
from nmbrl_brian.equations.world_model import WorldModelConfig
from nmbrl_brian.errors import ConfigError
from nmbrl_brian.parts.base import Part
from nmbrl_brian.world_models import coding, fitting
from nmbrl_brian.world_models.baselines import PredictiveWorldModel, check_dataset
from nmbrl_brian.world_models.dataset import Standardizer, TransitionDataset

__all__ = ["SNNWorldModel"]


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
        Standalone only: regenerate and recompile the project at every ``train_epoch``,
        ``fit`` and ``predict`` instead of re-running the compiled binary with ``run_args``
        (slow; for timing and as a fresh-build reference).
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
        Training passes made so far (sets the step-size schedule of :meth:`train_epoch`).
    fits_done : int
        Calls of :meth:`fit` so far (seeds their presentation orders).
    training_log : list of dict
        One row per pass.
    timings : dict of str to list of float
        Wall time (s) of every ``"build"`` (construction, and compilation under standalone),
        ``"train_run"`` and ``"predict_run"``.
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
        self.layout = coding.code_layout(cfg, self.obs_dim, self.n_actions)
        self.n_state_inputs = self.obs_dim if cfg.state_current > 0 else 0
        self.n_inputs = self.layout.n_inputs
        self.n_outputs = self.obs_dim + 1 + int(self.learns_termination)
        self.encoder: PopulationEncoder | None = None
        self.state_code: tuple[np.ndarray, np.ndarray] | None = None
        self.delta_scaler: Standardizer | None = None
        self.reward_scaler: Standardizer | None = None
        self.weights: dict[str, np.ndarray] | None = None
        self.epochs_done = self.fits_done = 0
        self.training_log: list[dict] = []
        self.timings: dict[str, list[float]] = {"build": [], "train_run": [], "predict_run": []}
        self._loop = self._learner = self._spike_part = None
        self._code: coding.InputCode | None = None
        self._spikes: list[tuple[np.ndarray, np.ndarray]] = []
        self._spike_time_offset_ms = 0.0
        self._spikes_read = 0

    # ------------------------------------------------------------------------------------
    # Coding
    @property
    def period_ms(self) -> float:
        """Network time per transition (ms)."""
        return self.config.network.steps_per_env_step * self.config.network.dt_ms

    def prepare(self, dataset: TransitionDataset) -> None:
        """Fit the encoding range, the signed state code and the target scalers to ``dataset``
        (first call only; later calls keep them)."""
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
        self.state_code = coding.fit_state_code(dataset.obs, whiten=cfg.whiten_state)
        self.delta_scaler = dataset.delta_standardizer()
        self.reward_scaler = Standardizer.fit(dataset.reward)
        self._code = None

    def encode(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Input currents of each ``(s, a)`` pair, shape ``(N, n_inputs)`` (:func:`coding.encode
        <nmbrl_brian.world_models.coding.encode>` with the fitted code).

        Parameters
        ----------
        obs : numpy.ndarray
            States, shape ``(N, D)``.
        actions : numpy.ndarray
            Integer actions, shape ``(N,)``.

        Returns
        -------
        numpy.ndarray
            Currents (threshold units per step): state populations, signed whitened
            state (``state_current > 0``), action populations (only the chosen action's is
            nonzero), bias neurons.
        """
        if self._code is None:
            self._code = coding.input_code(self)
        return coding.encode(self._code, obs, actions)

    def direct_connections(self) -> np.ndarray:
        """Which inputs connect straight to which readouts, shape ``(n_inputs, n_outputs)``
        (:func:`~nmbrl_brian.world_models.coding.direct_connections`)."""
        return coding.direct_connections(self.layout, self.n_outputs, self.obs_dim)

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

    def decode(self, outputs: np.ndarray, obs: np.ndarray):
        """Next states, rewards and termination probabilities from readouts ``(N, n_outputs)``."""
        cfg, d = self.config, self.obs_dim
        delta = self.delta_scaler.inverse(outputs[:, :d] / cfg.target_scale)
        reward = self.reward_scaler.inverse(outputs[:, d] / cfg.target_scale)
        if self.learns_termination:
            term = np.clip(outputs[:, d + 1], 0.0, 1.0)
        else:
            term = np.zeros(len(obs))
        return obs + delta, reward, term

    # ------------------------------------------------------------------------------------
    # The loop: the learner part alone (and, for predictions in runtime mode, a spike monitor)
    def _learner_part(self):
        """The learner part and its loop, built on first use."""
        if self._loop is None:
            from brian2 import ms

            from nmbrl_brian.loop import ClosedLoop
            from nmbrl_brian.parts.world_model import WorldModelLearnerPart

            start = time.perf_counter()
            period = self.config.network.steps_per_env_step * self.config.network.dt_ms * ms
            self._learner = WorldModelLearnerPart(
                self,
                period=period,
                periods_per_run=self.config.periods_per_run + 1,
                prefix=self.name_prefix,
                record_outputs=True,
            )
            parts = [self._learner]
            self._spike_part = None
            if not _standalone():  # runtime only: the structure of a standalone build is fixed
                self._spike_part = _SpikeRecorder(self._learner)
                parts.append(self._spike_part)
            self._loop = ClosedLoop(
                parts=parts, name=f"{self.name_prefix}_network", build_dir=self._standalone_dir()
            )
            self._spikes_read = 0
            self.timings["build"].append(time.perf_counter() - start)
        return self._learner, self._loop

    def _standalone_dir(self) -> Path | None:
        if self.build_dir is not None or not _standalone():
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

    def _fresh_loop(self):
        """The learner and loop of a user call (rebuild mode: a new project, once the last one was built)."""
        if self.rebuild_each_run and self._loop is not None and self._loop.built and _standalone():
            from brian2 import get_device

            device = get_device()
            options = {k: v for k, v in getattr(device, "build_options", {}).items() if k != "directory"}
            device.reinit()
            device.activate(build_on_run=False, directory=str(self._standalone_dir()), **options)
            self._loop = None
        return self._learner_part()

    def _runner(self, kind: str) -> fitting.RunFn:
        """A run of the loop that times itself into ``timings[kind]`` (and records spikes of predictions)."""
        loop = self._loop

        def run(periods: int, values: dict, active: list) -> dict:
            spikes = kind == "predict_run" and self.record_spikes and self._spike_part is not None
            builds = len(loop.timings["build"])
            t0_ms = 0.0 if loop.standalone else float(loop.network.t / _ms())
            start = time.perf_counter()
            records = loop.run(periods, values, [*active, *([self._spike_part] if spikes else [])])
            self.timings[kind].append(time.perf_counter() - start)
            self.timings["build"].extend(loop.timings["build"][builds:])
            if spikes:
                self._keep_spikes(t0_ms, periods - 1)
            return records

        return run

    def _keep_spikes(self, t0_ms: float, n_transitions: int) -> None:
        monitor = self._spike_part.monitor
        t_ms = np.asarray(monitor.t / _ms())[self._spikes_read :] - t0_ms
        neuron = np.asarray(monitor.i)[self._spikes_read :]
        self._spikes_read += len(t_ms)
        keep = t_ms < n_transitions * self.period_ms
        self._spikes.append((t_ms[keep] + self._spike_time_offset_ms, neuron[keep]))
        self._spike_time_offset_ms += n_transitions * self.period_ms

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

    def _log(self, row: dict) -> dict:
        row = {"epoch": self.epochs_done, **{k: v for k, v in row.items() if k != "pass"}}
        self.epochs_done += 1
        self.fitted = True
        self.training_log.append(row)
        return row

    def train_epoch(self, dataset: TransitionDataset) -> dict[str, Any]:
        """One pass of online supervised e-prop over ``dataset`` (one run per ``periods_per_run`` rows).

        The first call also fits the encoding range, the signed state code and the target
        scalers to ``dataset``. The step sizes follow the schedule of a fit to ``len(dataset)``
        transitions (:meth:`WorldModelConfig.epochs_for` passes), at pass :attr:`epochs_done`;
        the order is a permutation seeded ``[config.seed, epochs_done]`` (``config.shuffle``).

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
        check_dataset(dataset, self.obs_dim)
        learner, loop = self._fresh_loop()
        self.prepare(dataset)
        order = fitting.pass_order(
            self.config, len(dataset), seeding.epoch_seed(self.config.seed, self.epochs_done)
        )
        row = fitting.fit_pass(
            loop,
            learner,
            self,
            dataset.subset(order),
            epoch=self.epochs_done,
            n_transitions=len(dataset),
            run=self._runner("train_run"),
            values=learner.weight_values(self.weights),
        )
        self.weights = learner.read_weights(loop.value)
        return self._log(row)

    def fit(self, dataset: TransitionDataset) -> SNNWorldModel:
        """Train for ``config.epochs_for(len(dataset))`` passes over ``dataset``
        (:func:`~nmbrl_brian.world_models.fitting.fit_in_loop`, the model-based agent's fit:
        step sizes decaying over these passes, orders seeded ``[config.seed, fits_done, pass]``);
        return ``self``."""
        check_dataset(dataset, self.obs_dim)
        learner, loop = self._fresh_loop()
        rows = fitting.fit_in_loop(
            loop, learner, self, dataset, cycle=self.fits_done, run=self._runner("train_run")
        )
        self.fits_done += 1
        for row in rows:
            self._log(row)
        return self

    # ------------------------------------------------------------------------------------
    # Prediction
    def _predict(self, obs: np.ndarray, actions: np.ndarray):
        if self.encoder is None:
            raise RuntimeError(f"{type(self).__name__}: call fit(dataset) or train_epoch(dataset) first")
        learner, loop = self._fresh_loop()
        silent = np.zeros((len(obs), self.n_outputs))
        values = {**learner.weight_values(self.weights), **learner.learning_rate_values((0.0, 0.0, 0.0))}
        outputs = fitting.present(
            loop, learner, self.encode(obs, actions), silent, silent, values, run=self._runner("predict_run")
        )
        return self.decode(outputs, obs)

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
            return {"epochs_done": self.epochs_done, "fits_done": self.fits_done, "fitted": False}
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
            "fits_done": self.fits_done,
            "fitted": self.fitted,
            "training_log": [dict(r) for r in self.training_log],
            "n_inputs": self.n_inputs,
            "n_outputs": self.n_outputs,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (same config and seed, hence same connectivity)."""
        self.epochs_done = int(state.get("epochs_done", 0))
        self.fits_done = int(state.get("fits_done", 0))
        if "weights" not in state:
            return
        if state["n_inputs"] != self.n_inputs or state["n_outputs"] != self.n_outputs:
            raise ConfigError(
                "state",
                f"a checkpoint of a model with {self.n_inputs} inputs and {self.n_outputs} readouts",
                (state["n_inputs"], state["n_outputs"]),
            )
        expected = self._learner_part()[0].initial_weights() if self.weights is None else self.weights
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
        self._code = None
        self.state_code = tuple(np.asarray(a, dtype=float).copy() for a in state["state_code"])
        self.delta_scaler = Standardizer(*map(np.asarray, state["delta_scaler"]))
        self.reward_scaler = Standardizer(*map(np.asarray, state["reward_scaler"]))
        self.fitted = bool(state.get("fitted", True))
        self.training_log = [dict(r) for r in state.get("training_log", [])]


class _SpikeRecorder(Part):
    """A monitor of the learner's recurrent spikes, as a part of the loop (active for predictions
    with ``record_spikes`` only)."""

    def __init__(self, learner):
        from brian2 import SpikeMonitor

        self.prefix, self.period, self.n_copies = f"{learner.prefix}_spike_recorder", learner.period, 1
        self.monitor = SpikeMonitor(learner.eprop.recurrent, record=True, name=f"{learner.prefix}_spikes")
        self.objects = [self.monitor]


def _standalone() -> bool:
    from nmbrl_brian.devices import active_device_is_standalone

    return active_device_is_standalone()


def _ms():
    from brian2 import ms

    return ms
