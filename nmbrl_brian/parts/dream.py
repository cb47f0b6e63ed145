"""Dreams: environment parts whose steps come from a model, behind the same ports as the real one.

:class:`DreamPart` holds the dream's state (its ``obs`` port), the start-state table,
the horizon and the termination rule (:mod:`nmbrl_brian.equations.dream`); a
*predictor* writes the model's next observation and reward for the chosen action:

:class:`PerfectCartPole`, :class:`PerfectAcrobot`
    the task's own equations (the upper bound: a model without error; :func:`perfect_predictor`);
:class:`LinearPredictor`
    a linear model on standardised features ``(s, onehot(a), 1)``, e.g. the
    least-squares fit of :class:`~nmbrl_brian.world_models.baselines.LinearWorldModel`;
:class:`~nmbrl_brian.parts.dream_world_model.SpikingPredictor`
    the spiking world model, one copy per action, whose predictions for every action
    are ready when the agent decides.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from brian2 import Quantity, TimedArray, linked_var

from nmbrl_brian import seeding
from nmbrl_brian.equations import acrobot as acrobot_eqs
from nmbrl_brian.equations import cartpole as cp_eqs
from nmbrl_brian.equations import dream as dream_eqs
from nmbrl_brian.equations import environment as env_eqs
from nmbrl_brian.parts.base import EnvironmentPart, ValueReader


class Predictor:
    """What a model adds to a dream: its variables, code and objects (see :class:`DreamPart`)."""

    #: Extra variables of the dream's ``obs`` group and ``env`` group.
    obs_equations: str = ""
    env_equations: str = ""
    #: Whether the model predicts termination (``failed_next``) rather than the task's rule.
    learns_termination: bool = False

    def namespace(self) -> dict:
        """Constants and functions of the predictor's code."""
        return {}

    def attach(self, dream: DreamPart) -> list:
        """Create links and operations on the dream's groups; return the predictor's own objects."""
        raise NotImplementedError


class PerfectCartPole(Predictor):
    """The CartPole equations as the model: the dream steps exactly as the real cart-pole does."""

    def __init__(self, env_id: str = "CartPole-v1"):
        self.params = cp_eqs.CartPoleParams.from_gymnasium(env_id)

    def namespace(self) -> dict:
        return self.params.namespace()

    def attach(self, dream: DreamPart) -> list:
        code = (
            "x = s_0*meter\nx_dot = s_1*meter/second\ntheta = s_2\ntheta_dot = s_3/second\n"
            + cp_eqs.CARTPOLE_DYNAMICS
            + "obs_next = int(dim == 0)*x_next/meter + int(dim == 1)*x_dot_next/(meter/second)"
            " + int(dim == 2)*theta_next + int(dim == 3)*theta_dot_next*second\n"
        )
        dream.operations["predict"] = dream.at_period_start(
            dream.obs_port, code, env_eqs.ORDER_LATCH, "predict"
        )
        dream.env.reward_next = 1.0
        return []


class PerfectAcrobot(Predictor):
    """Acrobot's equations as the model (:mod:`nmbrl_brian.equations.acrobot`): one Runge-Kutta step
    of gymnasium's book dynamics per dreamed step, the reward by the task's rule."""

    def __init__(self, env_id: str = "Acrobot-v1"):
        self.params = acrobot_eqs.AcrobotParams.from_gymnasium(env_id)

    def namespace(self) -> dict:
        return self.params.namespace()

    def attach(self, dream: DreamPart) -> list:
        dream.operations["predict"] = dream.at_period_start(
            dream.obs_port, acrobot_eqs.acrobot_prediction(), env_eqs.ORDER_LATCH, "predict"
        )
        return []


#: The tasks whose equations are written out, and their perfect models.
PERFECT_MODELS: dict[str, type[Predictor]] = {
    **dict.fromkeys(cp_eqs.GYMNASIUM_IDS, PerfectCartPole),
    "Acrobot-v1": PerfectAcrobot,
}


def perfect_predictor(env_id: str) -> Predictor:
    """The perfect model of ``env_id`` (a key of :data:`PERFECT_MODELS`)."""
    return PERFECT_MODELS[env_id](env_id)


class LinearPredictor(Predictor):
    """``s' = s + W_s^T phi``, ``r = w_r^T phi`` with ``phi = (s, onehot(a), 1)``: a linear model.

    The weights are state variables (``lin_w_<k>`` of each obs neuron: column ``d`` of
    :attr:`LinearWorldModel.weights <nmbrl_brian.world_models.baselines.LinearWorldModel>`
    for its dimension; ``rew_w_<k>`` of the env group), so a fitted model is written in
    with :meth:`values_from` before a run, also through ``run_args``.
    """

    def __init__(self, obs_dim: int, n_actions: int):
        self.obs_dim, self.n_actions = obs_dim, n_actions
        self.n_features = obs_dim + n_actions + 1
        self.obs_equations = "".join(f"lin_w_{k} : 1\n" for k in range(self.n_features))
        self.env_equations = "".join(f"rew_w_{k} : 1\n" for k in range(self.n_features))

    def _linear(self, weight: str) -> str:
        feats = [f"s_{d}" for d in range(self.obs_dim)]
        feats += [f"int(action == {a})" for a in range(self.n_actions)] + ["1.0"]
        return " + ".join(f"{weight}_{k}*{f}" for k, f in enumerate(feats))

    def attach(self, dream: DreamPart) -> list:
        dream.operations["predict"] = dream.at_period_start(
            dream.obs_port, f"obs_next = obs + {self._linear('lin_w')}\n", env_eqs.ORDER_LATCH, "predict"
        )
        dream.operations["predict_reward"] = dream.at_period_start(
            dream.env, f"reward_next = {self._linear('rew_w')}\n", env_eqs.ORDER_LATCH, "predict_reward"
        )
        return []

    def values_from(self, model, dream: DreamPart) -> dict[tuple[Any, str], np.ndarray]:
        """Values that load a fitted :class:`~nmbrl_brian.world_models.baselines.LinearWorldModel`."""
        b, d = dream.n_copies, self.obs_dim
        weights = np.asarray(model.weights)  # (n_features, d + 2): Δs columns, reward, termination
        if weights.shape[0] != self.n_features or weights.shape[1] < d + 1:
            raise ValueError(f"model: expected weights with {self.n_features} rows, got {weights.shape}")
        values: dict[tuple[Any, str], np.ndarray] = {}
        for k in range(self.n_features):
            values[(dream.obs_port, f"lin_w_{k}")] = np.tile(weights[k, :d], b)
            values[(dream.env, f"rew_w_{k}")] = np.full(b, weights[k, d])
        return values


class DreamPart(EnvironmentPart):
    """An environment inside the network whose steps come from ``predictor``.

    Parameters
    ----------
    obs_dim, n_actions : int
        Observation dimensions and actions.
    predictor : Predictor
        The model.
    period : Quantity
        Network time of one environment step.
    horizon : int
        A dream episode is truncated after this many steps.
    termination : callable, optional
        A termination function with ``brian2_code()`` and ``namespace()``
        (:mod:`nmbrl_brian.world_models.termination`); None: the predictor's learned readout.
    reward : str, optional
        The task's reward rule as Brian2 code of ``failed`` and ``s_0, s_1, ...``
        (:meth:`~nmbrl_brian.world_models.termination.CartPoleTermination.reward_code`);
        None: the predictor's ``reward_next``.
    shaping : (str, float, float), optional
        ``(potential, k, gamma)``: a potential of the state as Brian2 code of ``s_0, s_1, ...``
        (:meth:`~nmbrl_brian.world_models.termination.AcrobotTermination.potential_code`), the scale
        and the agent's discount of the shaping term added to each dreamed reward
        (:func:`~nmbrl_brian.equations.dream.dream_env_step`). None: no shaping.
    n_copies : int
        Copies of the loop.
    starts_per_run : int
        Rows of the start table: at most this many dream episodes begin in one run.
    seed : int
        Seeds the choice of start states.
    bounds : (numpy.ndarray, numpy.ndarray), optional
        Lowest and highest value of each observation dimension (the observation space's); a
        predicted state is clipped to them. None: unbounded.
    prefix : str
        Object-name prefix.
    """

    def __init__(
        self,
        obs_dim: int,
        n_actions: int,
        predictor: Predictor,
        *,
        period: Quantity,
        horizon: int,
        termination=None,
        reward: str | None = None,
        shaping: tuple[str, float, float] | None = None,
        n_copies: int = 1,
        starts_per_run: int = 1000,
        seed: int = 0,
        bounds: tuple[np.ndarray, np.ndarray] | None = None,
        prefix: str = "dream",
    ):
        if termination is None and not predictor.learns_termination:
            raise ValueError("termination: give the task's rule, or a predictor that learns termination")
        self.predictor = predictor
        self.start_table = TimedArray(
            np.zeros((int(starts_per_run), n_copies * obs_dim)), dt=period, name=f"{prefix}_start_states"
        )
        namespace = {
            **predictor.namespace(),
            **(termination.namespace() if termination is not None else {}),
            self.start_table.name: self.start_table,
            "horizon": int(horizon),
            "obs_dim": int(obs_dim),
        }
        super().__init__(
            obs_dim,
            n_actions,
            period=period,
            n_copies=n_copies,
            prefix=prefix,
            state_equations=dream_eqs.DREAM_ENV_EQUATIONS
            + (dream_eqs.DREAM_SHAPING_EQUATIONS if shaping is not None else "")
            + dream_eqs.state_links(obs_dim)
            + predictor.env_equations,
            obs_equations=dream_eqs.DREAM_OBS_EQUATIONS
            + dream_eqs.state_links(obs_dim)
            + predictor.obs_equations,
            namespace=namespace,
        )
        self.horizon, self.seed = int(horizon), int(seed)
        b, d = n_copies, obs_dim
        copy_of_obs = np.repeat(np.arange(b), d)
        for k in range(d):
            setattr(self.env, f"s_{k}", linked_var(self.obs_port, "obs", index=np.arange(b) * d + k))
            setattr(self.obs_port, f"s_{k}", linked_var(self.obs_port, "obs", index=copy_of_obs * d + k))
        self.obs_port.reset_row = linked_var(self.env, "reset_row", index=copy_of_obs)
        low, high = bounds if bounds is not None else (np.full(d, -np.inf), np.full(d, np.inf))
        largest = np.finfo(float).max  # a finite stand-in for an unbounded dimension
        self.obs_port.obs_low = np.tile(np.clip(np.asarray(low, dtype=float), -largest, largest), b)
        self.obs_port.obs_high = np.tile(np.clip(np.asarray(high, dtype=float), -largest, largest), b)
        self.operations["step"] = self.at_period_start(
            self.obs_port, dream_eqs.dream_obs_step(self.start_table.name), env_eqs.ORDER_STEP, "step"
        )
        code = termination.brian2_code() if termination is not None else None
        potential = None
        if shaping is not None:
            potential, self.env.shaping_scale, self.env.shaping_gamma = shaping
        self.operations["observe"] = self.at_period_start(
            self.env, dream_eqs.dream_env_step(code, reward, potential), env_eqs.ORDER_OBSERVE, "observe"
        )
        self.objects += predictor.attach(self)
        self.start_states = np.zeros((1, d))

    def connect_agent(self, head, command=None) -> None:
        super().connect_agent(head, command)
        copy_of_obs = np.repeat(np.arange(self.n_copies), self.obs_dim)
        source, name = command if command is not None else (head, "command")
        self.obs_port.command = linked_var(source, name, index=copy_of_obs)
        self.obs_port.action = linked_var(head, "action", index=copy_of_obs)

    def set_start_states(self, states: np.ndarray) -> None:
        """The real states dream episodes start from (drawn uniformly, with replacement)."""
        states = np.asarray(states, dtype=float).reshape(-1, self.obs_dim)
        if len(states) == 0:
            raise ValueError("states: expected at least one real state to dream from")
        self.start_states = states

    def tables(self, value: ValueReader, n_periods: int) -> dict[TimedArray, np.ndarray]:
        resets = np.asarray(value(self.env, "resets_done"), dtype=int)
        rows = self.start_table.values.shape[0]
        table = np.empty((rows, self.n_copies * self.obs_dim))
        for c in range(self.n_copies):
            rng = seeding.dream_start_rng(self.seed, c, int(resets[c]))
            pick = rng.integers(len(self.start_states), size=rows)
            table[:, c * self.obs_dim : (c + 1) * self.obs_dim] = self.start_states[pick]
        return {self.start_table: table}
