"""The spiking actor-critic: a thin facade over a :class:`~nmbrl_brian.loop.ClosedLoop`.

The agent is the :class:`~nmbrl_brian.parts.agent.ActorCriticPart` (population code,
e-prop layer, actor-critic head, all Brian2 code); the environment is a part behind
the same ports:

``environment="gymnasium"`` (runtime only)
    the :class:`~nmbrl_brian.parts.gymnasium.GymnasiumPart` steps the ``EnvLoop``
    handed to :meth:`SpikingActorCritic.interact` from one network operation;
``environment="equations"`` (CartPole, any device)
    the :class:`~nmbrl_brian.parts.cartpole.CartPolePart`, whose episode ``k`` starts
    from gymnasium's ``reset(seed=loop.seed + k)``; the loop's counters and
    episode-end callbacks are fed from the network's monitors.

Training advances in runs of environment periods: in runtime mode exactly as many
steps as asked (a period takes at most one step, so the loop never overshoots), under
a standalone device in whole runs of ``periods_per_run`` periods (so a chunk may take
a few more steps than asked). Evaluation (``learn=False``) stores the loop's state
and restores it afterwards, so it never changes what training sees.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from nmbrl_brian.agents.base import BaseAgent
from nmbrl_brian.agents.config import EQUATION_ENVIRONMENTS, AgentConfig
from nmbrl_brian.encoding import EncodingConfig
from nmbrl_brian.energy import OperationCounts
from nmbrl_brian.envs import EnvironmentWrapper
from nmbrl_brian.envs.env_loop import EnvLoop
from nmbrl_brian.errors import ConfigError, check_finite
from nmbrl_brian.loop import ClosedLoop, RunRecord
from nmbrl_brian.parts import ActorCriticPart, CartPolePart, GymnasiumPart
from nmbrl_brian.snn.config import SpikingNetworkConfig
from nmbrl_brian.snn.eprop_network import activity_marks, counts_between
from nmbrl_brian.world_models.dataset import COLUMNS as TRANSITION_COLUMNS
from nmbrl_brian.world_models.dataset import TransitionDataset

#: Environment parts the facade can build.
ENVIRONMENT_PARTS = ("gymnasium", "equations")
#: Periods per runtime run during an evaluation (runtime runs need not fill a table).
EVALUATION_RUN_PERIODS = 250


class SpikingActorCritic(BaseAgent):
    """A spiking actor-critic trained online with reward-based e-prop, inside a closed loop.

    Parameters
    ----------
    observation_space, action_space : gymnasium spaces
        1-D Box observations and Discrete actions.
    agent : AgentConfig
        Discount, trace decay and step sizes.
    encoding : EncodingConfig
        Population coding of observations (``kind="population"``).
    network : SpikingNetworkConfig
        Sizes, time constants, connectivity, input mode and hidden learning.
    seed : int
        Seeds connectivity, initial weights and the action-sampling stream.
    environment : str
        ``"gymnasium"`` or ``"equations"`` (see the module docstring).
    env_id : str
        The environment (for ``"equations"``: its Brian2 version).
    periods_per_run : int
        Environment periods per standalone run (and at most per runtime run).
    build_dir : str or Path, optional
        Standalone project folder.
    """

    name = "spiking_actor_critic"

    def __init__(
        self,
        observation_space,
        action_space,
        *,
        agent: AgentConfig,
        encoding: EncodingConfig,
        network: SpikingNetworkConfig,
        seed: int,
        environment: str = "gymnasium",
        env_id: str = "CartPole-v1",
        periods_per_run: int = 2000,
        build_dir=None,
    ):
        if encoding.kind != "population":
            raise ConfigError("encoding.kind", "'population' for the spiking agent", encoding.kind)
        if environment not in ENVIRONMENT_PARTS:
            raise ConfigError("environment", "one of " + ", ".join(map(repr, ENVIRONMENT_PARTS)), environment)
        if environment == "equations" and env_id not in EQUATION_ENVIRONMENTS:
            raise ConfigError(
                "environment",
                "'gymnasium' for " + env_id + " (only CartPole is written as Brian2 equations)",
                environment,
            )
        self.agent_config, self.encoding_config, self.network_config = agent, encoding, network
        self.environment, self.env_id = environment, env_id
        self.n_actions = int(action_space.n)
        obs_dim = int(observation_space.shape[0])
        self.part = ActorCriticPart(
            obs_dim,
            self.n_actions,
            agent=agent,
            encoding=encoding,
            network=network,
            seeds=[seed],
            periods_per_run=periods_per_run,
        )
        period = self.part.period
        if environment == "gymnasium":
            self.env_part = GymnasiumPart(obs_dim, self.n_actions, period=period)
        else:
            self.env_part = CartPolePart(
                period=period, seeds=[0], resets_per_run=periods_per_run // 2 + 2, env_id=env_id
            )
        self.loop = self._build_loop(build_dir)
        self._training_loop: EnvLoop | None = None
        self.real_transitions = TransitionDataset(obs_dim, meta={"env_id": env_id, "source": "training"})
        self._episode_position = [0, 0]  # episode id and time step of the next real transition
        self._phase_counts: dict[str, OperationCounts] = {}
        self._phase_traces: dict[str, dict[str, int]] = {}
        self._phase_steps: dict[str, int] = {}
        self._phase_periods: dict[str, int] = {}

    def _build_loop(self, build_dir) -> ClosedLoop:
        """The closed loop of this agent (subclasses add parts: a dream, a world model)."""
        return ClosedLoop(self.part, self.env_part, name=self.name, build_dir=build_dir)

    def _real_values(self) -> dict:
        """Values that wire the agent to the real environment (a switch in subclasses)."""
        return {}

    def _run_real(self, periods: int, values: dict, phase: str = "real") -> RunRecord:
        """Run the loop with the agent on the real environment; its record."""
        return self._measured_run(periods, values, self._real_parts(), phase)[self.env_part.prefix]

    def _networks(self, phase: str) -> list[tuple[Any, int, int]]:
        """``(e-prop network, steps per period, weights written per period)`` of what computes in ``phase``."""
        learned = sum(len(s) for s in self.part.td_synapses) + len(self.part.eprop.readout)
        return [
            (self.part.eprop, self.network_config.steps_per_env_step, 0 if phase == "evaluation" else learned)
        ]

    def _measured_run(self, periods: int, values: dict, active, phase: str) -> dict[str, RunRecord]:
        """``loop.run`` that adds the operations of the phase's networks to :attr:`_phase_counts`."""
        networks = self._networks(phase)
        before = [activity_marks(e, self.loop.value, spikes=not self.loop.standalone) for e, _, _ in networks]
        records = self.loop.run(periods, values, active=active)
        ran = next(iter(records.values())).periods
        steps = sum(r.steps for r in records.values())
        self._phase_steps[phase] = self._phase_steps.get(phase, 0) + (
            steps if phase != "world_model" else ran
        )
        self._phase_periods[phase] = self._phase_periods.get(phase, 0) + ran
        for (eprop, steps_per_period, learned), mark in zip(networks, before):
            after = activity_marks(eprop, self.loop.value)
            counts, traces = counts_between(eprop, mark, after, ran * steps_per_period, learned * ran)
            if phase == "evaluation":  # inference: a chip computes no eligibility traces with learning off
                counts = dataclasses.replace(counts, synapse_updates=0, weight_updates=0)
            self._phase_counts[phase] = self._phase_counts.get(phase, OperationCounts()) + counts
            old = self._phase_traces.get(phase, {"performed": 0, "skipped": 0, "total": 0})
            self._phase_traces[phase] = {k: old[k] + traces[k] for k in old}
        return records

    def _real_parts(self):
        """The parts that compute while the agent acts on the real environment (runtime mode)."""
        return None

    # ----------------------------------------------------------------------------------
    # Acting and learning
    def interact(
        self,
        loop: EnvLoop,
        *,
        max_steps: int | None = None,
        max_episodes: int | None = None,
        explore: bool = True,
        learn: bool = True,
    ) -> None:
        """Run the closed loop on ``loop``'s environment (see the module docstring).

        Training (``learn=True``) continues the one training episode stream of the
        agent; ``max_steps`` is required then. Evaluation (``learn=False``) plays
        ``max_episodes`` fresh episodes from ``loop``'s seed and leaves every training
        state untouched.
        """
        if learn:
            if max_steps is None:
                raise ValueError("interact: give max_steps when learning")
            self._train(loop, int(max_steps), explore=explore)
        else:
            if max_episodes is None:
                raise ValueError("interact: give max_episodes when not learning (evaluation)")
            self._evaluate(loop, int(max_episodes), explore=explore)

    def _attach(self, loop: EnvLoop) -> None:
        if isinstance(self.env_part, GymnasiumPart):
            self.env_part.bind([loop])
        else:
            self.env_part.set_seeds([loop.seed])
            loop.external = True  # the loop only counts; the environment's state is in the network

    def _train(self, loop: EnvLoop, max_steps: int, *, explore: bool) -> None:
        values = self.part.mode(learning=True, explore=explore)
        self._training_loop = loop
        self._attach(loop)
        target = loop.env_steps + max_steps
        while loop.env_steps < target:
            remaining = target - loop.env_steps
            periods = remaining if not self.loop.standalone else self.loop.periods_per_run
            record = self._run_real(periods, values)
            values = {}
            self._account(loop, record)
            self._keep(record)
            self._check_sampler(loop.env_steps)

    def _evaluate(self, loop: EnvLoop, episodes: int, *, explore: bool) -> None:
        self.loop.store("before_evaluation")
        self._attach(loop)
        values = {
            **self.part.mode(learning=False, explore=explore, episode_budget=episodes),
            **self.part.fresh_episode(),
            **self.env_part.restart(),
            **self._real_values(),
        }
        done = 0
        try:
            while done < episodes:
                periods = self.loop.periods_per_run if self.loop.standalone else EVALUATION_RUN_PERIODS
                record = self._run_real(periods, values, phase="evaluation")
                values = {}
                self._account(loop, record)
                done += len(record.episode_return)
        finally:
            self.loop.restore("before_evaluation")
            if self._training_loop is not None:
                self._attach(self._training_loop)

    def _account(self, loop: EnvLoop, record: RunRecord) -> None:
        """Feed the loop's counters from the monitors (the gymnasium part stepped the loop itself)."""
        if isinstance(self.env_part, GymnasiumPart):
            return
        for reward, terminated, truncated in zip(record.reward, record.terminated, record.truncated):
            loop.record(float(reward), bool(terminated), bool(truncated))

    def _check_sampler(self, env_step: int) -> None:
        """Stop on the first non-finite readout or TD error (the in-network sampler would act on NaN)."""
        head = self.part.head
        check_finite("readouts", self.loop.value(self.part.eprop.readout, "y"), env_step)
        check_finite("td_error", self.loop.value(head, "delta"), env_step)

    def finite_values(self) -> dict[str, Any]:
        """Weights, TD(lambda) traces, readouts and the last TD error (checked at evaluations and checkpoints)."""
        traces = {syn.name: self.loop.value(syn, "grad") for syn in self.part.td_synapses}
        return {
            **self.weights(),
            "traces": traces,
            "readouts": self.loop.value(self.part.eprop.readout, "y"),
            "td_error": self.loop.value(self.part.head, "delta"),
        }

    def _keep(self, record: RunRecord) -> None:
        """Append a training run's real transitions to :attr:`real_transitions` (the stream a world model learns from)."""
        n = record.steps
        if n == 0:
            return
        ends = record.terminated | record.truncated
        episode, timestep = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
        current, t = self._episode_position
        for k in range(n):
            episode[k], timestep[k] = current, t
            current, t = (current + 1, 0) if ends[k] else (current, t + 1)
        self._episode_position = [current, t]
        self.real_transitions.extend(
            obs=record.obs,
            action=record.action,
            reward=record.reward,
            next_obs=record.next_obs,
            terminated=record.terminated,
            truncated=record.truncated,
            episode=episode,
            timestep=timestep,
        )

    def act(self, obs: np.ndarray, *, explore: bool = True) -> int:
        """Choose an action for one observation outside the episode stream (slow: one run).

        The observation is shown to a cleared network for one run (one period in
        runtime mode); the loop's state is restored afterwards and nothing is learned.
        """
        part, env = self.part, self.env_part
        self.loop.store("before_act")
        values = {
            **self._real_values(),
            **part.mode(learning=False, explore=False, episode_budget=0),
            (env.env, "needs_reset"): np.ones(env.n_copies, dtype=np.int32),
            (env.env, "episodes_done"): np.zeros(env.n_copies, dtype=np.int32),
            **env.present(np.asarray(obs, dtype=float)[None, :]),
        }
        try:
            self._run_real(1, values, phase="evaluation")
            y = self.loop.value(part.eprop.readout, "y")[: self.n_actions]
        finally:
            self.loop.restore("before_act")
        if not explore:
            return int(np.argmax(y))
        p = np.exp(y - y.max())
        return int(np.random.default_rng().choice(self.n_actions, p=p / p.sum()))

    def record_episode(
        self, seed: int, *, max_steps: int = 200, dream: bool = False
    ) -> dict[str, np.ndarray]:
        """One greedy episode with every spike, readout and port recorded (runtime mode).

        The loop's state is stored before and restored after, so training never sees it.

        Parameters
        ----------
        seed : int
            Reset seed of the real episode (a dream starts from the first real start state).
        max_steps : int
            The episode is cut after this many steps.
        dream : bool
            Record a dreamed episode (model-based agents) instead of a real one.

        Returns
        -------
        dict
            ``input_t``/``input_i`` and ``recurrent_t``/``recurrent_i`` (spike times in ms and
            neuron indices), ``readout_t`` (ms) and ``readout_y`` (readouts x steps), ``period_t``
            (ms), ``obs`` (periods x obs_dim), ``action``, ``decide``, ``reward`` and ``stepped``
            (per period), and the readout names.
        """
        from brian2 import SpikeMonitor, StateMonitor, ms

        if self.loop.standalone:
            raise ValueError("record_episode: runtime mode only (load the run's state into a runtime agent)")
        env = self.dream if dream else self.env_part
        e, head, part = self.part.eprop, self.part.head, self.part
        monitors = [
            SpikeMonitor(e.inputs, name="record_input_spikes"),
            SpikeMonitor(e.recurrent, name="record_recurrent_spikes"),
            StateMonitor(e.readout, "y", record=True, when="end", name="record_readouts"),
            StateMonitor(env.obs_port, "obs", record=True, clock=part.clock, when="end", name="record_obs"),
            StateMonitor(
                head, ["action", "decide"], record=True, clock=part.clock, when="end", name="record_head"
            ),
            StateMonitor(
                env.env, ["reward", "stepped"], record=True, clock=part.clock, when="end", name="record_env"
            ),
        ]
        self.loop.store("before_record")
        active = list(self.loop.parts)
        values = {
            **self.part.mode(learning=False, explore=False, episode_budget=1, step_budget=max_steps),
            **self.part.fresh_episode(),
            **env.restart(),
        }
        if dream:
            values.update(self.switch.select(dream=True))
            values.update(self.model_values())
            self.dream.set_start_states(self.real_transitions.obs[:1])
        else:
            values.update(self._real_values())
            loop = EnvLoop(EnvironmentWrapper(self.env_id), seed=seed)
            self._attach(loop)
        start_t = float(self.loop.network.t / ms)
        self.loop.network.add(*monitors)
        try:
            self.loop.run(max_steps + 2, values, active=active)
            spikes_in, spikes_rec, readouts, obs, heads, envs = monitors
            out = {
                "input_t": np.asarray(spikes_in.t / ms) - start_t,
                "input_i": np.asarray(spikes_in.i),
                "recurrent_t": np.asarray(spikes_rec.t / ms) - start_t,
                "recurrent_i": np.asarray(spikes_rec.i),
                "readout_t": np.asarray(readouts.t / ms) - start_t,
                "readout_y": np.asarray(readouts.y),
                "period_t": np.asarray(obs.t / ms) - start_t,
                "obs": np.asarray(obs.obs).T,
                "action": np.asarray(heads.action[0]),
                "decide": np.asarray(heads.decide[0]),
                "reward": np.asarray(envs.reward[0]),
                "stepped": np.asarray(envs.stepped[0]),
                "readout_names": [f"logit {k}" for k in range(self.n_actions)] + ["value"],
                "n_inputs": len(e.inputs),
                "n_recurrent": len(e.recurrent),
            }
        finally:
            self.loop.network.remove(*monitors)
            self.loop.restore("before_record")
            if self._training_loop is not None:
                self._attach(self._training_loop)
        return out

    def observe(self, obs, action, reward, next_obs, terminated, truncated) -> None:
        """Not used: this agent learns inside its Brian2 network while :meth:`interact` runs."""
        raise NotImplementedError(
            "SpikingActorCritic learns inside its Brian2 network; train it with interact(), not observe()"
        )

    # ----------------------------------------------------------------------------------
    # Checkpoints and accounting
    def state_dict(self) -> dict[str, Any]:
        """Every state variable of the closed loop (arrays) and the operation counts so far."""
        has_state = not self.loop.standalone or self.loop._state is not None
        data = self.real_transitions
        return {
            "loop": self.loop.state() if has_state else None,
            "phase_counts": {k: v.as_dict() for k, v in self._phase_counts.items()},
            "phase_traces": {k: dict(v) for k, v in self._phase_traces.items()},
            "phase_steps": dict(self._phase_steps),
            "phase_periods": dict(self._phase_periods),
            "real_transitions": {name: np.array(getattr(data, name)) for name in TRANSITION_COLUMNS},
            "episode_position": list(self._episode_position),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["loop"] is not None:
            self.loop.load_state(state["loop"])
        self._phase_counts = {k: OperationCounts(**v) for k, v in state["phase_counts"].items()}
        self._phase_traces = {k: {n: int(c) for n, c in v.items()} for k, v in state["phase_traces"].items()}
        self._phase_steps = {k: int(v) for k, v in state["phase_steps"].items()}
        self._phase_periods = {k: int(v) for k, v in state["phase_periods"].items()}
        self.real_transitions = TransitionDataset(
            self.real_transitions.obs_dim, meta=self.real_transitions.meta
        )
        self.real_transitions.extend(**{name: np.asarray(v) for name, v in state["real_transitions"].items()})
        self._episode_position = [int(v) for v in state["episode_position"]]

    def weights(self) -> dict[str, np.ndarray]:
        """Copies of the learned parameters: ``w_in``, ``w_rec``, ``w_out``, ``b_out``."""
        return {
            key: np.array(self.loop.value(obj, var))
            for key, (obj, var) in self.part.weight_variables().items()
        }

    def trace_update_counts(self) -> dict[str, int]:
        """Eligibility-trace updates performed and skipped while training (activity-sparse mode skips some)."""
        totals = {"performed": 0, "skipped": 0, "total": 0}
        for phase, traces in self._phase_traces.items():
            if phase != "evaluation":
                totals = {k: totals[k] + traces[k] for k in totals}
        return totals

    def operation_counts_by_phase(self) -> dict[str, OperationCounts]:
        """Operations per phase (``real``: acting and learning on the real environment,
        ``evaluation``; a model-based agent adds ``dream`` and ``world_model``), from the monitors
        and counters of every run, for :mod:`nmbrl_brian.energy`."""
        return dict(self._phase_counts)

    def steps_by_phase(self) -> dict[str, int]:
        """Environment steps taken in each phase (real, evaluation, dreamed; for ``world_model``:
        transitions presented)."""
        return dict(self._phase_steps)

    def periods_by_phase(self) -> dict[str, int]:
        """Environment periods simulated in each phase: one decision's worth of network time each
        (a run may hold after its budget, and episode ends take a period without a step)."""
        return dict(self._phase_periods)

    def operation_counts(self) -> OperationCounts:
        """Operations of training (every phase but evaluation)."""
        total = OperationCounts()
        for phase, counts in self._phase_counts.items():
            if phase != "evaluation":
                total = total + counts
        return total
