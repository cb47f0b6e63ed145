"""CartPole as Brian2 equations behind the environment ports: a part that compiles standalone."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from brian2 import Quantity, TimedArray, linked_var

from nmbrl_brian import seeding
from nmbrl_brian.equations import cartpole as cp_eqs
from nmbrl_brian.equations import environment as env_eqs
from nmbrl_brian.parts.base import EnvironmentPart, ValueReader


class CartPolePart(EnvironmentPart):
    """``n_copies`` cart-poles (:mod:`nmbrl_brian.equations.cartpole`) with the environment ports.

    Episode ``k`` of copy ``c`` starts from the state gymnasium's ``reset(seed=seeds[c] + k)``
    gives, so seeded episodes are gymnasium's own (as with an ``EnvLoop`` seeded with
    ``seeds[c]``). The reset states of a run come from a TimedArray that :meth:`tables`
    fills before every run.

    Parameters
    ----------
    period : Quantity
        Network time of one environment step (the physics always advances gymnasium's
        ``tau`` = 20 ms per step).
    n_copies : int
        Independent cart-poles.
    seeds : sequence of int
        Reset seed of episode 0 of each copy.
    resets_per_run : int
        Rows of the reset table: at most this many episodes start in one run.
    env_id : str
        A CartPole id of gymnasium (the constants are read from it).
    prefix : str
        Object-name prefix.
    """

    def __init__(
        self,
        *,
        period: Quantity,
        n_copies: int = 1,
        seeds: Sequence[int] = (0,),
        resets_per_run: int = 1000,
        env_id: str = "CartPole-v1",
        prefix: str = "cartpole",
    ):
        import gymnasium as gym

        self.params = cp_eqs.CartPoleParams.from_gymnasium(env_id)
        self.reset_table = TimedArray(
            np.zeros((int(resets_per_run), 4 * n_copies)), dt=period, name=f"{prefix}_reset_states"
        )
        namespace = {**self.params.namespace(), self.reset_table.name: self.reset_table}
        super().__init__(
            4,
            2,
            period=period,
            n_copies=n_copies,
            prefix=prefix,
            state_equations=cp_eqs.CARTPOLE_EQUATIONS,
            obs_equations=cp_eqs.OBS_LINKS,
            namespace=namespace,
        )
        copy_of_obs = np.repeat(np.arange(n_copies), 4)
        for name in cp_eqs.STATE_VARIABLES:
            setattr(self.obs_port, f"{name}_env", linked_var(self.env, name, index=copy_of_obs))
        self.operations["step"] = self.at_period_start(
            self.env, cp_eqs.cartpole_step(self.reset_table.name), env_eqs.ORDER_STEP, "step"
        )
        self.operations["observe"] = self.at_period_start(
            self.obs_port, cp_eqs.CARTPOLE_OBSERVE, env_eqs.ORDER_OBSERVE, "observe"
        )
        self.seeds = self._check_seeds(seeds)
        self._gym = gym.make(env_id).unwrapped
        self._initial_states: dict[int, np.ndarray] = {}

    def _check_seeds(self, seeds: Sequence[int]) -> list[int]:
        seeds = [int(s) for s in seeds]
        if len(seeds) != self.n_copies:
            raise ValueError(f"seeds: expected {self.n_copies} seeds, one per copy, got {len(seeds)}")
        return seeds

    def set_seeds(self, seeds: Sequence[int]) -> None:
        """Reset seeds of episode 0 per copy (e.g. an evaluation's seeds)."""
        self.seeds = self._check_seeds(seeds)

    def initial_state(self, seed: int) -> np.ndarray:
        """The state gymnasium's CartPole starts from after ``reset(seed=seed)`` (float64)."""
        state = self._initial_states.get(seed)
        if state is None:
            self._gym.reset(seed=int(seed))
            state = np.asarray(self._gym.state, dtype=float)
            if len(self._initial_states) > 100_000:
                self._initial_states.clear()
            self._initial_states[seed] = state
        return state

    def present(self, obs: np.ndarray) -> dict:
        """The cart-pole state (and its observation) set to ``obs`` (shape ``(B, 4)``)."""
        obs = np.asarray(obs, dtype=float).reshape(self.n_copies, 4)
        values = super().present(obs)
        for d, name in enumerate(cp_eqs.STATE_VARIABLES):
            values[(self.env, name)] = obs[:, d]
        return values

    def tables(self, value: ValueReader, n_periods: int) -> dict[TimedArray, np.ndarray]:
        resets_done = np.asarray(value(self.env, "resets_done"), dtype=int)
        rows = self.reset_table.values.shape[0]
        table = np.empty((rows, 4 * self.n_copies))
        for c, base in enumerate(self.seeds):
            done = int(resets_done[c])
            table[:, 4 * c : 4 * c + 4] = [
                self.initial_state(seeding.episode_reset_seed(base, done + r)) for r in range(rows)
            ]
        return {self.reset_table: table}
