"""Model-based RL: the spiking actor-critic learns in the dreams of a world model of the real environment.

One closed loop holds everything (:class:`~nmbrl_brian.loop.ClosedLoop`): the agent
part, a switch between the real environment (CartPole as Brian2 equations, or gymnasium
in runtime mode) and a dream (:class:`~nmbrl_brian.parts.dream.DreamPart`), and, for
the spiking world model, the model's learner. A training chunk of the trainer
(:meth:`ModelBasedSpikingAgent.interact`) is one *cycle*:

1. **act and learn on the real environment** for the chunk's real steps (fresh
   episodes; every real transition joins :attr:`real_transitions`);
2. **update the world model on all real data so far** (the spiking model's learner
   part: supervised e-prop over many passes; the linear bound: least squares; the
   perfect bound: nothing);
3. **dream**: the agent acts and learns for ``model_based.dream_steps`` steps in
   episodes of at most ``model_based.horizon`` steps that start from real states.

The trainer then evaluates greedily on the real environment (never learning from it).
Real steps and dreamed steps are counted apart (``env_steps`` and ``dream_steps`` in
``metrics.csv``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nmbrl_brian.agents.config import EQUATION_ENVIRONMENTS, ModelBasedConfig
from nmbrl_brian.agents.spiking_actor_critic import SpikingActorCritic
from nmbrl_brian.errors import ConfigError
from nmbrl_brian.loop import ClosedLoop
from nmbrl_brian.parts.dream import DreamPart, LinearPredictor, PerfectCartPole
from nmbrl_brian.parts.switch import EnvironmentSwitch
from nmbrl_brian.parts.world_model import SpikingPredictor, WorldModelLearnerPart
from nmbrl_brian.world_models.snn_world_model import SNNWorldModel, WorldModelConfig
from nmbrl_brian.training.env_loop import EnvLoop
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
        **kwargs: Any,
    ):
        self.world_model_config = world_model if world_model is not None else WorldModelConfig()
        if kwargs.get("environment", "equations") != "equations":
            raise ConfigError(
                "environment",
                "'equations' or 'auto' for the model-based agent (CartPole)",
                kwargs.get("environment"),
            )
        self.model_based = model_based
        self.termination = termination_fn_for(kwargs.get("env_id", "CartPole-v1"))
        if self.termination is None:
            raise ConfigError(
                "env_id", "an environment with a known termination rule for dreams", kwargs.get("env_id")
            )
        if (
            model_based.model == "perfect"
            and kwargs.get("env_id", "CartPole-v1") not in EQUATION_ENVIRONMENTS
        ):
            raise ConfigError(
                "model_based.model",
                "'spiking' or 'linear' ('perfect' is the CartPole equations)",
                model_based.model,
            )
        self.dream_steps = 0
        self.cycles = 0
        self.real_env_id = kwargs.get("env_id", "CartPole-v1")
        super().__init__(observation_space, action_space, **kwargs)

    # ----------------------------------------------------------------------------------
    def _build_loop(self, build_dir) -> ClosedLoop:
        mb, obs_dim, n_actions = self.model_based, self.part.obs_dim, self.n_actions
        periods = self.part.uniforms.values.shape[0]
        others = []
        self.world_model = self.learner = None
        if mb.model == "linear":
            self.predictor = LinearPredictor(obs_dim, n_actions)
        elif mb.model == "perfect":
            self.predictor = PerfectCartPole()
        else:
            self.world_model = SNNWorldModel.for_env(
                self.real_env_id, config=self.world_model_config, name_prefix="wm"
            )
            self.learner = WorldModelLearnerPart(
                self.world_model, period=self.part.period, periods_per_run=periods
            )
            self.predictor = SpikingPredictor(self.world_model)
            others.append(self.learner)
        self.dream = DreamPart(
            obs_dim,
            n_actions,
            self.predictor,
            period=self.part.period,
            horizon=mb.horizon,
            termination=self.termination,
            starts_per_run=periods // 2 + 2,
            seed=self.part.seeds[0],
        )
        self.switch = EnvironmentSwitch(self.env_part, self.dream)
        return ClosedLoop(self.part, self.switch, others=tuple(others), name=self.name, build_dir=build_dir)

    def _real_values(self) -> dict:
        return self.switch.select(dream=False)

    def _real_parts(self):
        return [self.part, self.switch, self.env_part]

    # ----------------------------------------------------------------------------------
    def _train(self, loop: EnvLoop, max_steps: int, *, explore: bool) -> None:
        """One cycle: ``max_steps`` real steps (fresh episodes), a model update, then dreaming."""
        self._training_loop = loop
        self._attach(loop)
        target = loop.env_steps + max_steps
        values = {
            **self.part.mode(learning=True, explore=explore, step_budget=max_steps),
            **self.part.fresh_episode(),
            **self.env_part.new_episode(),
            **self._real_values(),
        }
        loop.abandon_episode()  # a cycle's real phase starts a new episode (with the next seed)
        while loop.env_steps < target:
            periods = self.loop.periods_per_run if self.loop.standalone else target - loop.env_steps
            record = self._run_real(periods, values)
            values = {}
            self._account(loop, record)
            self._keep(record)
            self._check_sampler(loop.env_steps)
        model_values = self.update_model()
        self.dream_for(self.model_based.dream_steps, model_values, explore=explore)
        self.cycles += 1

    def update_model(self) -> dict:
        """Fit the dream's model to all real transitions so far; return the values that load it."""
        data = self.real_transitions
        if self.model_based.model == "linear":
            from nmbrl_brian.world_models import LinearWorldModel

            model = LinearWorldModel.for_env(self.real_env_id).fit(data)
            return self.predictor.values_from(model, self.dream)
        if self.model_based.model == "spiking":
            self._learn_world_model(data)
            return self.predictor.values_from(self.world_model)
        return {}

    def _learn_world_model(self, data) -> None:
        """Supervised e-prop over all real data so far: ``epochs_for(len(data))`` passes, each in a fresh order.

        The code (encoding range, whitening, target scalers) is fitted to the first data
        and kept; the weights carry on from the last cycle; within a cycle the step sizes
        decay from their first value to ``final_learning_rate_fraction`` of it.
        """
        model, learner = self.world_model, self.learner
        model._prepare(data)
        passes = model.config.epochs_for(len(data))
        rows = learner.tables_["inputs"].values.shape[0]
        for p in range(passes):
            order = np.random.default_rng([model.config.seed, self.cycles, p]).permutation(len(data))
            sub = data.subset(order)
            inputs = model.encode(sub.obs, sub.action)
            targets, weights = model.targets(sub)
            rates = model.learning_rates(epoch=p, n_transitions=len(data))
            for start in range(0, len(sub), rows):
                stop = min(start + rows, len(sub))
                learner.set_rows(inputs[start:stop], targets[start:stop], weights[start:stop])
                periods = rows if self.loop.standalone else stop - start
                self._measured_run(periods, learner.learning_rate_values(rates), [learner], "world_model")
        model.weights = {
            key: np.array(self.loop.value(obj, var)) for key, (obj, var) in learner.weight_variables().items()
        }

    def dream_for(self, steps: int, model_values: dict, *, explore: bool = True) -> None:
        """Act and learn for ``steps`` dreamed steps, from real start states."""
        if steps <= 0:
            return
        data = self.real_transitions
        recent = data.obs if not self.model_based.start_states else data.obs[-self.model_based.start_states :]
        self.dream.set_start_states(recent)
        values = {
            **model_values,
            **self.part.mode(learning=True, explore=explore, step_budget=steps),
            **self.part.fresh_episode(),
            **self.dream.new_episode(),
            **self.switch.select(dream=True),
        }
        done = 0
        active = [self.part, self.switch, self.dream]
        while done < steps:
            periods = self.loop.periods_per_run if self.loop.standalone else steps - done
            record = self._measured_run(periods, values, active, "dream")[self.dream.prefix]
            values = {}
            done += record.steps
            self._check_sampler(self._training_loop.env_steps if self._training_loop else 0)
        self.dream_steps += done

    def _networks(self, phase: str) -> list[tuple[Any, int, int]]:
        if phase == "world_model":
            learner = self.learner
            learned = sum(len(s) for s in learner.eprop.learning_synapses) + len(learner.eprop.syn_out)
            learned += len(learner.eprop.readout) + (len(learner.direct.synapses) if learner.direct else 0)
            return [(learner.eprop, self.world_model.config.network.steps_per_env_step, learned)]
        networks = super()._networks(phase)
        if phase == "dream" and self.world_model is not None:
            networks.append((self.predictor.eprop, self.world_model.config.network.steps_per_env_step, 0))
        return networks

    def progress(self) -> dict[str, Any]:
        return {"dream_steps": self.dream_steps, "real_transitions": len(self.real_transitions)}

    def state_dict(self) -> dict[str, Any]:
        state = {**super().state_dict(), "dream_steps": self.dream_steps, "cycles": self.cycles}
        if self.world_model is not None:
            state["world_model"] = self.world_model.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.dream_steps, self.cycles = int(state["dream_steps"]), int(state["cycles"])
        if self.world_model is not None:
            self.world_model.load_state_dict(state["world_model"])
