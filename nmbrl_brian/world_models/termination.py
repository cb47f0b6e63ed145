"""Known termination functions, given per environment instead of learned.

MBPO (Janner et al. 2019, *When to trust your model: model-based policy
optimization*) learns the dynamics and the reward but hands the model the true
``done(s')`` of each task. The functions here do the same for the classic-control
environments. Every bound is read from the environment object itself, so a change of
constants in gymnasium is picked up automatically.

A termination function maps next observations to terminal flags:
``fn(next_obs: (N, D) or (D,)) -> bool array (N,) or bool``. Each one is also Brian2 code
(:meth:`brian2_code`: an ``int(...)`` expression of the observation components ``s_0,
s_1, ...`` with its constants in :meth:`namespace`), so a dream environment inside a
Brian2 network ends episodes by the same rule. Where the task's reward is a fixed rule too,
:meth:`reward_code` gives it as Brian2 code of ``failed`` (this step's termination flag, 0 or 1)
and the observation, for dreams whose reward is given (``world_model.reward = "given"``)
rather than predicted.

Gymnasium evaluates the condition on its float64 internal state and then rounds the
observation to float32; a state within float32 rounding of a bound can therefore be
classified differently from the observation. This is vanishingly rare in practice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import gymnasium as gym
import numpy as np

__all__ = [
    "TERMINATION_FNS",
    "AcrobotTermination",
    "CartPoleTermination",
    "MountainCarTermination",
    "TerminationFn",
    "termination_fn_for",
]

TerminationFn = Callable[[np.ndarray], np.ndarray]
"""``next_obs (N, D) -> terminated (N,) bool``; a single ``(D,)`` observation gives a 0-d array."""


def _unwrapped(env_id: str):
    env = gym.make(env_id)
    try:
        return env.unwrapped
    finally:
        env.close()


class _KnownTermination:
    """What every known termination shares: its constants read from ``env.unwrapped``
    (:attr:`ENV_ATTRIBUTES`, the dataclass fields of the same names) and its rule as Brian2 code
    (:attr:`BRIAN2_CODE`) with the constants under the names of :attr:`NAMESPACE`."""

    DEFAULT_ENV: ClassVar[str]
    """The environment :meth:`from_env` reads by default."""
    ENV_ATTRIBUTES: ClassVar[tuple[str, ...]] = ()
    """Fields read, in order, from ``gym.make(env_id).unwrapped``."""
    BRIAN2_CODE: ClassVar[str]
    """The condition as an ``int(...)`` Brian2 expression of ``s_0, s_1, ...``."""
    NAMESPACE: ClassVar[tuple[tuple[str, str], ...]]
    """``(Brian2 name, field)`` of each constant of :attr:`BRIAN2_CODE`."""
    REWARD_CODE: ClassVar[str | None] = None
    """The task's reward per step as a Brian2 expression of ``failed`` (the step's termination
    flag, 0 or 1) and ``s_0, s_1, ...``; None: no known rule (the model predicts it)."""
    POTENTIAL_CODE: ClassVar[str | None] = None
    """A potential of the state, as a Brian2 expression of ``s_0, s_1, ...``, that grows towards
    the task's goal (``agent.reward_shaping``; :meth:`potential` is the same in NumPy); None: the
    task has none."""

    @classmethod
    def from_env(cls, env_id: str | None = None):
        """Read the constants from ``gym.make(env_id).unwrapped`` (``env_id``: :attr:`DEFAULT_ENV`)."""
        env = _unwrapped(cls.DEFAULT_ENV if env_id is None else env_id)
        return cls(*(float(getattr(env, name)) for name in cls.ENV_ATTRIBUTES))

    def brian2_code(self) -> str:
        """The condition as Brian2 code (:attr:`BRIAN2_CODE`)."""
        return self.BRIAN2_CODE

    def namespace(self) -> dict:
        """Constants of :meth:`brian2_code`."""
        return {name: getattr(self, field) for name, field in self.NAMESPACE}

    def reward_code(self) -> str | None:
        """The task's reward rule as Brian2 code (:attr:`REWARD_CODE`), or None if it has none."""
        return self.REWARD_CODE

    def potential_code(self) -> str | None:
        """The task's potential as Brian2 code (:attr:`POTENTIAL_CODE`), or None if it has none."""
        return self.POTENTIAL_CODE

    def potential(self, obs: np.ndarray) -> np.ndarray:
        """The task's potential of observations ``(N, D)`` or ``(D,)`` (:attr:`POTENTIAL_CODE` in NumPy)."""
        raise NotImplementedError(f"{type(self).__name__} has no potential")


@dataclass(frozen=True)
class CartPoleTermination(_KnownTermination):
    """CartPole ends when the cart leaves the track or the pole falls too far.

    ``terminated = |x| > x_threshold or |theta| > theta_threshold_radians`` (strict, as
    in ``gymnasium.envs.classic_control.cartpole``); as Brian2 code on ``s_0 .. s_3``.
    """

    DEFAULT_ENV = "CartPole-v1"
    ENV_ATTRIBUTES = ("x_threshold", "theta_threshold_radians")
    BRIAN2_CODE = "int(abs(s_0) > x_threshold or abs(s_2) > theta_threshold)"
    REWARD_CODE = "1.0"  # every step, the terminating one too
    NAMESPACE = (("x_threshold", "x_threshold"), ("theta_threshold", "theta_threshold_radians"))

    x_threshold: float
    """Half-length of the track (m), from ``env.unwrapped.x_threshold``."""
    theta_threshold_radians: float
    """Largest pole angle before failure (rad), from ``env.unwrapped.theta_threshold_radians``."""

    def __call__(self, next_obs: np.ndarray) -> np.ndarray:
        s = np.asarray(next_obs, dtype=np.float64)
        x, theta = s[..., 0], s[..., 2]
        return (
            (x < -self.x_threshold)
            | (x > self.x_threshold)
            | (theta < -self.theta_threshold_radians)
            | (theta > self.theta_threshold_radians)
        )


@dataclass(frozen=True)
class AcrobotTermination(_KnownTermination):
    """Acrobot ends when the free end rises above the bar: ``-cos(t1) - cos(t1 + t2) > 1``.

    The observation is ``(cos t1, sin t1, cos t2, sin t2, dt1, dt2)``, so
    ``cos(t1 + t2) = cos t1 cos t2 - sin t1 sin t2``. :meth:`from_env` only checks that the
    environment exists (the goal height is a literal in gymnasium).
    """

    DEFAULT_ENV = "Acrobot-v1"
    POTENTIAL_CODE = "-s_0 - (s_0*s_2 - s_1*s_3)"  # the free end's height, in link lengths
    BRIAN2_CODE = f"int({POTENTIAL_CODE} > goal_height)"
    REWARD_CODE = "failed - 1.0"  # -1 per step, 0 on the terminating step
    NAMESPACE = (("goal_height", "height"),)

    height: float = 1.0
    """Height of the goal line in link lengths (fixed at 1.0 in gymnasium's ``_terminal``)."""

    def __call__(self, next_obs: np.ndarray) -> np.ndarray:
        return self.potential(next_obs) > self.height

    def potential(self, obs: np.ndarray) -> np.ndarray:
        """The free end's height ``-cos t1 - cos(t1 + t2)`` in link lengths (:attr:`POTENTIAL_CODE`)."""
        s = np.asarray(obs, dtype=np.float64)
        c1, s1, c2, s2 = s[..., 0], s[..., 1], s[..., 2], s[..., 3]
        return -c1 - (c1 * c2 - s1 * s2)


@dataclass(frozen=True)
class MountainCarTermination(_KnownTermination):
    """MountainCar ends at the flag: ``position >= goal_position and velocity >= goal_velocity``
    (Brian2 code on ``s_0, s_1``: position, velocity)."""

    DEFAULT_ENV = "MountainCar-v0"
    ENV_ATTRIBUTES = ("goal_position", "goal_velocity")
    BRIAN2_CODE = "int(s_0 >= goal_position and s_1 >= goal_velocity)"
    REWARD_CODE = "-1.0"  # every step, the terminating one too
    NAMESPACE = (("goal_position", "goal_position"), ("goal_velocity", "goal_velocity"))

    goal_position: float
    """Flag position, from ``env.unwrapped.goal_position``."""
    goal_velocity: float
    """Least velocity at the flag, from ``env.unwrapped.goal_velocity``."""

    def __call__(self, next_obs: np.ndarray) -> np.ndarray:
        s = np.asarray(next_obs, dtype=np.float64)
        return (s[..., 0] >= self.goal_position) & (s[..., 1] >= self.goal_velocity)


TERMINATION_FNS: dict[str, type] = {
    "CartPole-v0": CartPoleTermination,
    "CartPole-v1": CartPoleTermination,
    "Acrobot-v1": AcrobotTermination,
    "MountainCar-v0": MountainCarTermination,
}
"""Environment ids with a known termination function, and the class that builds it."""


def termination_fn_for(env_id: str) -> TerminationFn | None:
    """The known termination function of ``env_id``, or None if there is none.

    Parameters
    ----------
    env_id : str
        A gymnasium id, e.g. ``"CartPole-v1"``.

    Returns
    -------
    callable or None
        ``fn(next_obs) -> bool array`` with bounds read from the environment.
    """
    cls = TERMINATION_FNS.get(env_id)
    return None if cls is None else cls.from_env(env_id)
