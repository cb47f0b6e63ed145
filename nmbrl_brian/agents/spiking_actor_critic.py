"""The spiking actor-critic: a facade over a :class:`~nmbrl_brian.loop.ClosedLoop` and its phases.

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

Training and evaluation are phases (:mod:`nmbrl_brian.training.phases`; this agent's
schedule is ``[Real, Evaluate]``): in runtime mode training takes exactly as many steps
as asked (a period takes at most one step, so the loop never overshoots), under a
standalone device whole runs of ``periods_per_run`` periods (so a chunk may take a few
more steps than asked). Evaluation (``learn=False``) stores the loop's state and
restores it afterwards, so it never changes what training sees. The agent keeps its
real transitions (:class:`~nmbrl_brian.training.transition_log.TransitionLog`) and the
operations of every phase (:class:`~nmbrl_brian.training.energy_meter.EnergyMeter`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nmbrl_brian.agents.base import BaseAgent
from nmbrl_brian.agents.config import EQUATION_ENVIRONMENTS
from nmbrl_brian.energy import OperationCounts
from nmbrl_brian.envs.env_loop import EnvLoop
from nmbrl_brian.equations.actor_critic import AgentConfig
from nmbrl_brian.equations.eprop_neurons import SpikingNetworkConfig
from nmbrl_brian.equations.population_code import EncodingConfig
from nmbrl_brian.errors import ConfigError
from nmbrl_brian.loop import ClosedLoop, RunRecord
from nmbrl_brian.parts import ActorCriticPart, CartPolePart, GymnasiumPart
from nmbrl_brian.training import phases
from nmbrl_brian.training.energy_meter import EnergyMeter
from nmbrl_brian.training.transition_log import TransitionLog
from nmbrl_brian.world_models.dataset import TransitionDataset
from nmbrl_brian.world_models.termination import termination_fn_for

#: Environment parts the facade can build.
ENVIRONMENT_PARTS = ("gymnasium", "equations")
#: Periods per runtime run during an evaluation (runtime runs need not fill a table).
EVALUATION_RUN_PERIODS = phases.EVALUATION_RUN_PERIODS


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
    #: The phases of training and evaluation (:mod:`nmbrl_brian.training.phases`).
    schedule = phases.MODEL_FREE

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
        #: The observation space's bounds (a dream's states are kept within them).
        self.obs_bounds = (
            np.asarray(observation_space.low, dtype=float),
            np.asarray(observation_space.high, dtype=float),
        )
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
        shaping = None
        if agent.reward_shaping > 0:  # k (gamma Phi(s') - Phi(s)) on the rewards the agent learns from
            rule = termination_fn_for(env_id)
            if rule is None or rule.potential_code() is None:
                raise ConfigError(
                    "agent.reward_shaping", "0 (the task has no potential to shape by)", agent.reward_shaping
                )
            if environment != "gymnasium":
                raise ConfigError(
                    "agent.reward_shaping",
                    "0 with environment = 'equations' (shaping is the gymnasium part's)",
                    agent.reward_shaping,
                )
            shaping = (rule.potential, float(agent.reward_shaping), float(agent.gamma))
        if environment == "gymnasium":
            self.env_part = GymnasiumPart(obs_dim, self.n_actions, period=period, shaping=shaping)
        else:
            self.env_part = CartPolePart(
                period=period, seeds=[0], resets_per_run=periods_per_run // 2 + 2, env_id=env_id
            )
        self.loop = self._build_loop(build_dir)
        self.training_loop: EnvLoop | None = None
        """The training environment loop (the environment part is bound to it again after an evaluation)."""
        self.transitions = TransitionLog(obs_dim, meta={"env_id": env_id, "source": "training"})
        self.meter = EnergyMeter()

    def _build_loop(self, build_dir) -> ClosedLoop:
        """The closed loop of this agent (subclasses add parts: a dream, a world model)."""
        return ClosedLoop(self.part, self.env_part, name=self.name, build_dir=build_dir)

    def real_values(self) -> dict:
        """Values that wire the agent to the real environment (a switch in subclasses)."""
        return {}

    def real_parts(self):
        """The parts that compute while the agent acts on the real environment (None: all)."""

    def networks(self, phase: str) -> list[tuple[Any, int, int]]:
        """``(e-prop network, steps per period, weights written per period)`` of what computes in ``phase``."""
        return [
            (self.part.eprop, self.network_config.steps_per_env_step, self.part.weights_written_per_period)
        ]

    def _measured_run(
        self, periods: int, values: dict, active, phase: str, *, inference: bool = False
    ) -> dict[str, RunRecord]:
        """``loop.run`` metered under ``phase`` (:meth:`EnergyMeter.run <nmbrl_brian.training.energy_meter.EnergyMeter.run>`)."""
        return self.meter.run(
            self.loop, periods, values, active, phase, self.networks(phase), inference=inference
        )

    def attach(self, loop: EnvLoop) -> None:
        """Bind the environment part to ``loop`` (gymnasium) or to its seeds (equations)."""
        if isinstance(self.env_part, GymnasiumPart):
            self.env_part.bind([loop])
        else:
            self.env_part.set_seeds([loop.seed])
            loop.external = True  # the loop only counts; the environment's state is in the network

    @property
    def real_transitions(self) -> TransitionDataset:
        """Every real training transition so far (the stream a world model learns from)."""
        return self.transitions.data

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
        """Run the agent's phases on ``loop``'s environment (see the module docstring).

        Training (``learn=True``) runs the schedule's training phases once and continues the
        one training episode stream of the agent; ``max_steps`` is required then. Evaluation
        (``learn=False``) plays ``max_episodes`` fresh episodes from ``loop``'s seed and leaves
        every training state untouched.
        """
        if learn:
            if max_steps is None:
                raise ValueError("interact: give max_steps when learning")
            self.schedule.train(self, loop, int(max_steps), explore=explore)
        else:
            if max_episodes is None:
                raise ValueError("interact: give max_episodes when not learning (evaluation)")
            self.schedule.evaluate(self, loop, int(max_episodes), explore=explore)

    def finite_values(self) -> dict[str, Any]:
        """Weights, TD(lambda) traces, readouts and the last TD error (checked at evaluations and checkpoints)."""
        traces = {syn.name: self.loop.value(syn, "grad") for syn in self.part.td_synapses}
        return {
            **self.weights(),
            "traces": traces,
            "readouts": self.loop.value(self.part.eprop.readout, "y"),
            "td_error": self.loop.value(self.part.head, "delta"),
        }

    def act(self, obs: np.ndarray, *, explore: bool = True) -> int:
        """Choose an action for one observation outside the episode stream (slow: one run).

        The observation is shown to a cleared network for one run (one period in
        runtime mode); the loop's state is restored afterwards and nothing is learned.
        """
        part, env = self.part, self.env_part
        self.loop.store("before_act")
        values = {
            **self.real_values(),
            **part.mode(learning=False, explore=False, episode_budget=0),
            (env.env, "needs_reset"): np.ones(env.n_copies, dtype=np.int32),
            (env.env, "episodes_done"): np.zeros(env.n_copies, dtype=np.int32),
            **env.present(np.asarray(obs, dtype=float)[None, :]),
        }
        try:
            self._measured_run(1, values, self.real_parts(), "evaluation", inference=True)
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
        """One greedy episode with every spike, readout and port recorded (runtime mode);
        see :func:`nmbrl_brian.training.rasters.record_episode`."""
        from nmbrl_brian.training.rasters import record_episode

        return record_episode(self, seed, max_steps=max_steps, dream=dream)

    # ----------------------------------------------------------------------------------
    # Checkpoints and accounting
    def state_dict(self) -> dict[str, Any]:
        """Every state variable of the closed loop (arrays), the operation counts and the real transitions."""
        has_state = self.loop.has_state
        return {
            "loop": self.loop.state() if has_state else None,
            **self.meter.state_dict(),
            **self.transitions.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["loop"] is not None:
            self.loop.load_state(state["loop"])
        self.meter.load_state_dict(state)
        self.transitions.load_state_dict(state)

    def weight_values(self) -> dict[tuple[Any, str], np.ndarray]:
        """Copies of the learned parameters as loop values ``{(group, variable): array}`` (for
        :meth:`ClosedLoop.write <nmbrl_brian.loop.ClosedLoop.write>` or a run's values)."""
        return {
            (obj, var): np.array(self.loop.value(obj, var))
            for obj, var in self.part.weight_variables().values()
        }

    def weights(self) -> dict[str, np.ndarray]:
        """Copies of the learned parameters: ``w_in``, ``w_rec``, ``w_out``, ``b_out``."""
        return {
            key: np.array(self.loop.value(obj, var))
            for key, (obj, var) in self.part.weight_variables().items()
        }

    def trace_update_counts(self) -> dict[str, int]:
        """Eligibility-trace updates performed and skipped while training (activity-sparse mode skips some)."""
        return self.meter.training_traces()

    def operation_counts_by_phase(self) -> dict[str, OperationCounts]:
        """Operations per phase (``real``: acting and learning on the real environment,
        ``evaluation``; a model-based agent adds ``dream`` and ``world_model``), from the monitors
        and counters of every run, for :mod:`nmbrl_brian.energy`."""
        return dict(self.meter.counts)

    def steps_by_phase(self) -> dict[str, int]:
        """Environment steps taken in each phase (real, evaluation, dreamed; for ``world_model``:
        transitions presented)."""
        return dict(self.meter.steps)

    def periods_by_phase(self) -> dict[str, int]:
        """Environment periods simulated in each phase: one decision's worth of network time each
        (a run may hold after its budget, and episode ends take a period without a step)."""
        return dict(self.meter.periods)

    def operation_counts(self) -> OperationCounts:
        """Operations of training (every phase but evaluation)."""
        return self.meter.training_counts()
