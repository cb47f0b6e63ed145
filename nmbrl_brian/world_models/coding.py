"""The input code of the spiking world model: what current each input neuron gets for ``(s, a)``.

One set of parameters per input neuron (:class:`InputCode`) defines the code; the maths is
:func:`nmbrl_brian.equations.world_model.input_encode` (Brian2 code, evaluated by the dream's
predictor from the dream's state) and :func:`encode` here evaluates the very same expression
in NumPy, term for term, for the learner's tables (a test checks that both agree exactly).

Input neurons, in order: the Gaussian population code of each state dimension
(``neurons_per_dim`` each), the signed whitened state (``state_current > 0``: one per
dimension), the action populations (``action_neurons_per_action`` each), the bias neurons.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nmbrl_brian.equations import world_model as wm_eqs
from nmbrl_brian.equations.world_model import WorldModelConfig


@dataclass(frozen=True)
class CodeLayout:
    """What each input neuron encodes (known from the config alone)."""

    kind: np.ndarray
    """:data:`~nmbrl_brian.equations.world_model.POPULATION`, ``STATE``, ``ACTION`` or ``BIAS``."""
    dim: np.ndarray
    """Population neurons: the state dimension they encode (else 0)."""
    action: np.ndarray
    """Action neurons: their action (else 0)."""

    @property
    def n_inputs(self) -> int:
        """Input neurons."""
        return len(self.kind)


def code_layout(config: WorldModelConfig, obs_dim: int, n_actions: int) -> CodeLayout:
    """The :class:`CodeLayout` of a model with this config, state size and number of actions."""
    k, n_pop = config.encoding.neurons_per_dim, obs_dim * config.encoding.neurons_per_dim
    n_state = obs_dim if config.state_current > 0 else 0
    k_act = config.action_neurons_per_action
    kind = np.concatenate(
        [
            np.full(n_pop, wm_eqs.POPULATION),
            np.full(n_state, wm_eqs.STATE),
            np.full(n_actions * k_act, wm_eqs.ACTION),
            np.full(config.bias_neurons, wm_eqs.BIAS),
        ]
    ).astype(int)
    dim = np.zeros(len(kind), dtype=int)
    dim[:n_pop] = np.repeat(np.arange(obs_dim), k)
    action = np.zeros(len(kind), dtype=int)
    action[kind == wm_eqs.ACTION] = np.repeat(np.arange(n_actions), k_act)
    return CodeLayout(kind=kind, dim=dim, action=action)


@dataclass(frozen=True)
class InputCode:
    """Every parameter of the fitted code, per input neuron (the variables of the predictor's inputs)."""

    layout: CodeLayout
    center: np.ndarray
    """Population neurons: preferred value (others 0)."""
    width: np.ndarray
    """Population neurons: tuning width (others 1)."""
    low: np.ndarray
    """Population neurons: the encoded range (values are clipped to it; others 0 .. 1)."""
    high: np.ndarray
    rows: np.ndarray
    """``(obs_dim, n_inputs)``: signed state neurons: column of the whitening matrix ``M`` (others 0)."""
    mean: np.ndarray
    """``(obs_dim,)``: the state mean ``m`` of the signed code."""
    constants: dict
    """``input_current``, ``state_current``, ``action_current``, ``bias_current``, ``tuning_cutoff``."""


def code_constants(config: WorldModelConfig) -> dict[str, float]:
    """The currents and cut-off of the code (namespace constants of the Brian2 code)."""
    return {
        "input_current": config.input_current,
        "state_current": config.state_current,
        "action_current": config.action_current,
        "bias_current": config.bias_current,
        "tuning_cutoff": config.tuning_cutoff,
    }


def input_code(model) -> InputCode:
    """The fitted code of ``model`` (an :class:`~nmbrl_brian.world_models.snn_world_model.SNNWorldModel`
    that has seen data: its encoder and signed state code)."""
    if model.encoder is None:
        raise RuntimeError(f"{type(model).__name__}: call fit(dataset) or train_epoch(dataset) first")
    cfg, d = model.config, model.obs_dim
    layout = code_layout(cfg, d, model.n_actions)
    n, k = layout.n_inputs, cfg.encoding.neurons_per_dim
    n_pop, enc = d * k, model.encoder
    center, width, low, high = np.zeros(n), np.ones(n), np.zeros(n), np.ones(n)
    center[:n_pop] = enc.centers.ravel()
    width[:n_pop] = np.repeat(enc.sigma, k)
    low[:n_pop], high[:n_pop] = np.repeat(enc.low, k), np.repeat(enc.high, k)
    mean, matrix = model.state_code
    rows = np.zeros((d, n))
    n_state = int(np.sum(layout.kind == wm_eqs.STATE))
    rows[:, n_pop : n_pop + n_state] = np.asarray(matrix, dtype=float)[:, :n_state]
    return InputCode(
        layout=layout,
        center=center,
        width=width,
        low=low,
        high=high,
        rows=rows,
        mean=np.asarray(mean, dtype=float).copy(),
        constants=code_constants(cfg),
    )


def encode(code: InputCode, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """Input currents of each ``(s, a)`` pair, shape ``(N, n_inputs)``: the expression of
    :func:`~nmbrl_brian.equations.world_model.input_encode` evaluated in NumPy, in the same order.

    Parameters
    ----------
    code : InputCode
        The fitted code.
    obs : numpy.ndarray
        States, shape ``(N, D)``.
    actions : numpy.ndarray
        Integer actions, shape ``(N,)``.
    """
    lay, c = code.layout, code.constants
    d = len(code.mean)
    obs = np.asarray(obs, dtype=np.float64).reshape(-1, d)
    actions = np.asarray(actions).astype(np.int64).reshape(-1, 1)
    own = obs[:, lay.dim]
    tuning = np.exp(-0.5 * ((np.clip(own, code.low, code.high) - code.center) / code.width) ** 2)
    population = c["input_current"] * tuning * (tuning >= c["tuning_cutoff"]).astype(int)
    state = code.rows[0] * (obs[:, 0:1] - code.mean[0])
    for k in range(1, d):
        state = state + code.rows[k] * (obs[:, k : k + 1] - code.mean[k])
    kind = lay.kind
    return (
        (kind == wm_eqs.POPULATION).astype(int) * population
        + (kind == wm_eqs.STATE).astype(int) * c["state_current"] * state
        + (kind == wm_eqs.ACTION).astype(int) * c["action_current"] * (lay.action == actions).astype(int)
        + (kind == wm_eqs.BIAS).astype(int) * c["bias_current"]
    )


def direct_connections(layout: CodeLayout, n_outputs: int, obs_dim: int) -> np.ndarray:
    """Which inputs reach which readouts directly, shape ``(n_inputs, n_outputs)``.

    The signed state, action and bias neurons (every input but the population code) reach the
    readouts of Δs and reward: the near-linear part of the dynamics. The termination readout, a
    threshold function of the state, reads only the spiking layer.
    """
    mask = np.zeros((layout.n_inputs, n_outputs), dtype=bool)
    mask[layout.kind != wm_eqs.POPULATION, : obs_dim + 1] = True
    return mask


def fit_state_code(obs: np.ndarray, *, whiten: bool) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``m`` and matrix ``M`` of the signed state code ``(s - m) @ M``.

    ``whiten=False``: ``M = diag(1/std)`` (standardised); ``True``: ``M = C^(-1/2)`` (ZCA
    whitening with the covariance ``C`` of ``obs``: unit variance and no correlations, so every
    direction of the code is learned at the same speed).
    """
    mean = obs.mean(axis=0)
    if not whiten:
        std = obs.std(axis=0)
        return mean, np.diag(1.0 / np.where(std > 1e-8, std, 1.0))
    values, vectors = np.linalg.eigh(np.cov(obs, rowvar=False, bias=True))
    values = np.maximum(values, 1e-12 + 1e-8 * values.max())
    return mean, (vectors / np.sqrt(values)) @ vectors.T
