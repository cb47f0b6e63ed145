"""What every part has, and the environment side that all environment parts share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from brian2 import Clock, EventMonitor, NeuronGroup, Quantity, TimedArray, linked_var

from nmbrl_brian.equations import environment as env_eqs

#: ``value(group, name) -> ndarray``: the current value of a variable, wherever the state lives
#: (the Brian2 objects in runtime mode, the loop's copy between standalone runs).
ValueReader = Callable[[Any, str], np.ndarray]


class Part:
    """A bundle of Brian2 objects, named by ``prefix``, that a :class:`~nmbrl_brian.loop.ClosedLoop` runs.

    Attributes
    ----------
    prefix : str
        Prefix of every object name of the part.
    n_copies : int
        Copies of the loop this part holds (the batch dimension).
    period : Quantity
        Network time of one environment step.
    objects : list
        The Brian2 objects to add to the network (groups, synapses, monitors, operations).
    """

    prefix: str
    n_copies: int
    period: Quantity
    objects: list

    def tables(self, value: ValueReader, n_periods: int) -> dict[TimedArray, np.ndarray]:
        """Contents of the part's TimedArrays for the next run of ``n_periods`` periods."""
        return {}

    def run_values(self) -> dict[tuple[Any, str], np.ndarray]:
        """Variables written at the start of every run (e.g. counters that index its tables)."""
        return {}

    def period_clock(self) -> Clock:
        """A clock ticking once per environment step, named after the part."""
        return Clock(dt=self.period, name=f"{self.prefix}_period_clock")

    def at_period_start(self, group, code: str, order: int, name: str):
        """Run ``code`` on ``group`` once per period, in the ``start`` slot at ``order``."""
        return group.run_regularly(
            code, clock=self.clock, when="start", order=order, name=f"{self.prefix}_{name}"
        )


class EnvironmentPart(Part):
    """The ports of :mod:`nmbrl_brian.equations.environment`, on two groups.

    Subclasses add the environment's own state equations and step code (or a network
    operation) at order :data:`~nmbrl_brian.equations.environment.ORDER_STEP`.

    Parameters
    ----------
    obs_dim, n_actions : int
        Observation dimensions and number of actions.
    period : Quantity
        Network time of one environment step.
    n_copies : int
        Independent environments, one per copy of the loop.
    prefix : str
        Object-name prefix.
    state_equations : str
        Extra variables of the ``env`` group (the environment's own state).
    obs_equations : str
        Extra variables of the ``obs`` port group (e.g. links to the state).
    namespace : dict
        Constants and functions for the part's code.
    """

    def __init__(
        self,
        obs_dim: int,
        n_actions: int,
        *,
        period: Quantity,
        n_copies: int,
        prefix: str,
        state_equations: str = "",
        obs_equations: str = "",
        namespace: dict | None = None,
    ):
        self.obs_dim, self.n_actions = int(obs_dim), int(n_actions)
        self.period, self.n_copies, self.prefix = period, int(n_copies), prefix
        self.namespace = {"period_dt": period, "float32_round": env_eqs.float32_round, **(namespace or {})}
        self.clock = self.period_clock()
        b = self.n_copies
        self.env = NeuronGroup(
            b,
            env_eqs.ENV_PORT_EQUATIONS + state_equations,
            events=dict(env_eqs.ENV_EVENTS),
            namespace=self.namespace,
            clock=self.clock,
            name=f"{prefix}_env",
        )
        self.env.copy = np.arange(b)
        self.env.needs_reset = 1
        self.obs_port = NeuronGroup(
            b * self.obs_dim,
            env_eqs.OBS_PORT_EQUATIONS + "stepped : integer (linked)\n" + obs_equations,
            events={"transition": "stepped == 1"},
            namespace=self.namespace,
            clock=self.clock,
            name=f"{prefix}_obs",
        )
        self.obs_port.dim = np.tile(np.arange(self.obs_dim), b)
        self.obs_port.copy = np.repeat(np.arange(b), self.obs_dim)
        self.obs_port.stepped = linked_var(self.env, "stepped", index=np.repeat(np.arange(b), self.obs_dim))
        self.operations = {
            "latch": self.at_period_start(self.obs_port, env_eqs.LATCH_OBS, env_eqs.ORDER_LATCH, "latch"),
            "bookkeeping": self.at_period_start(
                self.env, env_eqs.BOOKKEEPING, env_eqs.ORDER_BOOKKEEPING, "bookkeeping"
            ),
        }
        self.objects = [self.env, self.obs_port]
        self.transitions = self.observed = self.episodes = None

    # ----------------------------------------------------------------------------------
    def connect_agent(self, head: NeuronGroup, command: tuple[NeuronGroup, str] | None = None) -> None:
        """Read ``action`` from an agent's head and ``command`` from it too (or from ``command``,
        a ``(group, variable)`` such as a switch's routed command); one neuron per copy."""
        index = np.arange(self.n_copies)
        source, name = command if command is not None else (head, "command")
        self.env.command = linked_var(source, name, index=index)
        self.env.action = linked_var(head, "action", index=index)
        prefix = self.prefix
        # The monitors record the linked action, so they can only exist from now on.
        self.transitions = EventMonitor(
            self.env,
            "transition",
            variables=["action", "reward", "terminated", "truncated"],
            name=f"{prefix}_transitions",
        )
        self.observed = EventMonitor(
            self.obs_port, "transition", variables=["obs_prev", "obs"], name=f"{prefix}_observed"
        )
        self.episodes = EventMonitor(
            self.env, "episode_end", variables=["episode_return", "episode_steps"], name=f"{prefix}_episodes"
        )
        self.objects += [self.transitions, self.observed, self.episodes]

    def run_values(self) -> dict[tuple[Any, str], np.ndarray]:
        return {(self.env, "reset_row"): np.zeros(self.n_copies, dtype=np.int32)}

    def present(self, obs: np.ndarray) -> dict[tuple[Any, str], np.ndarray]:
        """Values that put the environment of every copy in observation ``obs`` (shape ``(B, obs_dim)``)."""
        return {(self.obs_port, "obs"): np.asarray(obs, dtype=float).reshape(-1)}

    def new_episode(self) -> dict[tuple[Any, str], np.ndarray]:
        """Values that abandon the episode in progress and zero the step and episode counts
        (budgets count from here); resets continue with the next seed."""
        zeros = np.zeros(self.n_copies, dtype=np.int32)
        return {
            (self.env, "needs_reset"): np.ones(self.n_copies, dtype=np.int32),
            (self.env, "episodes_done"): zeros,
            (self.env, "steps_done"): zeros,
            (self.env, "episode_return"): np.zeros(self.n_copies),
            (self.env, "episode_steps"): zeros,
        }

    def restart(self) -> dict[tuple[Any, str], np.ndarray]:
        """Values that start the environment afresh: :meth:`new_episode`, and resets from the first seed."""
        return {**self.new_episode(), (self.env, "resets_done"): np.zeros(self.n_copies, dtype=np.int32)}
