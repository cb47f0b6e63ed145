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

**Concurrent mode** (``model_based.parallel``, ``nmbrl run --parallel``): a dreamer process
(:func:`dreamer_main`) learns in dreams of the latest published model without pause, and
publishes the agent's weights after every ``dream_steps`` dreamed steps; this process
acts on the real environment with the latest published weights (exploring, not learning),
learns the model from all real data and publishes it. Snapshots are versioned and
written atomically (:mod:`nmbrl_brian.training.snapshots`); the dreamer logs which model
version each of its snapshots dreamed in (``dreamer_log.csv``). Ctrl-C or a crashed
dreamer stops both; the run's last checkpoint and the latest snapshots resume it.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any

import numpy as np

from nmbrl_brian.agents.config import EQUATION_ENVIRONMENTS, ModelBasedConfig
from nmbrl_brian.agents.spiking_actor_critic import SpikingActorCritic
from nmbrl_brian.envs.env_loop import EnvLoop
from nmbrl_brian.errors import ConfigError, WorkerError
from nmbrl_brian.loop import ClosedLoop
from nmbrl_brian.parts.dream import DreamPart, LinearPredictor, PerfectCartPole
from nmbrl_brian.parts.switch import EnvironmentSwitch
from nmbrl_brian.parts.world_model import SpikingPredictor, WorldModelLearnerPart
from nmbrl_brian.world_models.snn_world_model import SNNWorldModel, WorldModelConfig
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
        self.workspace = Path(workspace) if workspace is not None else None
        self.run_config = run_config
        self.agent_version = self.model_version = self.dreamed_model_version = 0
        self._dreamer = None
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
        """One cycle: ``max_steps`` real steps (fresh episodes), a model update, then dreaming
        (in concurrent mode: acting with the dreamer's latest weights, then publishing the model)."""
        self._training_loop = loop
        self._attach(loop)
        parallel = self.model_based.parallel
        target = loop.env_steps + max_steps
        values = {
            **(self._latest_dreamed_weights() if parallel else {}),
            **self.part.mode(learning=not parallel, explore=explore, step_budget=max_steps),
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
        if parallel:
            self._publish_model(model_values)
        else:
            self.dream_for(self.model_based.dream_steps, model_values, explore=explore)
        self.cycles += 1

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

    def dream_for(
        self, steps: int, model_values: dict, *, explore: bool = True, start_states: np.ndarray | None = None
    ) -> None:
        """Act and learn for ``steps`` dreamed steps from real start states (default: the real data)."""
        if steps <= 0:
            return
        if start_states is None:
            data = self.real_transitions
            keep = self.model_based.start_states
            start_states = data.obs if not keep else data.obs[-keep:]
        self.dream.set_start_states(start_states)
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
        if phase == "real" and self.model_based.parallel:  # acting only: the dreamer learns
            networks = [(e, steps, 0) for e, steps, _ in networks]
        if phase == "dream" and self.world_model is not None:
            networks.append((self.predictor.eprop, self.world_model.config.network.steps_per_env_step, 0))
        return networks

    def progress(self) -> dict[str, Any]:
        row = {"dream_steps": self.dream_steps, "real_transitions": len(self.real_transitions)}
        if self.model_based.parallel:
            row.update(agent_version=self.agent_version, dreamed_model_version=self.dreamed_model_version)
        return row

    # ----------------------------------------------------------------------------------
    # Concurrent mode
    @property
    def snapshots(self):
        """Where the two processes exchange snapshots (``<run folder>/snapshots``)."""
        if self.workspace is None:
            raise ValueError(
                "model_based.parallel: the agent needs a run folder (workspace) for its snapshots"
            )
        return self.workspace / "snapshots"

    def _publish_model(self, model_values: dict) -> None:
        """Publish the model (as loop values by state key) and the real start states."""
        from nmbrl_brian.training import snapshots

        tree = {
            "values": {self.loop._key(obj, var): np.asarray(v) for (obj, var), v in model_values.items()},
            "start_states": np.asarray(self.real_transitions.obs),
            "world_model": self.world_model.state_dict() if self.world_model is not None else None,
        }
        self.model_version = snapshots.publish(
            self.snapshots, "model", tree, meta={"real_steps": len(self.real_transitions)}
        )
        self._ensure_dreamer()

    def _latest_dreamed_weights(self) -> dict:
        """Values loading the dreamer's latest agent weights.

        After the first cycle this waits for a snapshot newer than the last one used (the
        dreamer has dreamed a chunk since), so real steps always come from a policy that
        learned in a model of the data so far; meanwhile the dreamer and this process's
        model learning run side by side.
        """
        from nmbrl_brian.training import snapshots

        while True:
            self._check_dreamer()
            snap = snapshots.latest(self.snapshots, "agent")
            if self.model_version == 0 or (snap is not None and snap[0] > self.agent_version):
                break
            time.sleep(0.1)
        if snap is None:
            return {}
        self.agent_version, tree = snap
        self.dream_steps = int(tree["dream_steps"])
        self.dreamed_model_version = int(tree["model_version"])
        return {self.part.weight_variables()[k]: np.asarray(v) for k, v in tree["weights"].items()}

    def _ensure_dreamer(self) -> None:
        if self._dreamer is not None:
            return
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        self._stop = context.Event()
        self._dreamer = context.Process(
            target=dreamer_main,
            args=(self.run_config, str(self.workspace), self._stop),
            name="nmbrl-dreamer",
            daemon=True,
        )
        self._dreamer.start()

    def _check_dreamer(self) -> None:
        if self._dreamer is not None and not self._dreamer.is_alive() and self._dreamer.exitcode != 0:
            code = self._dreamer.exitcode
            self._dreamer = None
            raise WorkerError(
                f"dreamer: the dreaming process stopped with exit code {code} (see {self.workspace / 'dreamer.log'})"
            )

    def close(self) -> None:
        """Stop the dreamer (concurrent mode), waiting for its current chunk."""
        if self._dreamer is None:
            return
        self._stop.set()
        self._dreamer.join(timeout=120)
        if self._dreamer.is_alive():  # pragma: no cover - a hung dreamer
            self._dreamer.terminate()
            self._dreamer.join()
        self._dreamer = None

    def state_dict(self) -> dict[str, Any]:
        state = {**super().state_dict(), "dream_steps": self.dream_steps, "cycles": self.cycles}
        state["versions"] = [self.agent_version, self.model_version, self.dreamed_model_version]
        if self.world_model is not None:
            state["world_model"] = self.world_model.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.dream_steps, self.cycles = int(state["dream_steps"]), int(state["cycles"])
        self.agent_version, self.model_version, self.dreamed_model_version = (
            int(v) for v in state["versions"]
        )
        if self.world_model is not None:
            self.world_model.load_state_dict(state["world_model"])


def dreamer_main(run_config: dict, workspace: str, stop) -> None:
    """The dreaming process of concurrent mode: dream in the latest model, publish the agent.

    It builds the same agent as the run (same config and seed, its own Brian2 build
    folder), starts from the latest agent snapshot if there is one (a resumed run), then
    until ``stop`` is set: loads the newest model snapshot, dreams ``dream_steps`` steps
    from its real start states, and publishes the agent's weights with the dreamed steps
    so far and the model version it dreamed in (a row of ``dreamer_log.csv`` each time).
    """
    import dataclasses
    import logging
    import sys

    from nmbrl_brian.config import RunConfig, from_dict
    from nmbrl_brian.devices import select_device
    from nmbrl_brian.envs import EnvironmentWrapper
    from nmbrl_brian.training import snapshots
    from nmbrl_brian.training.run import build_agent

    folder = Path(workspace)
    logging.basicConfig(filename=folder / "dreamer.log", level=logging.WARNING)
    sys.stderr = open(folder / "dreamer.log", "a")  # noqa: SIM115 - the process's own error stream
    config = from_dict(RunConfig, run_config)
    config = dataclasses.replace(config, model_based=dataclasses.replace(config.model_based, parallel=False))
    build_dir = folder / "brian_build_dreamer"
    select_device(config.device, build_dir=build_dir)
    env = EnvironmentWrapper(config.env_id)
    agent: ModelBasedSpikingAgent = build_agent(
        config, env.observation_space, env.action_space, build_dir=build_dir
    )
    box = folder / "snapshots"
    previous = snapshots.latest(box, "agent")
    values: dict = {}
    if previous is not None:
        agent.dream_steps = int(previous[1]["dream_steps"])
        values = {agent.part.weight_variables()[k]: np.asarray(v) for k, v in previous[1]["weights"].items()}
    seen, model_values = 0, None
    log_path = folder / "dreamer_log.csv"
    start = time.perf_counter()
    while not stop.is_set():
        snap = snapshots.latest(box, "model")
        if snap is None:
            time.sleep(0.2)
            continue
        if snap[0] != seen:
            seen, tree = snap
            model_values = {agent.loop.resolve(k): np.asarray(v) for k, v in tree["values"].items()}
            starts = np.asarray(tree["start_states"])
        agent.dream_for(agent.model_based.dream_steps, {**values, **model_values}, start_states=starts)
        values = {}
        weights = {
            k: np.array(agent.loop.value(obj, var)) for k, (obj, var) in agent.part.weight_variables().items()
        }
        version = snapshots.publish(
            box, "agent", {"weights": weights, "dream_steps": agent.dream_steps, "model_version": seen}
        )
        new_file = not log_path.exists()
        with open(log_path, "a", newline="") as f:
            writer = csv.writer(f)
            if new_file:
                writer.writerow(["agent_version", "model_version", "dream_steps", "wall_s"])
            writer.writerow([version, seen, agent.dream_steps, round(time.perf_counter() - start, 3)])
