"""The dense (NumPy, non-spiking) online actor-critic with TD(lambda) eligibility traces.

This is the non-spiking twin of the spiking e-prop agent: the same encoded input,
an optional hidden layer shared by actor and critic, a softmax policy readout with
one logit per action and a scalar value readout. It learns online, one transition
at a time, with the episodic actor-critic with eligibility traces of Sutton & Barto
(2nd ed., section 13.5):

.. math::

    \\delta_t &= r_{t+1} + \\gamma\\,V(s_{t+1})\\,(1 - \\mathrm{terminated}) - V(s_t) \\\\
    z^V &\\leftarrow \\gamma\\lambda\\,z^V + \\nabla_\\theta V(s_t) \\\\
    z^\\pi &\\leftarrow \\gamma\\lambda\\,z^\\pi + \\nabla_\\theta \\log\\pi(a_t \\mid s_t) \\\\
    \\theta &\\leftarrow \\theta + \\alpha_V\\,\\delta_t\\,z^V + \\alpha_\\pi\\,\\delta_t\\,z^\\pi

All parameters live in one flat vector :math:`\\theta`; the critic readout only has
value gradients, the actor readout only policy gradients and the shared hidden layer
(if any) both. Choices made here:

* The :math:`I = \\gamma^t` factor of the book's pseudocode is left out (as in most
  practical actor-critics): late steps of a long episode would otherwise learn
  :math:`\\gamma^{500} \\approx 0.007` times as fast as early ones.
* A terminated transition does not bootstrap; a truncated one (time limit)
  bootstraps from ``next_obs``. Both end the episode, so the traces are cleared
  after them and again in :meth:`DenseActorCritic.begin_episode`.
* Readout weights start at zero (uniform policy, zero value); hidden weights are
  Gaussian with standard deviation ``init_scale``, so a unit-norm feature vector
  gives pre-activations of about that standard deviation.
* Population-coded features can be divided by their L2 norm at the centre of the
  encoded range (``dense.normalize_features``), so the step sizes do not depend on
  ``encoding.neurons_per_dim`` and ``encoding.width``. For the same reason the
  hidden activity is :math:`h = \\tanh(W x + b)/\\sqrt{H}` (norm at most 1).
* Tuned for CartPole-v1 (``configs/cartpole_dense.toml``): the linear agent
  (``hidden_units = 0``) on 10 neurons per dimension reaches a greedy mean return
  of 475 within 5k-30k steps for seeds 0-4. A hidden layer needs the TD error
  clipped (``td_error_clip = 1``) and learns more slowly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from nmbrl_brian import seeding
from nmbrl_brian.agents.base import BaseAgent
from nmbrl_brian.encoding import PopulationEncoder
from nmbrl_brian.energy import OperationCounts
from nmbrl_brian.envs.env_loop import EnvLoop
from nmbrl_brian.envs.environment_wrapper import check_spaces
from nmbrl_brian.equations.actor_critic import AgentConfig
from nmbrl_brian.equations.population_code import EncodingConfig
from nmbrl_brian.errors import ConfigError, DivergenceError


@dataclass(frozen=True)
class DenseNetworkConfig:
    """The dense baseline's network: config section ``[dense]``."""

    hidden_units: int = 0
    """Units of the tanh hidden layer shared by actor and critic (0: linear readouts of the features)."""
    init_scale: float = 1.0
    """Standard deviation of the initial hidden weights (readouts start at zero)."""
    normalize_features: bool = True
    """Divide population-coded features by their expected L2 norm (raw features are left as they are)."""
    td_error_clip: float = 0.0
    """Clip the TD error to [-td_error_clip, td_error_clip] before the update (0: no clipping)."""

    def __post_init__(self) -> None:
        if (
            isinstance(self.hidden_units, bool)
            or not isinstance(self.hidden_units, int)
            or self.hidden_units < 0
        ):
            raise ConfigError("dense.hidden_units", "an integer >= 0", self.hidden_units)
        if not (math.isfinite(self.init_scale) and self.init_scale > 0):
            raise ConfigError("dense.init_scale", "a finite number > 0", self.init_scale)
        if not isinstance(self.normalize_features, bool):
            raise ConfigError("dense.normalize_features", "true or false", self.normalize_features)
        if not (math.isfinite(self.td_error_clip) and self.td_error_clip >= 0):
            raise ConfigError(
                "dense.td_error_clip", "a finite number >= 0 (0 turns clipping off)", self.td_error_clip
            )


def expected_feature_norm(encoder: PopulationEncoder) -> float:
    """L2 norm of the population code of the centre of the encoded range (1.0 for raw).

    Each dimension's squared responses sum to about :math:`\\sqrt{\\pi}\\,w` for
    any value well inside the range, so this is the typical norm of a feature vector.
    """
    if encoder.config.kind != "population":
        return 1.0
    centre = 0.5 * (encoder.low + encoder.high)
    return float(np.linalg.norm(encoder(centre)))


class DenseActorCritic(BaseAgent):
    """Online actor-critic with TD(lambda) eligibility traces in NumPy.

    Parameters
    ----------
    observation_space : gymnasium.spaces.Box
        1-D observation space of ``D`` dimensions.
    action_space : gymnasium.spaces.Discrete
        ``A`` actions.
    agent : AgentConfig
        Discount, trace decay and step sizes.
    encoding : EncodingConfig
        How observations become the ``N``-dimensional feature vector.
    dense : DenseNetworkConfig
        Hidden layer size, initialisation, feature normalisation, TD-error clipping.
    seed : int
        Seeds the agent's own :class:`numpy.random.Generator` (initial weights and
        action sampling).

    Attributes
    ----------
    params : dict of str to numpy.ndarray
        Writable views into the flat parameter vector: ``hidden_w`` (H, N) and
        ``hidden_b`` (H,) if ``hidden_units > 0``, ``critic_w`` (M,), ``critic_b`` (1,),
        ``actor_w`` (A, M), ``actor_b`` (A,), with ``M = H`` or ``M = N``.
    critic_traces, actor_traces : dict of str to numpy.ndarray
        The eligibility traces z^V and z^pi, as views shaped like ``params``.
    steps : int
        Transitions learned from (:meth:`observe` calls).
    episodes : int
        Episodes ended while learning.
    """

    name = "dense_actor_critic"

    def __init__(
        self,
        observation_space: gym.Space,
        action_space: gym.Space,
        *,
        agent: AgentConfig,
        encoding: EncodingConfig,
        dense: DenseNetworkConfig,
        seed: int,
    ):
        check_spaces(observation_space, action_space)
        self.agent_config = agent
        self.dense_config = dense
        self.encoder = PopulationEncoder(encoding, observation_space.shape[0])
        self.feature_scale = 1.0 / expected_feature_norm(self.encoder) if dense.normalize_features else 1.0
        self.n_actions = int(action_space.n)
        self.rng = seeding.network_rng(seed)
        n_in, n_hidden = self.encoder.size, dense.hidden_units
        n_mid = n_hidden if n_hidden > 0 else n_in
        shapes = {}
        if n_hidden > 0:
            shapes.update(hidden_w=(n_hidden, n_in), hidden_b=(n_hidden,))
        shapes.update(
            critic_w=(n_mid,), critic_b=(1,), actor_w=(self.n_actions, n_mid), actor_b=(self.n_actions,)
        )
        size = sum(int(np.prod(s)) for s in shapes.values())
        self.theta = np.zeros(size)  # all parameters, flat
        self.trace_critic = np.zeros(size)  # z^V
        self.trace_actor = np.zeros(size)  # z^pi
        self._grad = np.zeros(size)  # scratch buffer for one gradient
        self.params = self._views(self.theta, shapes)
        self.critic_traces = self._views(self.trace_critic, shapes)
        self.actor_traces = self._views(self.trace_actor, shapes)
        self._grad_views = self._views(self._grad, shapes)
        self.hidden_scale = 1.0 / np.sqrt(n_hidden) if n_hidden > 0 else 1.0
        if n_hidden > 0:
            self.params["hidden_w"][:] = self.rng.normal(0.0, dense.init_scale, size=(n_hidden, n_in))
        self.steps = 0
        self.episodes = 0
        self.forward_passes = 0  # for operation counts
        self.encodings = 0
        self._feature_key: tuple[str, bytes] | None = None
        self._feature_value = np.zeros(n_in)
        # the readouts and TD error of the latest learning step (for divergence checks)
        self.last_value, self.last_logits, self.last_td_error = 0.0, np.zeros(self.n_actions), 0.0

    @staticmethod
    def _views(flat: np.ndarray, shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
        views, start = {}, 0
        for key, shape in shapes.items():
            n = int(np.prod(shape))
            views[key] = flat[start : start + n].reshape(shape)
            start += n
        return views

    # ----------------------------------------------------------------------------------
    def features(self, obs: np.ndarray) -> np.ndarray:
        """Encoded (and possibly normalised) features of ``obs``, shape (N,).

        The last result is cached by the observation's bytes: a step encodes
        ``next_obs`` once for the TD target and reuses it for the next action.
        """
        obs = np.asarray(obs)
        key = (obs.dtype.str, obs.tobytes())
        if key != self._feature_key:
            self.encodings += 1
            value = self.encoder(obs) * self.feature_scale
            value.flags.writeable = False  # shared by the cache
            self._feature_key, self._feature_value = key, value
        return self._feature_value

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
        """Hidden activity (M,), value V(s) and action logits (A,) for features ``x``."""
        p = self.params
        self.forward_passes += 1
        h = self.hidden_scale * np.tanh(p["hidden_w"] @ x + p["hidden_b"]) if "hidden_w" in p else x
        value = float(p["critic_w"] @ h + p["critic_b"][0])
        logits = p["actor_w"] @ h + p["actor_b"]
        return h, value, logits

    def value(self, obs: np.ndarray) -> float:
        """The critic's estimate V(obs), in units of return."""
        return self._forward(self.features(obs))[1]

    def policy(self, obs: np.ndarray) -> np.ndarray:
        """Action probabilities pi(. | obs), shape (A,)."""
        return _softmax(self._forward(self.features(obs))[2])

    def act(self, obs: np.ndarray, *, explore: bool = True) -> int:
        logits = self._forward(self.features(obs))[2]
        if not explore:
            return int(np.argmax(logits))
        cdf = np.cumsum(_softmax(logits))
        return int(min(np.searchsorted(cdf, self.rng.random() * cdf[-1], side="right"), self.n_actions - 1))

    def interact(
        self,
        loop: EnvLoop,
        *,
        max_steps: int | None = None,
        max_episodes: int | None = None,
        explore: bool = True,
        learn: bool = True,
    ) -> None:
        """A Python loop over :meth:`act`, ``loop.step`` and (``learn``) :meth:`observe`, with
        :meth:`begin_episode` at every episode start; see :meth:`BaseAgent.interact`."""
        steps = 0
        episodes_at_start = loop.episodes
        while (max_steps is None or steps < max_steps) and (
            max_episodes is None or loop.episodes - episodes_at_start < max_episodes
        ):
            if loop.at_episode_start:
                self.begin_episode(loop.obs)
            obs = loop.obs
            action = self.act(obs, explore=explore)
            t = loop.step(action)
            if learn:
                self.observe(obs, action, t.reward, t.next_obs, t.terminated, t.truncated)
            steps += 1

    def begin_episode(self, obs: np.ndarray) -> None:
        """Clear the eligibility traces (called with the first observation of every episode)."""
        self.trace_critic.fill(0.0)
        self.trace_actor.fill(0.0)

    def observe(
        self,
        obs: np.ndarray,
        action: int,
        reward: float,
        next_obs: np.ndarray,
        terminated: bool,
        truncated: bool,
    ) -> None:
        """Learn from one transition: TD(lambda) actor and critic updates (see the module docstring).

        ``terminated``: the target is ``reward`` alone; ``truncated`` (a time limit):
        bootstrap from ``next_obs``.
        """
        cfg = self.agent_config
        x = self.features(obs)
        h, value, logits = self._forward(x)
        decay = cfg.gamma * cfg.trace_decay
        # z^V <- gamma lambda z^V + grad V(s)
        self._value_gradient(x, h)
        self.trace_critic *= decay
        self.trace_critic += self._grad
        # z^pi <- gamma lambda z^pi + grad log pi(a|s)
        self._log_policy_gradient(x, h, logits, action)
        self.trace_actor *= decay
        self.trace_actor += self._grad
        # TD error: no bootstrap from a terminal state; a time limit still bootstraps
        next_value = 0.0 if terminated else self.value(next_obs)
        delta = reward + cfg.gamma * next_value - value
        self.last_value, self.last_logits, self.last_td_error = value, logits, delta
        if not math.isfinite(delta):  # diverged: stop before the update spreads it to every weight
            raise DivergenceError("td_error", delta)
        clip = self.dense_config.td_error_clip
        if clip > 0:
            delta = min(max(delta, -clip), clip)
        self.theta += (cfg.critic_lr * delta) * self.trace_critic
        self.theta += (cfg.actor_lr * delta) * self.trace_actor
        self.steps += 1
        if terminated or truncated:
            self.episodes += 1
            self.begin_episode(next_obs)

    def _hidden_slope(self, h: np.ndarray) -> np.ndarray:
        """d h / d (pre-activation) for ``h = c tanh(u)``: ``c (1 - (h / c)^2)``."""
        c = self.hidden_scale
        return c * (1.0 - (h / c) ** 2)

    def _value_gradient(self, x: np.ndarray, h: np.ndarray) -> None:
        """Write grad_theta V(s) into ``self._grad``."""
        g, p = self._grad_views, self.params
        self._grad.fill(0.0)
        g["critic_w"][:] = h
        g["critic_b"][0] = 1.0
        if "hidden_w" in p:
            dh = p["critic_w"] * self._hidden_slope(h)
            np.outer(dh, x, out=g["hidden_w"])
            g["hidden_b"][:] = dh

    def _log_policy_gradient(self, x: np.ndarray, h: np.ndarray, logits: np.ndarray, action: int) -> None:
        """Write grad_theta log pi(action | s) into ``self._grad``."""
        g, p = self._grad_views, self.params
        self._grad.fill(0.0)
        dlogits = -_softmax(logits)
        dlogits[action] += 1.0  # d log softmax_a / d logits = onehot(a) - pi
        np.outer(dlogits, h, out=g["actor_w"])
        g["actor_b"][:] = dlogits
        if "hidden_w" in p:
            dh = (p["actor_w"].T @ dlogits) * self._hidden_slope(h)
            np.outer(dh, x, out=g["hidden_w"])
            g["hidden_b"][:] = dh

    # ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "theta": self.theta.copy(),
            "trace_critic": self.trace_critic.copy(),
            "trace_actor": self.trace_actor.copy(),
            "rng": self.rng.bit_generator.state,
            "steps": self.steps,
            "episodes": self.episodes,
            "forward_passes": self.forward_passes,
            "encodings": self.encodings,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key in ("theta", "trace_critic", "trace_actor"):
            value = np.asarray(state[key], dtype=float)
            if value.shape != self.theta.shape:
                raise ValueError(f"{key}: expected shape {self.theta.shape}, got {value.shape}")
            np.copyto(getattr(self, key), value)  # in place: keeps the params views valid
        self.rng.bit_generator.state = state["rng"]
        self.steps = int(state["steps"])
        self.episodes = int(state["episodes"])
        self.forward_passes = int(state.get("forward_passes", 0))
        self.encodings = int(state.get("encodings", 0))

    def finite_values(self) -> dict[str, Any]:
        """Weights, eligibility traces, and the readouts and TD error of the latest learning step."""
        return {
            **self.params,
            "trace_critic": self.trace_critic,
            "trace_actor": self.trace_actor,
            "value": self.last_value,
            "logits": self.last_logits,
            "td_error": self.last_td_error,
        }

    def operation_counts(self) -> OperationCounts:
        """Multiply-accumulates so far, for energy accounting (:mod:`nmbrl_brian.energy`).

        A forward pass costs one MAC per weight; encoding costs one per feature; each
        learning step adds about six parameter-sized passes (two gradients, two trace
        updates, two weight updates).
        """
        p = self.params
        forward = sum(p[k].size for k in ("hidden_w", "critic_w", "actor_w") if k in p)
        macs = (
            self.forward_passes * forward
            + self.encodings * self.encoder.size
            + self.steps * 6 * self.theta.size
        )
        return OperationCounts(macs=int(macs), weight_updates=int(self.steps * self.theta.size))


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max())
    return e / e.sum()
