"""How much of Acrobot's dynamics a layer of fixed spiking neurons can express: an upper bound.

The world model's spiking layer, emulated in NumPy with its own random weights (the equations of
:mod:`nmbrl_brian.equations.eprop_neurons` for LIF neurons with current input held over a period,
no learning): each ``(s, a)`` of 1,000 random-policy Acrobot-v1 transitions is encoded by the
world model's input code (:meth:`SNNWorldModel.encode`), drives ``N`` neurons for ``T`` steps of
1 ms from rest, and the readout trace of each neuron at the end of the period,

.. math::

    \\bar z_j = \\sum_{t<T} \\kappa^{T-1-t} z_j^t, \\qquad
    v_j^{t+1} = \\alpha v_j^t + \\sum_i W^{in}_{ji} x_i - v_{th} z_j^t,

is a feature. A ridge regression of Δs on these features (fitted in closed form, the best of three
penalties) gives the one-step NMSE on 2,000 held-out random-policy transitions that no readout
learned from these features could beat by much. Rows: the settings of ``acrobot_mbrl.toml``, each
changed alone, and CartPole's world-model settings.

Usage::

    python analysis/wm_feature_capacity.py --seed 0
"""

from __future__ import annotations

import argparse
import dataclasses
import math

import numpy as np

from nmbrl_brian.envs import EnvironmentWrapper
from nmbrl_brian.equations.population_code import EncodingConfig
from nmbrl_brian.equations.world_model import WorldModelConfig
from nmbrl_brian.world_models.dataset import collect_transitions
from nmbrl_brian.world_models.snn_world_model import SNNWorldModel


@dataclasses.dataclass(frozen=True)
class Layer:
    """One setting of the emulated spiking layer."""

    n_neurons: int = 1000
    neurons_per_dim: int = 6
    p_input: float = 1.0
    refractory_steps: int = 0
    input_weight_scale: float = 1.0
    steps: int = 10


ROWS = {
    "acrobot_mbrl.toml": Layer(),
    "300 neurons": Layer(n_neurons=300),
    "2,000 neurons": Layer(n_neurons=2000),
    "refractory 2 ms": Layer(refractory_steps=2),
    "30 % of the inputs": Layer(p_input=0.3),
    "12 tuning curves per dimension": Layer(neurons_per_dim=12),
    "CartPole's settings": Layer(300, 12, 0.3, 2, 0.5),
}


def features(x: np.ndarray, layer: Layer, seed: int, tau_m: float = 20.0, tau_out: float = 20.0) -> np.ndarray:
    """Readout traces ``zbar`` at the end of the period, shape ``(len(x), n_neurons)``."""
    rng = np.random.default_rng(seed)
    n_in, n = x.shape[1], layer.n_neurons
    mask = rng.random((n_in, n)) < layer.p_input
    w_in = rng.normal(0.0, layer.input_weight_scale / math.sqrt(n_in * layer.p_input), (n_in, n)) * mask
    alpha, kappa = math.exp(-1.0 / tau_m), math.exp(-1.0 / tau_out)
    drive = x @ w_in
    v, refractory, zbar = np.zeros_like(drive), np.zeros_like(drive), np.zeros_like(drive)
    for _ in range(layer.steps):
        z = ((v > 1.0) & (refractory <= 0)).astype(float)
        v = alpha * v + drive - z
        refractory = z * layer.refractory_steps + (1 - z) * np.clip(refractory - 1, 0, layer.refractory_steps)
        zbar = kappa * zbar + z
    return zbar


def ridge_nmse(f_train, y_train, f_test, y_test) -> float:
    """Held-out NMSE (mean over dimensions) of the best of three ridge penalties on standardised features."""
    mean, std = f_train.mean(0), f_train.std(0) + 1e-8
    a = np.hstack([(f_train - mean) / std, np.ones((len(f_train), 1))])
    b = np.hstack([(f_test - mean) / std, np.ones((len(f_test), 1))])
    best = math.inf
    for penalty in (1e-4, 1e-3, 1e-2):
        w = np.linalg.solve(a.T @ a + penalty * len(a) * np.eye(a.shape[1]), a.T @ y_train)
        err = np.mean((b @ w - y_test) ** 2, axis=0) / y_test.var(axis=0)
        best = min(best, float(err.mean()))
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="data and weight seed (default 0)")
    args = parser.parse_args(argv)
    env = EnvironmentWrapper("Acrobot-v1")
    train = collect_transitions(env, None, 1000, seed=args.seed)
    test = collect_transitions(env, None, 2000, seed=10_000 + args.seed)
    one_hot = np.eye(env.action_space.n)
    linear = [np.hstack([d.obs, one_hot[d.action]]) for d in (train, test)]
    print(f"least squares on (s, a): {ridge_nmse(linear[0], train.delta, linear[1], test.delta):.4f}")
    for name, layer in ROWS.items():
        encoding = EncodingConfig(kind="population", neurons_per_dim=layer.neurons_per_dim, width=1.0)
        model = SNNWorldModel.for_env(
            "Acrobot-v1", use_termination_fn=False, config=WorldModelConfig(encoding=encoding)
        )
        model.prepare(train)
        f_train, f_test = (features(model.encode(d.obs, d.action), layer, args.seed) for d in (train, test))
        print(f"{name}: {ridge_nmse(f_train, train.delta, f_test, test.delta):.4f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
