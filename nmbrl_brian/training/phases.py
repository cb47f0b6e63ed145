"""Phases of training and the schedules that run them.

A *phase* is a set of active parts of the agent's :class:`~nmbrl_brian.loop.ClosedLoop`, the
values that start it, a budget and a counter (:class:`Phase`); :func:`run_phase` runs its budget
through the loop, every run metered by the agent's energy meter under the phase's name
(operation counts, steps, periods). The phases of a spiking agent:

:class:`Real`
    act and learn on the real environment for a number of real steps; every transition joins
    the agent's transition log (in a model-based cycle: fresh episodes, and in concurrent mode
    acting with the dreamer's latest weights, not learning);
:class:`LearnModel`
    fit the dream's model to all real transitions so far (``world_model`` phase for the spiking
    model's learner part); in concurrent mode the model is then published to the dreamer;
:class:`Dream`
    act and learn in the dream part for ``model_based.dream_steps`` dreamed steps from real
    start states;
:class:`Evaluate`
    greedy episodes on a separate environment, learning off; the loop's state is stored before
    and restored after, so training never sees it.

A :class:`Schedule` is the phases of one training chunk and the evaluation phase: model-free
``[Real, Evaluate]``, model-based ``[Real, LearnModel, Dream, Evaluate]``, and in concurrent mode
``[Real, LearnModel]`` here while the dreamer process (:mod:`nmbrl_brian.training.dreamer`) runs
``Dream`` in a loop. Agents that learn in Python (the dense baseline) have the one-phase schedule
:data:`PYTHON_LOOP` over :meth:`BaseAgent.interact`.

The budget rule is written once, in :func:`run_phase`: a runtime loop runs what is left of the
budget (or :attr:`Phase.chunk` periods), a standalone loop whole runs of ``periods_per_run``
periods; in-network budgets (the head's ``step_budget``, ``episode_budget``) stop the agent
where a whole run would overshoot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nmbrl_brian.envs.env_loop import EnvLoop
from nmbrl_brian.errors import check_finite
from nmbrl_brian.loop import RunRecord
from nmbrl_brian.parts import GymnasiumPart

#: Periods per runtime run during an evaluation (its budget is in episodes, not periods).
EVALUATION_RUN_PERIODS = 250


@dataclass
class Phase:
    """One phase: what computes, how it starts, how much of it to run and how much has run."""

    name: str
    """The energy meter's phase: ``real``, ``world_model``, ``dream`` or ``evaluation``."""
    active: list | None
    """The parts that compute (None: all of them)."""
    values: dict
    """Values written before the first run (modes, budgets, fresh episodes, model weights)."""
    budget: int
    """Units to run: real steps, dreamed steps, episodes or periods."""
    counter: Callable[[dict[str, RunRecord]], int]
    """Units one run did, from its records (and any bookkeeping the phase does after a run)."""
    chunk: int | None = None
    """Periods per runtime run (default: what is left of the budget)."""
    learning: bool = True
    """Whether the agent learns in this phase (False, as in every evaluation: metered as inference,
    no traces or weight updates)."""
    done: int = field(default=0)
    """Units done so far."""


def run_phase(agent, phase: Phase) -> int:
    """Run ``phase`` through ``agent.loop`` until its budget is done; return the units done.

    A runtime loop runs ``phase.chunk`` periods, or what is left of the budget; a standalone
    loop runs whole runs of ``periods_per_run`` periods. Each run is metered
    (:class:`~nmbrl_brian.training.energy_meter.EnergyMeter`) under the phase's name.
    """
    loop, values = agent.loop, phase.values
    while phase.done < phase.budget:
        periods = loop.periods_per_run if loop.standalone else (phase.chunk or phase.budget - phase.done)
        records = agent.meter.run(
            loop,
            periods,
            values,
            phase.active,
            phase.name,
            agent.networks(phase.name),
            inference=not phase.learning,
        )
        values = {}
        phase.done += phase.counter(records)
    return phase.done


def account(agent, env_loop: EnvLoop, record: RunRecord) -> None:
    """Feed ``env_loop``'s counters from the monitors (a gymnasium part stepped the loop itself)."""
    if isinstance(agent.env_part, GymnasiumPart):
        return
    for reward, terminated, truncated in zip(record.reward, record.terminated, record.truncated):
        env_loop.record(float(reward), bool(terminated), bool(truncated))


def check_sampler(agent, env_step: int) -> None:
    """Stop on the first non-finite readout or TD error (the in-network sampler would act on NaN)."""
    check_finite("readouts", agent.loop.value(agent.part.eprop.readout, "y"), env_step)
    check_finite("td_error", agent.loop.value(agent.part.head, "delta"), env_step)


@dataclass
class Cycle:
    """What the training phases of one chunk share: the real environment, the budget, the model."""

    env_loop: EnvLoop
    steps: int
    explore: bool = True
    model_values: dict = field(default_factory=dict)
    """Values loading the dream's model (set by :class:`LearnModel`, read by :class:`Dream`)."""


@dataclass(frozen=True)
class Real:
    """Act and learn on the real environment for ``cycle.steps`` real steps.

    ``fresh_episodes``: start fresh episodes (a model-based cycle: the episode in progress is
    abandoned, in the transition log too, and the agent learns only if
    ``model_based.learn_on_real``); ``acting_only``: act with the dreamer's latest weights and
    learn nothing (concurrent mode).
    """

    fresh_episodes: bool = False
    acting_only: bool = False

    def run(self, agent, cycle: Cycle) -> None:
        env_loop, steps = cycle.env_loop, cycle.steps
        agent.training_loop = env_loop
        agent.attach(env_loop)
        learning = self.learns(agent)
        if not self.fresh_episodes:
            values = agent.part.mode(learning=learning, explore=cycle.explore)
        else:
            values = {
                **(agent.dreamer_link().latest_weights() if self.acting_only else {}),
                **agent.part.mode(learning=learning, explore=cycle.explore, step_budget=steps),
                **agent.part.fresh_episode(),
                **agent.env_part.new_episode(),
                **agent.real_values(),
            }
            env_loop.abandon_episode()  # a cycle's real phase starts a new episode (with the next seed)
            agent.transitions.new_episode()
        counted = [env_loop.env_steps]  # a gymnasium part steps env_loop during the run itself

        def counter(records: dict[str, RunRecord]) -> int:
            record = records[agent.env_part.prefix]
            account(agent, env_loop, record)
            agent.transitions.keep(record)
            check_sampler(agent, env_loop.env_steps)
            ran, counted[0] = env_loop.env_steps - counted[0], env_loop.env_steps
            return ran

        # agent.reward_shaping: the model-free agent learns from shaped real rewards; a model-based
        # cycle's real steps keep the task's reward (the world model learns it; dreams are shaped)
        shaped = getattr(agent.env_part, "shaping", None) is not None and learning and not self.fresh_episodes
        if shaped:
            agent.env_part.shaping_on = True
        try:
            run_phase(agent, Phase("real", agent.real_parts(), values, steps, counter, learning=learning))
        finally:
            if shaped:
                agent.env_part.shaping_on = False

    def learns(self, agent) -> bool:
        """Whether the agent learns in this real phase: always model-free; in a model-based cycle
        (``fresh_episodes``) unless acting only or ``model_based.learn_on_real`` is false."""
        if not self.fresh_episodes:
            return True
        return not self.acting_only and agent.model_based.learn_on_real


@dataclass(frozen=True)
class LearnModel:
    """Fit the dream's model to all real transitions so far (``publish``: hand it to the dreamer)."""

    publish: bool = False

    def run(self, agent, cycle: Cycle) -> None:
        cycle.model_values = agent.update_model()
        agent.cycles += 1
        if self.publish:
            agent.dreamer_link().publish_model(cycle.model_values)


@dataclass(frozen=True)
class Dream:
    """Act and learn in the dream for at most ``model_based.dream_steps`` dreamed steps (:func:`dream_cycle`)."""

    def run(self, agent, cycle: Cycle) -> None:
        dream_cycle(agent, cycle.model_values, explore=cycle.explore)


def episode_starts(data) -> np.ndarray:
    """The first observation of every real episode in ``data`` (all observations if none starts there)."""
    starts = data.obs[np.asarray(data.timestep) == 0]
    return starts if len(starts) else data.obs


def dream_cycle(
    agent,
    model_values: dict,
    *,
    explore: bool = True,
    start_states: np.ndarray | None = None,
    eval_starts: np.ndarray | None = None,
    first_values: dict | None = None,
) -> int:
    """A cycle's dreaming: ``model_based.dream_steps`` dreamed steps, in chunks with stopping rules.

    With ``model_based.dream_chunk`` > 0 the cycle dreams in chunks of that many steps, each
    followed by a dreamed evaluation (:func:`dreamed_evaluation`, from ``eval_starts``: by
    default the first states of the real episodes), and stops early at the first dreamed return
    >= ``dream_stop_return`` or after ``dream_patience`` evaluations without a new best; with
    ``keep_best_in_dream`` the agent then goes on from the best evaluation's weights. With
    ``dream_eval_first`` the policy the cycle starts from is evaluated first: its score is the
    best to beat, and a policy already at ``dream_stop_return`` dreams no steps.
    ``start_states`` are the training dreams' (default: see :func:`dream`); ``first_values`` go
    in with the first run (e.g. weights to start from). Returns the steps dreamed.
    """
    mb = agent.model_based
    first = {**model_values, **(first_values or {})}
    if mb.dream_chunk <= 0:
        return dream(agent, mb.dream_steps, first, explore=explore, start_states=start_states)
    if eval_starts is None:
        eval_starts = episode_starts(agent.real_transitions)
    best, best_weights, stale, done, score = -np.inf, None, 0, 0, -np.inf

    def solved() -> bool:
        return score >= mb.dream_stop_return

    if mb.dream_eval_first:
        if first_values:  # weights to start from must be in place before they are scored
            agent.loop.write(first_values)
            first = model_values  # written once: the first dream needs only the model
        score = best = dreamed_evaluation(agent, model_values, mb.dream_eval_episodes, eval_starts)
        best_weights = agent.weight_values() if mb.keep_best_in_dream else None
    while done < mb.dream_steps and not solved():
        steps = min(mb.dream_chunk, mb.dream_steps - done)
        done += dream(agent, steps, first, explore=explore, start_states=start_states)
        first = model_values
        score = dreamed_evaluation(agent, model_values, mb.dream_eval_episodes, eval_starts)
        if score > best:
            best, stale = score, 0
            best_weights = agent.weight_values() if mb.keep_best_in_dream else None
        else:
            stale += 1
        if mb.dream_patience and stale >= mb.dream_patience:
            break
    if best_weights is not None and score < best:
        agent.loop.write(best_weights)
    return done


def dreamed_evaluation(agent, model_values: dict, episodes: int, starts: np.ndarray) -> float:
    """Mean return of ``episodes`` greedy dreamed episodes from ``starts``, learning off; training state untouched.

    The dream restarts (its start states are drawn from ``starts`` with the first seed of its
    stream, so every dreamed evaluation of a run from the same ``starts`` starts alike); the
    loop's state is stored before and restored after. Metered as the ``dream_evaluation`` phase
    (inference: no traces).
    """
    agent.loop.store("before_dreamed_evaluation")
    agent.dream.set_start_states(starts)
    values = {
        **model_values,
        **agent.part.mode(learning=False, explore=False, episode_budget=episodes),
        **agent.part.fresh_episode(),
        **agent.dream.restart(),
        **agent.switch.select(dream=True),
    }
    returns: list[float] = []

    def counter(records: dict[str, RunRecord]) -> int:
        finished = records[agent.dream.prefix].episode_return
        returns.extend(float(r) for r in finished)
        return len(finished)

    try:
        run_phase(
            agent,
            Phase(
                "dream_evaluation",
                [agent.part, agent.switch, agent.dream],
                values,
                episodes,
                counter,
                chunk=EVALUATION_RUN_PERIODS,
                learning=False,
            ),
        )
    finally:
        agent.loop.restore("before_dreamed_evaluation")
    score = float(np.mean(returns[:episodes]))
    agent.dreamed_returns.append(score)
    return score


def dream(
    agent, steps: int, model_values: dict, *, explore: bool = True, start_states: np.ndarray | None = None
) -> int:
    """Act and learn for ``steps`` dreamed steps from real start states (default: the transition log).

    The head's ``step_budget`` stops acting at ``steps`` inside a run; the phase's counter adds
    the dreamed steps to ``agent.dream_steps``. Returns the steps dreamed.
    """
    if steps <= 0:
        return 0
    if start_states is None:
        data, keep = agent.real_transitions, agent.model_based.start_states
        start_states = data.obs if not keep else data.obs[-keep:]
    agent.dream.set_start_states(start_states)
    values = {
        **model_values,
        **agent.part.mode(learning=True, explore=explore, step_budget=steps),
        **agent.part.fresh_episode(),
        **agent.dream.new_episode(),
        **agent.switch.select(dream=True),
    }

    def counter(records: dict[str, RunRecord]) -> int:
        record = records[agent.dream.prefix]
        agent.dream_terminations += int(np.sum(record.terminated))
        dreamed = record.steps
        check_sampler(agent, agent.training_loop.env_steps if agent.training_loop else 0)
        return dreamed

    done = run_phase(agent, Phase("dream", [agent.part, agent.switch, agent.dream], values, steps, counter))
    agent.dream_steps += done
    return done


@dataclass(frozen=True)
class Evaluate:
    """Play ``episodes`` episodes on ``env_loop``'s environment, learning off; training state untouched."""

    def run(self, agent, env_loop: EnvLoop, episodes: int, *, explore: bool = False) -> None:
        agent.loop.store("before_evaluation")
        agent.attach(env_loop)
        values = {
            **agent.part.mode(learning=False, explore=explore, episode_budget=episodes),
            **agent.part.fresh_episode(),
            **agent.env_part.restart(),
            **agent.real_values(),
        }

        def counter(records: dict[str, RunRecord]) -> int:
            record = records[agent.env_part.prefix]
            account(agent, env_loop, record)
            return len(record.episode_return)

        try:
            run_phase(
                agent,
                Phase(
                    "evaluation",
                    agent.real_parts(),
                    values,
                    episodes,
                    counter,
                    chunk=EVALUATION_RUN_PERIODS,
                    learning=False,
                ),
            )
        finally:
            agent.loop.restore("before_evaluation")
            if agent.training_loop is not None:
                agent.attach(agent.training_loop)


@dataclass(frozen=True)
class Interact:
    """The one phase of an agent that learns in Python: :meth:`BaseAgent.interact` (steps or episodes)."""

    def run(self, agent, cycle: Cycle) -> None:
        agent.interact(cycle.env_loop, max_steps=cycle.steps, explore=cycle.explore)


@dataclass(frozen=True)
class InteractEvaluate:
    """Evaluation of an agent that learns in Python: greedy episodes, ``learn=False``."""

    def run(self, agent, env_loop: EnvLoop, episodes: int, *, explore: bool = False) -> None:
        agent.interact(env_loop, max_episodes=episodes, explore=explore, learn=False)


@dataclass(frozen=True)
class Schedule:
    """The phases of one training chunk, in order, and the evaluation phase."""

    training: tuple[Any, ...]
    evaluation: Any

    def train(self, agent, env_loop: EnvLoop, steps: int, *, explore: bool = True) -> None:
        """Run the training phases once: ``steps`` real steps and what follows them."""
        cycle = Cycle(env_loop, int(steps), explore)
        for phase in self.training:
            phase.run(agent, cycle)

    def evaluate(self, agent, env_loop: EnvLoop, episodes: int, *, explore: bool = False) -> None:
        """Run the evaluation phase: ``episodes`` episodes on ``env_loop``'s environment."""
        self.evaluation.run(agent, env_loop, int(episodes), explore=explore)


#: Agents that learn in Python, one transition at a time.
PYTHON_LOOP = Schedule((Interact(),), InteractEvaluate())
#: The spiking actor-critic: act and learn on the real environment.
MODEL_FREE = Schedule((Real(),), Evaluate())
#: The model-based cycle: real steps (fresh episodes), a model update, dreams.
MODEL_BASED = Schedule((Real(fresh_episodes=True), LearnModel(), Dream()), Evaluate())
#: Concurrent mode, this process: act with the dreamer's weights, learn the model and publish it.
MODEL_BASED_CONCURRENT = Schedule(
    (Real(fresh_episodes=True, acting_only=True), LearnModel(publish=True)), Evaluate()
)


def schedule_for(agent) -> Schedule:
    """The agent's schedule (:data:`PYTHON_LOOP` for agents without one)."""
    schedule = getattr(agent, "schedule", None)
    return schedule if isinstance(schedule, Schedule) else PYTHON_LOOP
