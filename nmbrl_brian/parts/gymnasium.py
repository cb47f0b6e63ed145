"""A gymnasium environment behind the environment ports (runtime mode only).

Its single ``network_operation`` steps the environment and copies the ports, nothing
else; the bookkeeping and the agent's decisions stay Brian2 code. Brian2 drops network
operations from standalone builds, so :class:`~nmbrl_brian.loop.ClosedLoop` refuses this
part on a standalone device (use an environment written as equations there, such as
:class:`~nmbrl_brian.parts.cartpole.CartPolePart`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from brian2 import NetworkOperation, Quantity

from nmbrl_brian.envs.env_loop import EnvLoop
from nmbrl_brian.equations import environment as env_eqs
from nmbrl_brian.parts.base import EnvironmentPart


class GymnasiumPart(EnvironmentPart):
    """One :class:`~nmbrl_brian.envs.env_loop.EnvLoop` per copy, stepped from inside the network.

    The loops (any :class:`~nmbrl_brian.world_models.base.BaseWorldModel`: the real
    environment or a Python world model) are given with :meth:`bind` before a run; an
    ``EnvLoop`` resets a finished episode itself (episode ``k`` with ``seed + k``), so a
    reset command only shows its new first observation.

    Parameters
    ----------
    obs_dim, n_actions : int
        Observation dimensions and number of actions.
    period : Quantity
        Network time of one environment step.
    n_copies : int
        Independent environments.
    shaping : (callable, float, float), optional
        ``(potential, k, gamma)``: while :attr:`shaping_on`, a step's reward is the task's plus
        ``k (gamma potential(s') - potential(s))`` (``agent.reward_shaping``; ``potential`` maps
        observations to the task's potential,
        :meth:`~nmbrl_brian.world_models.termination.AcrobotTermination.potential`). None: never.
    prefix : str
        Object-name prefix.
    """

    def __init__(
        self,
        obs_dim: int,
        n_actions: int,
        *,
        period: Quantity,
        n_copies: int = 1,
        shaping: tuple[Callable[[np.ndarray], np.ndarray], float, float] | None = None,
        prefix: str = "gym",
    ):
        super().__init__(obs_dim, n_actions, period=period, n_copies=n_copies, prefix=prefix)
        self.loops: list[EnvLoop] | None = None
        self.shaping = shaping
        #: Whether steps are shaped now: the training phases switch it on while the agent learns on
        #: the real environment, so evaluations and the loops' own returns see the task's reward.
        self.shaping_on = False
        self.operation = NetworkOperation(
            self._step, clock=self.clock, when="start", order=env_eqs.ORDER_STEP, name=f"{prefix}_step"
        )
        self.objects.append(self.operation)

    def bind(self, loops: Sequence[EnvLoop]) -> None:
        """Step these loops (one per copy) from now on."""
        if len(loops) != self.n_copies:
            raise ValueError(f"loops: expected {self.n_copies} EnvLoops, one per copy, got {len(loops)}")
        self.loops = list(loops)

    def _step(self) -> None:
        if self.loops is None:
            raise RuntimeError(f"{self.prefix}: bind(loops) before running the network")
        env, b, d = self.env, self.n_copies, self.obs_dim
        command = np.asarray(env.command[:])
        action = np.asarray(env.action[:])
        obs = np.asarray(self.obs_port.obs[:]).reshape(b, d).copy()
        reward = np.asarray(env.reward[:]).copy()
        terminated = np.asarray(env.terminated[:]).copy()
        truncated = np.asarray(env.truncated[:]).copy()
        needs_reset = np.asarray(env.needs_reset[:]).copy()
        stepped = np.zeros(b, dtype=np.int32)
        for c, loop in enumerate(self.loops):
            if command[c] == env_eqs.STEP:
                t = loop.step(int(action[c]))
                obs[c] = t.next_obs
                reward[c], terminated[c], truncated[c] = t.reward, t.terminated, t.truncated
                if self.shaping is not None and self.shaping_on:
                    potential, k, gamma = self.shaping
                    reward[c] += k * (gamma * float(potential(t.next_obs)) - float(potential(t.obs)))
                needs_reset[c] = int(t.terminated or t.truncated)
                stepped[c] = 1
            elif command[c] == env_eqs.RESET:
                obs[c] = loop.obs  # the loop started the next episode when the last one ended
                reward[c], terminated[c], truncated[c], needs_reset[c] = 0.0, 0, 0, 0
        self.obs_port.obs[:] = obs.ravel()
        env.reward[:], env.terminated[:], env.truncated[:] = reward, terminated, truncated
        env.needs_reset[:], env.stepped[:] = needs_reset, stepped
