"""The model-based cycle's settings (:class:`ModelBasedConfig`) and the names agents choose from.

The actor-critic rule's settings, :class:`~nmbrl_brian.equations.actor_critic.AgentConfig`, sit beside
its maths.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from nmbrl_brian.equations.cartpole import GYMNASIUM_IDS
from nmbrl_brian.errors import ConfigError

#: Environments written as Brian2 equations (a spiking agent's ``environment = "equations"``).
EQUATION_ENVIRONMENTS = GYMNASIUM_IDS
#: Models a model-based agent can dream in.
MODELS = ("spiking", "linear", "perfect")


@dataclass(frozen=True)
class ModelBasedConfig:
    """The model-based cycle of ``agent.kind = "spiking_model_based"`` (config section ``model_based``)."""

    model: str = "spiking"
    """The dream's model: ``"spiking"`` (the spiking world model of section ``world_model``,
    learned from the real transitions), ``"linear"`` (least squares on the same data: a bound)
    or ``"perfect"`` (the CartPole equations: the bound without model error)."""
    dream_steps: int = 5000
    """Dreamed steps the agent acts and learns for in each cycle."""
    horizon: int = 100
    """A dream episode is truncated after this many steps (the agent bootstraps from its value)."""
    start_states: int = 0
    """Dreams start from real states drawn from the last this many real transitions (0: all)."""
    parallel: bool = False
    """Dream in a second process (``nmbrl run --parallel``): this one acts on the real environment
    with the dreamer's latest weights and learns the model; the dreamer learns in dreams of the
    latest model. The two exchange versioned snapshots under the run folder's ``snapshots/``."""

    dream_chunk: int = 0
    """Dreamed steps between two dreamed evaluations (0: dream the cycle's ``dream_steps`` in one go,
    with no dreamed evaluation and no stopping rule). A dreamed evaluation plays
    ``dream_eval_episodes`` greedy episodes in the dream, learning off, from the same real start
    states every time within a run; its mean return is the dreamed return."""
    dream_eval_episodes: int = 5
    """Greedy episodes of a dreamed evaluation (used when ``dream_chunk`` > 0)."""
    dream_stop_return: float = math.inf
    """A cycle stops dreaming at the first dreamed return >= this (inf: no such stop; any other
    number, negative ones too: Acrobot's returns are minus the steps to swing up). A dreamed
    episode lasts at most ``horizon`` steps, so with CartPole's reward of 1 a step a value above
    the horizon is never reached."""
    dream_patience: int = 0
    """A cycle stops dreaming after this many dreamed evaluations in a row without a new best
    dreamed return (0: no such stop)."""
    model_patience: int = 0
    """A cycle stops its world-model passes once the one-step error on its own new real
    transitions, measured as each pass presents them (before learning from them), has not fallen
    below ``(1 - model_tolerance)`` times its best for this many passes in a row (0: every pass
    that ``world_model.min_updates`` asks for; the spiking model only)."""
    model_tolerance: float = 0.01
    """The relative fall of that error that counts as a fall (see ``model_patience``)."""
    keep_best_in_dream: bool = False
    """At the end of a cycle's dreaming, go on (act on the real environment, and learn) from the
    weights of the cycle's best dreamed evaluation rather than from the last ones."""
    learn_on_real: bool = True
    """Learn (actor and critic, online) while acting on the real environment, as the model-free
    agent does. With ``false`` the real phase only collects transitions with the current policy
    (exploring, learning off, no eligibility traces) and every weight change comes from the dreams,
    where ``keep_best_in_dream`` and ``dream_eval_first`` guard it."""
    dream_eval_first: bool = False
    """Evaluate the policy in the dream before a cycle's first chunk: a policy whose dreamed return
    already reaches ``dream_stop_return`` is not trained in this cycle's dreams (0 dreamed steps),
    and its score is the one to beat, so with ``keep_best_in_dream`` a cycle whose dreams never beat
    the policy it started from goes on from that policy's weights."""

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ConfigError("model_based.model", "one of " + ", ".join(map(repr, MODELS)), self.model)
        if not isinstance(self.parallel, bool):
            raise ConfigError("model_based.parallel", "true or false", self.parallel)
        if not isinstance(self.keep_best_in_dream, bool):
            raise ConfigError("model_based.keep_best_in_dream", "true or false", self.keep_best_in_dream)
        if not isinstance(self.learn_on_real, bool):
            raise ConfigError("model_based.learn_on_real", "true or false", self.learn_on_real)
        if not isinstance(self.dream_eval_first, bool):
            raise ConfigError("model_based.dream_eval_first", "true or false", self.dream_eval_first)
        for name, minimum in (
            ("dream_steps", 0),
            ("horizon", 1),
            ("start_states", 0),
            ("dream_chunk", 0),
            ("dream_eval_episodes", 1),
            ("dream_patience", 0),
            ("model_patience", 0),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ConfigError(f"model_based.{name}", f"an integer >= {minimum}", value)
        if not (math.isfinite(self.model_tolerance) and 0.0 <= self.model_tolerance < 1.0):
            raise ConfigError("model_based.model_tolerance", "a number in [0, 1)", self.model_tolerance)
        stop = self.dream_stop_return
        if isinstance(stop, bool) or not isinstance(stop, (int, float)) or stop != stop or stop == -math.inf:
            raise ConfigError("model_based.dream_stop_return", "a number (inf: no such stop)", stop)
