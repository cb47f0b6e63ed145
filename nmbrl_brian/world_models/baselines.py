"""Non-spiking world models fitted on a :class:`TransitionDataset`: the baselines.

Both models predict, from a state :math:`s` and a discrete action :math:`a`, the
change of state :math:`\\Delta s = s' - s`, the reward and the probability that
:math:`s'` is terminal:

* :class:`LinearWorldModel` -- least squares on :math:`[s, \\mathrm{onehot}(a), 1]`.
* :class:`MLPWorldModel` -- a small dense tanh network in NumPy trained with Adam
  on the standardised :math:`\\Delta s` (mean squared error), the standardised reward
  (mean squared error) and the termination logit (binary cross-entropy).

Both derive from :class:`PredictiveWorldModel`, which turns a vectorised
``predict(obs, actions) -> (next_obs, reward, term_prob)`` into the
:class:`~nmbrl_brian.world_models.base.BaseWorldModel` step interface: ``reset``
draws the initial state from the real environment's initial-state distribution and
``step`` feeds the model its own predictions. A spiking world model plugs in the
same way: subclass :class:`PredictiveWorldModel` and implement :meth:`fit` and
:meth:`_predict`.
"""

from __future__ import annotations

import itertools
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Self

import gymnasium as gym
import numpy as np

from nmbrl_brian import seeding
from nmbrl_brian.errors import ConfigError
from nmbrl_brian.world_models.base import BaseWorldModel
from nmbrl_brian.world_models.dataset import Standardizer, TransitionDataset
from nmbrl_brian.world_models.termination import TerminationFn, termination_fn_for

__all__ = [
    "InitialStateSampler",
    "LinearModelConfig",
    "LinearWorldModel",
    "MLPModelConfig",
    "MLPWorldModel",
    "PredictiveWorldModel",
    "check_dataset",
    "env_initial_state_sampler",
]

InitialStateSampler = Callable[[int | None], np.ndarray]
"""``sampler(seed) -> initial observation (D,)``; the same seed gives the same state."""


def env_initial_state_sampler(env: BaseWorldModel) -> InitialStateSampler:
    """Use ``env.reset(seed=...)`` as the initial-state distribution.

    Parameters
    ----------
    env : BaseWorldModel
        Usually the real environment, an :class:`~nmbrl_brian.envs.EnvironmentWrapper`.

    Returns
    -------
    callable
        ``seed -> obs``.
    """

    def sample(seed: int | None) -> np.ndarray:
        obs, _ = env.reset(seed=seed)
        return np.asarray(obs)

    return sample


class PredictiveWorldModel(BaseWorldModel):
    """A learned model stepped by its own vectorised one-step prediction.

    Subclasses implement :meth:`fit` and :meth:`_predict`; this class supplies
    :meth:`predict` (which applies a known termination function when one is given),
    :meth:`reset` and :meth:`step`.

    Parameters
    ----------
    observation_space : gymnasium.spaces.Box
        1-D observation space. Stepped observations are clipped into it.
    action_space : gymnasium.spaces.Discrete
        Action space.
    initial_state_sampler : callable
        ``seed -> obs``; see :func:`env_initial_state_sampler`.
    termination_fn : callable, optional
        Known ``next_obs -> terminated``. When given it replaces the learned
        termination head in :meth:`predict` and :meth:`step`.
    termination_threshold : float
        :meth:`step` reports ``terminated`` when the termination probability exceeds this.
    """

    def __init__(
        self,
        observation_space: gym.spaces.Box,
        action_space: gym.spaces.Discrete,
        *,
        initial_state_sampler: InitialStateSampler,
        termination_fn: TerminationFn | None = None,
        termination_threshold: float = 0.5,
    ):
        if not (isinstance(observation_space, gym.spaces.Box) and len(observation_space.shape) == 1):
            raise ConfigError("observation_space", "a 1-D gymnasium Box", observation_space)
        if not isinstance(action_space, gym.spaces.Discrete):
            raise ConfigError("action_space", "a gymnasium Discrete space", action_space)
        if not 0.0 < termination_threshold < 1.0:
            raise ConfigError("termination_threshold", "a number in (0, 1)", termination_threshold)
        self.observation_space = observation_space
        self.action_space = action_space
        self.obs_dim = int(observation_space.shape[0])
        self.n_actions = int(action_space.n)
        self.initial_state_sampler = initial_state_sampler
        self.termination_fn = termination_fn
        self.termination_threshold = float(termination_threshold)
        self.fitted = False
        self._obs: np.ndarray | None = None

    @classmethod
    def for_env(cls, env_id: str = "CartPole-v1", *, use_termination_fn: bool = True, **kwargs: Any) -> Self:
        """Build a model with the spaces and initial states of a real environment.

        Parameters
        ----------
        env_id : str
            A gymnasium id accepted by :class:`~nmbrl_brian.envs.EnvironmentWrapper`.
        use_termination_fn : bool
            Use :func:`~nmbrl_brian.world_models.termination.termination_fn_for`
            ``(env_id)`` (if the environment has one) instead of the learned head.
        **kwargs
            Passed to the constructor (e.g. ``config=``).

        Returns
        -------
        PredictiveWorldModel
            An unfitted model.
        """
        from nmbrl_brian.envs.environment_wrapper import EnvironmentWrapper

        env = EnvironmentWrapper(env_id)
        model = cls(
            env.observation_space,
            env.action_space,
            initial_state_sampler=env_initial_state_sampler(env),
            termination_fn=termination_fn_for(env_id) if use_termination_fn else None,
            **kwargs,
        )
        model.env_id = env_id
        return model

    # ------------------------------------------------------------------ learning
    @abstractmethod
    def fit(self, dataset: TransitionDataset) -> PredictiveWorldModel:
        """Fit the model to ``dataset`` and return ``self``."""

    @abstractmethod
    def _predict(self, obs: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Learned prediction for validated float64 ``obs (N, D)`` and int ``actions (N,)``."""

    def predict(self, obs: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Predict one step for a batch of states and actions.

        Parameters
        ----------
        obs : numpy.ndarray
            States, shape ``(N, D)``.
        actions : numpy.ndarray
            Integer actions, shape ``(N,)``.

        Returns
        -------
        next_obs : numpy.ndarray
            Predicted next states, float64, shape ``(N, D)`` (not clipped).
        reward : numpy.ndarray
            Predicted rewards, shape ``(N,)``.
        term_prob : numpy.ndarray
            Probability that ``next_obs`` is terminal, shape ``(N,)``; 0 or 1 when a
            termination function is set.
        """
        if not self.fitted:
            raise RuntimeError(f"{type(self).__name__}: call fit(dataset) before predict()")
        obs = np.asarray(obs, dtype=np.float64)
        actions = np.asarray(actions).astype(np.int64).reshape(-1)
        if obs.ndim != 2 or obs.shape[1] != self.obs_dim or len(actions) != len(obs):
            raise ValueError(
                f"predict: expected obs of shape (N, {self.obs_dim}) and actions of shape (N,), "
                f"got {obs.shape} and {actions.shape}"
            )
        if np.any((actions < 0) | (actions >= self.n_actions)):
            raise ValueError(f"predict: actions must lie in [0, {self.n_actions}), got {np.unique(actions)}")
        next_obs, reward, term_prob = self._predict(obs, actions)
        if self.termination_fn is not None:
            term_prob = np.asarray(self.termination_fn(next_obs), dtype=np.float64)
        return next_obs, reward, term_prob

    def _one_hot(self, actions: np.ndarray) -> np.ndarray:
        return np.eye(self.n_actions)[actions]

    # ------------------------------------------------------------------ BaseWorldModel
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start an episode from the real initial-state distribution.

        Parameters
        ----------
        seed : int, optional
            Passed to the initial-state sampler.
        options : dict, optional
            ``{"obs": array}`` starts from that state instead (e.g. a real state to
            branch model rollouts from, as in MBPO).

        Returns
        -------
        obs : numpy.ndarray
            The initial observation.
        info : dict
            Empty.
        """
        if options and "obs" in options:
            obs = np.asarray(options["obs"], dtype=self.observation_space.dtype).reshape(self.obs_dim)
        else:
            obs = np.asarray(self.initial_state_sampler(seed), dtype=self.observation_space.dtype)
        self._obs = obs
        return obs.copy(), {}

    def step(self, action: int):
        if self._obs is None:
            raise RuntimeError(f"{type(self).__name__}: call reset() before step()")
        next_obs, reward, term_prob = self.predict(self._obs[None, :], np.array([int(action)]))
        space = self.observation_space
        obs = np.clip(next_obs[0], space.low, space.high).astype(space.dtype)
        self._obs = obs
        terminated = bool(term_prob[0] > self.termination_threshold)
        return obs.copy(), float(reward[0]), terminated, False, {"term_prob": float(term_prob[0])}


# ---------------------------------------------------------------------- linear model
@dataclass(frozen=True)
class LinearModelConfig:
    """Least-squares fit of ``[delta s, r, terminated]`` on ``[s, onehot(a), 1]``."""

    ridge: float = 0.0
    """L2 penalty on the weights; 0 gives the minimum-norm least-squares solution."""

    def __post_init__(self) -> None:
        if not self.ridge >= 0.0:
            raise ConfigError("linear.ridge", "a number >= 0", self.ridge)


class LinearWorldModel(PredictiveWorldModel):
    """Linear least squares: ``[delta s, r, p_term] = W^T [s, onehot(a), 1]``.

    The termination output is a linear probability, clipped to [0, 1].

    Parameters
    ----------
    observation_space, action_space, initial_state_sampler, termination_fn, termination_threshold
        See :class:`PredictiveWorldModel`.
    config : LinearModelConfig, optional
        Fit settings.
    """

    def __init__(self, observation_space, action_space, *, config: LinearModelConfig | None = None, **kwargs):
        super().__init__(observation_space, action_space, **kwargs)
        self.config = config or LinearModelConfig()
        self.weights: np.ndarray | None = None

    def _features(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        return np.hstack([obs, self._one_hot(actions), np.ones((len(obs), 1))])

    def fit(self, dataset: TransitionDataset) -> LinearWorldModel:
        """Solve the least-squares problem on all rows of ``dataset``; returns ``self``."""
        check_dataset(dataset, self.obs_dim)
        phi = self._features(dataset.obs, dataset.action)
        y = np.hstack([dataset.delta, dataset.reward[:, None], dataset.terminated[:, None].astype(float)])
        if self.config.ridge > 0:
            a = phi.T @ phi + self.config.ridge * np.eye(phi.shape[1])
            self.weights = np.linalg.solve(a, phi.T @ y)
        else:
            self.weights = np.linalg.lstsq(phi, y, rcond=None)[0]
        self.fitted = True
        return self

    def _predict(self, obs, actions):
        out = self._features(obs, actions) @ self.weights
        d = self.obs_dim
        return obs + out[:, :d], out[:, d], np.clip(out[:, d + 1], 0.0, 1.0)


# ---------------------------------------------------------------------- MLP model
@dataclass(frozen=True)
class MLPModelConfig:
    """A dense tanh network trained with Adam on minibatches."""

    hidden_sizes: tuple[int, ...] = (64, 64)
    """Widths of the hidden layers (one or two layers is typical)."""
    learning_rate: float = 3e-3
    """Initial Adam step size."""
    final_learning_rate_fraction: float = 0.05
    """The step size decays linearly to this fraction of ``learning_rate`` by the last epoch."""
    batch_size: int = 64
    """Transitions per minibatch."""
    epochs: int = 150
    """Passes over the training data."""
    reward_weight: float = 1.0
    """Weight of the (standardised) reward MSE in the loss."""
    termination_weight: float = 1.0
    """Weight of the termination binary cross-entropy in the loss."""
    weight_decay: float = 0.0
    """L2 penalty on the weight matrices (not the biases)."""
    seed: int = 0
    """Seed of the weight initialisation and minibatch order."""

    def __post_init__(self) -> None:
        if len(self.hidden_sizes) < 1 or any(int(h) < 1 for h in self.hidden_sizes):
            raise ConfigError("mlp.hidden_sizes", "one or more positive layer widths", self.hidden_sizes)
        if not self.learning_rate > 0:
            raise ConfigError("mlp.learning_rate", "a number > 0", self.learning_rate)
        if not 0 < self.final_learning_rate_fraction <= 1:
            raise ConfigError(
                "mlp.final_learning_rate_fraction", "a number in (0, 1]", self.final_learning_rate_fraction
            )
        for name in ("batch_size", "epochs"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"mlp.{name}", "an integer >= 1", getattr(self, name))
        for name in ("reward_weight", "termination_weight", "weight_decay"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"mlp.{name}", "a number >= 0", getattr(self, name))


class MLPWorldModel(PredictiveWorldModel):
    """A NumPy MLP predicting standardised ``delta s``, reward and a termination logit.

    Inputs are the standardised state and the one-hot action. The loss per row is
    ``mean_d (o_d - z_d)^2 + w_r (o_r - z_r)^2 + w_t BCE(sigmoid(o_t), terminated)``
    with ``z`` the standardised targets.

    Parameters
    ----------
    observation_space, action_space, initial_state_sampler, termination_fn, termination_threshold
        See :class:`PredictiveWorldModel`.
    config : MLPModelConfig, optional
        Architecture and training settings.

    Attributes
    ----------
    loss_history : list of float
        Mean training loss of every epoch of the last :meth:`fit`.
    """

    def __init__(self, observation_space, action_space, *, config: MLPModelConfig | None = None, **kwargs):
        super().__init__(observation_space, action_space, **kwargs)
        self.config = config or MLPModelConfig()
        self.params: list[np.ndarray] = []
        self.loss_history: list[float] = []

    def _inputs(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        return np.hstack([self.obs_scaler.transform(obs), self._one_hot(actions)])

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        acts = [x]
        h = x
        n_layers = len(self.params) // 2
        for i in range(n_layers):
            w, b = self.params[2 * i], self.params[2 * i + 1]
            h = h @ w + b
            if i < n_layers - 1:
                h = np.tanh(h)
                acts.append(h)
        return h, acts

    def fit(self, dataset: TransitionDataset) -> MLPWorldModel:
        """Train from a fresh initialisation on all rows of ``dataset``; returns ``self``."""
        check_dataset(dataset, self.obs_dim)
        cfg = self.config
        rng = seeding.network_rng(cfg.seed)
        d = self.obs_dim
        self.obs_scaler = dataset.obs_standardizer()
        self.delta_scaler = dataset.delta_standardizer()
        self.reward_scaler = Standardizer.fit(dataset.reward)
        x = self._inputs(dataset.obs, dataset.action)
        z = np.hstack(
            [
                self.delta_scaler.transform(dataset.delta),
                self.reward_scaler.transform(dataset.reward)[:, None],
            ]
        )
        term = dataset.terminated.astype(np.float64)

        sizes = [x.shape[1], *map(int, cfg.hidden_sizes), d + 2]
        self.params = []
        for n_in, n_out in itertools.pairwise(sizes):
            limit = np.sqrt(6.0 / (n_in + n_out))  # Glorot uniform
            self.params += [rng.uniform(-limit, limit, size=(n_in, n_out)), np.zeros(n_out)]
        m = [np.zeros_like(p) for p in self.params]
        v = [np.zeros_like(p) for p in self.params]
        beta1, beta2, eps = 0.9, 0.999, 1e-8
        out_weight = np.r_[np.full(d, 1.0 / d), cfg.reward_weight]

        n = len(x)
        bs = min(int(cfg.batch_size), n)
        n_batches = int(np.ceil(n / bs))
        total_steps = cfg.epochs * n_batches
        step = 0
        self.loss_history = []
        for _ in range(cfg.epochs):
            order = rng.permutation(n)
            epoch_loss = 0.0
            for j in range(n_batches):
                idx = order[j * bs : (j + 1) * bs]
                out, acts = self._forward(x[idx])
                # Loss and its gradient with respect to the outputs.
                err = out[:, : d + 1] - z[idx]
                logit, t = out[:, d + 1], term[idx]
                bce = np.logaddexp(0.0, logit) - t * logit
                loss = (err**2 @ out_weight) + cfg.termination_weight * bce
                epoch_loss += float(loss.sum())
                g = np.empty_like(out)
                g[:, : d + 1] = 2.0 * err * out_weight
                g[:, d + 1] = cfg.termination_weight * (_sigmoid(logit) - t)
                g /= len(idx)
                grads = self._backward(g, acts)
                # Adam with linear learning-rate decay.
                step += 1
                frac = 1.0 - (1.0 - cfg.final_learning_rate_fraction) * (step - 1) / max(total_steps - 1, 1)
                lr = cfg.learning_rate * frac * np.sqrt(1 - beta2**step) / (1 - beta1**step)
                for k, (p, gk) in enumerate(zip(self.params, grads)):
                    if cfg.weight_decay and k % 2 == 0:
                        gk = gk + cfg.weight_decay * p
                    m[k] = beta1 * m[k] + (1 - beta1) * gk
                    v[k] = beta2 * v[k] + (1 - beta2) * gk * gk
                    p -= lr * m[k] / (np.sqrt(v[k]) + eps)
            self.loss_history.append(epoch_loss / n)
        self.fitted = True
        return self

    def _backward(self, g: np.ndarray, acts: list[np.ndarray]) -> list[np.ndarray]:
        n_layers = len(self.params) // 2
        grads: list[np.ndarray] = [None] * len(self.params)  # type: ignore[list-item]
        for i in reversed(range(n_layers)):
            a_in = acts[i]
            grads[2 * i] = a_in.T @ g
            grads[2 * i + 1] = g.sum(axis=0)
            if i > 0:
                g = (g @ self.params[2 * i].T) * (1.0 - a_in**2)  # tanh' = 1 - tanh^2
        return grads

    def _predict(self, obs, actions):
        out, _ = self._forward(self._inputs(obs, actions))
        d = self.obs_dim
        delta = self.delta_scaler.inverse(out[:, :d])
        reward = self.reward_scaler.inverse(out[:, d])
        return obs + delta, reward, _sigmoid(out[:, d + 1])


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def check_dataset(dataset: TransitionDataset, obs_dim: int) -> None:
    """Refuse an empty dataset or one whose observations are not ``obs_dim`` wide.

    Raises
    ------
    ConfigError
        Naming ``dataset``.
    """
    if len(dataset) == 0:
        raise ConfigError("dataset", "a non-empty TransitionDataset", 0)
    if dataset.obs_dim != obs_dim:
        raise ConfigError("dataset", f"transitions with {obs_dim}-dimensional observations", dataset.obs_dim)
