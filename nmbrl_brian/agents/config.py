"""The model-based cycle's settings (:class:`ModelBasedConfig`) and the names agents choose from.

The actor-critic rule's settings, :class:`~nmbrl_brian.equations.actor_critic.AgentConfig`, sit beside
its maths.
"""

from __future__ import annotations

from dataclasses import dataclass

from nmbrl_brian.errors import ConfigError

#: Environments written as Brian2 equations (a spiking agent's ``environment = "equations"``).
EQUATION_ENVIRONMENTS = ("CartPole-v0", "CartPole-v1")
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

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ConfigError("model_based.model", "one of " + ", ".join(map(repr, MODELS)), self.model)
        if not isinstance(self.parallel, bool):
            raise ConfigError("model_based.parallel", "true or false", self.parallel)
        for name, minimum in (("dream_steps", 0), ("horizon", 1), ("start_states", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ConfigError(f"model_based.{name}", f"an integer >= {minimum}", value)
