"""Model-based RL: the spiking actor-critic learns in the dreams of a world model of the real environment.

One closed loop holds everything (:class:`~nmbrl_brian.loop.ClosedLoop`): the agent
part, a switch between the real environment (CartPole as Brian2 equations, or gymnasium
in runtime mode) and a dream (:class:`~nmbrl_brian.parts.dream.DreamPart`), and, for
the spiking world model, the model's learner. A training chunk of the trainer is one
*cycle* of phases (:data:`~nmbrl_brian.training.phases.MODEL_BASED`):

1. **Real**: act and learn on the real environment for the chunk's real steps (fresh
   episodes; every real transition joins :attr:`real_transitions`);
2. **LearnModel**: update the world model on all real data so far (the spiking model's
   learner part: supervised e-prop over many passes; the linear bound: least squares; the
   perfect bound: nothing);
3. **Dream**: the agent acts and learns for ``model_based.dream_steps`` steps in
   episodes of at most ``model_based.horizon`` steps that start from real states.

The trainer then evaluates greedily on the real environment (never learning from it).
Real steps and dreamed steps are counted apart (``env_steps`` and ``dream_steps`` in
``metrics.csv``).

**Concurrent mode** (``model_based.parallel``, ``nmbrl run --parallel``): the same phases over
two processes (:mod:`nmbrl_brian.training.dreamer`): a dreamer process dreams in the latest
published model without pause and publishes the agent's weights after every ``dream_steps``
dreamed steps; this process acts on the real environment with the latest published weights
(exploring, not learning), learns the model from all real data and publishes it.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from nmbrl_brian.agents.config import ModelBasedConfig
from nmbrl_brian.agents.spiking_actor_critic import SpikingActorCritic
from nmbrl_brian.equations.world_model import WorldModelConfig
from nmbrl_brian.errors import ConfigError
from nmbrl_brian.loop import ClosedLoop
from nmbrl_brian.parts.dream import PERFECT_MODELS, DreamPart, LinearPredictor, perfect_predictor
from nmbrl_brian.parts.switch import EnvironmentSwitch
from nmbrl_brian.parts.world_model import SpikingPredictor, WorldModelLearnerPart
from nmbrl_brian.training import phases
from nmbrl_brian.world_models.fitting import fit_in_loop
from nmbrl_brian.world_models.snn_world_model import SNNWorldModel
from nmbrl_brian.world_models.termination import termination_fn_for


class ModelBasedSpikingAgent(SpikingActorCritic):
    """The spiking actor-critic of :class:`SpikingActorCritic`, learning in dreams between real phases.

    Parameters
    ----------
    observation_space, action_space, agent, encoding, network, seed, environment, env_id, periods_per_run, build_dir
        As for :class:`SpikingActorCritic`.
    model_based : ModelBasedConfig
        The cycle: the model, dreamed steps per cycle, the horizon.
    """

    name = "spiking_model_based"

    def __init__(
        self,
        observation_space,
        action_space,
        *,
        model_based: ModelBasedConfig,
        world_model: WorldModelConfig | None = None,
        workspace=None,
        run_config: dict | None = None,
        **kwargs: Any,
    ):
        self.world_model_config = world_model if world_model is not None else WorldModelConfig()
        self.model_based = model_based
        self.termination = termination_fn_for(kwargs.get("env_id", "CartPole-v1"))
        if self.termination is None:
            raise ConfigError(
                "env_id", "an environment with a known termination rule for dreams", kwargs.get("env_id")
            )
        if self.world_model_config.reward == "given" and self.termination.reward_code() is None:
            raise ConfigError("world_model.reward", "'learned' (the task has no known reward rule)", "given")
        if model_based.model == "perfect" and kwargs.get("env_id", "CartPole-v1") not in PERFECT_MODELS:
            raise ConfigError(
                "model_based.model",
                "'spiking' or 'linear' ('perfect' is a task's own equations: "
                + ", ".join(PERFECT_MODELS)
                + ")",
                model_based.model,
            )
        self.dream_steps = 0
        #: Dreamed training steps that ended an episode by the dream's termination (the task's rule
        #: or the learned readout): 0 means the dreams never showed the task's end.
        self.dream_terminations = 0
        self.cycles = 0
        #: Real transitions the world model was last fitted on, and its passes so far.
        self.model_fitted_on = self.model_passes = 0
        #: Mean return of every dreamed evaluation so far (``model_based.dream_chunk`` > 0).
        self.dreamed_returns: list[float] = []
        self.real_env_id = kwargs.get("env_id", "CartPole-v1")
        self.workspace = Path(workspace) if workspace is not None else None
        self.run_config = run_config
        self.agent_version = self.model_version = self.dreamed_model_version = 0
        self._dreamer_link = None
        super().__init__(observation_space, action_space, **kwargs)

    def _build_loop(self, build_dir) -> ClosedLoop:
        mb, obs_dim, n_actions = self.model_based, self.part.obs_dim, self.n_actions
        periods = self.part.uniforms.values.shape[0]
        others = []
        self.world_model = self.learner = None
        if mb.model == "linear":
            self.predictor = LinearPredictor(obs_dim, n_actions)
        elif mb.model == "perfect":
            self.predictor = perfect_predictor(self.real_env_id)
        else:
            self.world_model = SNNWorldModel.for_env(
                self.real_env_id, config=self.world_model_config, name_prefix="wm"
            )
            self.learner = WorldModelLearnerPart(
                self.world_model,
                period=self.part.period,
                periods_per_run=periods,
                record_outputs=mb.model_patience > 0,  # the stopping rule reads its predictions
            )
            self.predictor = SpikingPredictor(self.world_model)
            others.append(self.learner)
        self.dream = DreamPart(
            obs_dim,
            n_actions,
            self.predictor,
            period=self.part.period,
            horizon=mb.horizon,
            # world_model.termination = "learned": the model's termination readout ends dreamed episodes
            termination=None if self.predictor.learns_termination else self.termination,
            # the task's reward rule rewards dreamed steps of its own equations, or of the spiking
            # world model with world_model.reward = "given"
            reward=self.termination.reward_code()
            if mb.model == "perfect"
            or (self.world_model is not None and self.world_model_config.reward == "given")
            else None,
            # agent.reward_shaping > 0: k (gamma Phi(s') - Phi(s)) is added to each dreamed reward
            shaping=(
                self.termination.potential_code(),
                self.agent_config.reward_shaping,
                self.agent_config.gamma,
            )
            if self.agent_config.reward_shaping > 0
            else None,
            starts_per_run=periods // 2 + 2,
            seed=self.part.seeds[0],
            bounds=self.obs_bounds,
        )
        self.switch = EnvironmentSwitch(self.env_part, self.dream)
        return ClosedLoop(self.part, self.switch, others=tuple(others), name=self.name, build_dir=build_dir)

    def real_values(self) -> dict:
        return self.switch.select(dream=False)

    def real_parts(self):
        return [self.part, self.switch, self.env_part]

    @property
    def schedule(self) -> phases.Schedule:
        """The model-based cycle (:data:`~nmbrl_brian.training.phases.MODEL_BASED`, or its concurrent form)."""
        return phases.MODEL_BASED_CONCURRENT if self.model_based.parallel else phases.MODEL_BASED

    # ----------------------------------------------------------------------------------
    def update_model(self) -> dict:
        """Fit the dream's model to all real transitions so far; return the values that load it."""
        if self.model_based.model == "spiking":
            self._learn_world_model(self.real_transitions)
        return self.model_values()

    def model_values(self) -> dict:
        """Values that load the dream's current model (the linear one is fitted to the real data so far)."""
        if self.model_based.model == "linear":
            from nmbrl_brian.world_models import LinearWorldModel

            model = LinearWorldModel.for_env(self.real_env_id).fit(self.real_transitions)
            return self.predictor.values_from(model, self.dream)
        if self.model_based.model == "spiking":
            return self.predictor.values_from(self.world_model)
        return {}

    def _learn_world_model(self, data) -> None:
        """Fit the world model on all real data so far (:func:`~nmbrl_brian.world_models.fitting.fit_in_loop`)."""
        run = functools.partial(self._measured_run, phase="world_model")  # run(periods, values, active)
        mb = self.model_based
        rows = fit_in_loop(
            self.loop,
            self.learner,
            self.world_model,
            data,
            cycle=self.cycles,
            run=run,
            newest=len(data) - self.model_fitted_on,
            patience=mb.model_patience,
            tolerance=mb.model_tolerance,
        )
        self.model_fitted_on = len(data)
        self.model_passes += len(rows)

    def dream_for(
        self, steps: int, model_values: dict, *, explore: bool = True, start_states: np.ndarray | None = None
    ) -> None:
        """Act and learn for ``steps`` dreamed steps from real start states (default: the real data);
        the :func:`~nmbrl_brian.training.phases.dream` phase."""
        phases.dream(self, steps, model_values, explore=explore, start_states=start_states)

    def networks(self, phase: str) -> list[tuple[Any, int, int]]:
        if phase == "world_model":
            learner = self.learner
            learned = sum(len(s) for s in learner.eprop.learning_synapses) + len(learner.eprop.syn_out)
            learned += len(learner.eprop.readout) + (len(learner.direct.synapses) if learner.direct else 0)
            return [(learner.eprop, self.world_model.config.network.steps_per_env_step, learned)]
        if phase == "dream_evaluation":  # the dream's networks (learning off: metered as inference)
            return self.networks("dream")
        networks = super().networks(phase)
        if phase == "dream" and self.world_model is not None:
            networks.append((self.predictor.eprop, self.world_model.config.network.steps_per_env_step, 0))
        return networks

    def progress(self) -> dict[str, Any]:
        row = {"dream_steps": self.dream_steps, "real_transitions": len(self.real_transitions)}
        if not self.model_based.parallel:  # (the dreamer process counts its own)
            row["dream_terminations"] = self.dream_terminations
        if self.world_model is not None:
            row["model_passes"] = self.model_passes
        if self.model_based.dream_chunk > 0 and not self.model_based.parallel:
            row.update(
                dreamed_evaluations=len(self.dreamed_returns),
                dreamed_return=self.dreamed_returns[-1] if self.dreamed_returns else float("nan"),
            )
        if self.model_based.parallel:
            row.update(agent_version=self.agent_version, dreamed_model_version=self.dreamed_model_version)
        return row

    # ----------------------------------------------------------------------------------
    # Concurrent mode
    def dreamer_link(self):
        """This process's side of concurrent mode (:class:`~nmbrl_brian.training.dreamer.DreamerLink`)."""
        if self._dreamer_link is None:
            from nmbrl_brian.training.dreamer import DreamerLink

            self._dreamer_link = DreamerLink(self)
        return self._dreamer_link

    @property
    def snapshots(self) -> Path:
        """Where the two processes exchange snapshots (``<run folder>/snapshots``)."""
        return self.dreamer_link().snapshots

    def close(self) -> None:
        """Stop the dreamer (concurrent mode), waiting for its current chunk."""
        if self._dreamer_link is not None:
            self._dreamer_link.close()

    def state_dict(self) -> dict[str, Any]:
        state = {**super().state_dict(), "dream_steps": self.dream_steps, "cycles": self.cycles}
        state["dream_terminations"] = self.dream_terminations
        state["dreamed_returns"] = np.asarray(self.dreamed_returns, dtype=float)
        state["model_fits"] = [self.model_fitted_on, self.model_passes]
        state["versions"] = [self.agent_version, self.model_version, self.dreamed_model_version]
        if self.world_model is not None:
            state["world_model"] = self.world_model.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.dream_steps, self.cycles = int(state["dream_steps"]), int(state["cycles"])
        self.dream_terminations = int(state.get("dream_terminations", 0))
        self.dreamed_returns = [float(r) for r in state.get("dreamed_returns", [])]
        self.model_fitted_on, self.model_passes = (int(v) for v in state.get("model_fits", [0, 0]))
        self.agent_version, self.model_version, self.dreamed_model_version = (
            int(v) for v in state["versions"]
        )
        if self.world_model is not None:
            self.world_model.load_state_dict(state["world_model"])
