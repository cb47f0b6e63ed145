"""A switch between two environment parts behind one set of ports (the real environment and a dream).

The agent is wired to the switch exactly as to an environment; the switch passes its
commands to one of the two environments (``use_dream``, per copy) and shows that one's
ports. Both environments stay in the network, so a standalone build holds the real
environment, the dream and the agent at once, and a phase of a model-based cycle
chooses between them with one value. Its maths is in
:mod:`nmbrl_brian.equations.environment` (``SWITCH_*``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from brian2 import NeuronGroup, linked_var

from nmbrl_brian.equations import environment as env_eqs
from nmbrl_brian.parts.base import EnvironmentPart


class EnvironmentSwitch(EnvironmentPart):
    """Offers the ports of ``real`` or of ``dream``, and routes the agent's commands to that one.

    Parameters
    ----------
    real, dream : EnvironmentPart
        Two environments with the same observation dimensions, actions, copies and period.
    prefix : str
        Object-name prefix.
    """

    def __init__(self, real: EnvironmentPart, dream: EnvironmentPart, *, prefix: str = "switch"):
        for attr in ("obs_dim", "n_actions", "n_copies"):
            if getattr(real, attr) != getattr(dream, attr):
                raise ValueError(
                    f"dream: expected the real environment's {attr} {getattr(real, attr)}, "
                    f"got {getattr(dream, attr)}"
                )
        if real.period != dream.period:
            raise ValueError(
                f"dream: expected the real environment's period {real.period}, got {dream.period}"
            )
        self.real, self.dream = real, dream
        self.obs_dim, self.n_actions, self.n_copies = real.obs_dim, real.n_actions, real.n_copies
        self.period, self.prefix = real.period, prefix
        self.clock = self.period_clock()
        b = self.n_copies
        self.namespace = {"choose": env_eqs.choose}
        self.env = NeuronGroup(
            b, env_eqs.SWITCH_EQUATIONS, clock=self.clock, namespace=self.namespace, name=f"{prefix}_env"
        )
        self.obs_port = NeuronGroup(
            b * self.obs_dim,
            env_eqs.SWITCH_OBS_EQUATIONS,
            clock=self.clock,
            namespace=self.namespace,
            name=f"{prefix}_obs",
        )
        self.env.use_dream = 0
        copies = np.arange(b)
        for var in env_eqs.SWITCHED_PORTS:
            setattr(self.env, f"real_{var}", linked_var(real.env, var, index=copies))
            setattr(self.env, f"dream_{var}", linked_var(dream.env, var, index=copies))
        copy_of_obs = np.repeat(copies, self.obs_dim)
        self.obs_port.use_dream = linked_var(self.env, "use_dream", index=copy_of_obs)
        index = np.arange(b * self.obs_dim)
        self.obs_port.real_obs = linked_var(real.obs_port, "obs", index=index)
        self.obs_port.dream_obs = linked_var(dream.obs_port, "obs", index=index)
        self.operations = {
            "route": self.at_period_start(self.env, env_eqs.SWITCH_ROUTE, env_eqs.ORDER_ROUTE, "route"),
            # before the head reads them: a phase's first period sees its environment's ports
            "merge": self.at_period_start(
                self.env, env_eqs.SWITCH_MERGE, env_eqs.ORDER_SWITCH_PORTS, "merge"
            ),
            "merge_obs": self.at_period_start(
                self.obs_port, env_eqs.SWITCH_MERGE_OBS, env_eqs.ORDER_MERGE, "merge_obs"
            ),
        }
        self.objects = [self.env, self.obs_port]

    @property
    def environments(self) -> list[EnvironmentPart]:
        """The two environments behind the switch."""
        return [self.real, self.dream]

    def connect_agent(self, head: NeuronGroup, command=None) -> None:
        copies = np.arange(self.n_copies)
        self.env.command = linked_var(head, "command", index=copies)
        self.real.connect_agent(head, command=(self.env, "command_real"))
        self.dream.connect_agent(head, command=(self.env, "command_dream"))

    def select(self, dream: bool) -> dict[tuple[Any, str], np.ndarray]:
        """Values that show (and command) the dream or the real environment from the next period on."""
        return {(self.env, "use_dream"): np.full(self.n_copies, int(dream), dtype=np.int32)}

    def run_values(self) -> dict:
        return {}

    def new_episode(self) -> dict:
        raise TypeError(
            "start an episode of the real or the dream environment behind the switch, not the switch"
        )

    restart = new_episode
