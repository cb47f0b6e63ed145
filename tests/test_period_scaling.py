"""Fewer, longer network steps per environment step, with the weights re-derived for them.

A held drive ``I`` charges the membrane over one period of ``P`` steps to
``I * (1 - alpha**P) / (1 - alpha)`` (:attr:`SpikingNetworkConfig.period_gain`). The lean
model-based agent (``cartpole_mbrl_lean.toml``) takes 5 steps of 2 ms where the make run agent takes
10 of 1 ms, and scales its input and recurrent weights by the ratio of the two gains, so that its
neurons end a period at the same potential as the 10-step network's.
"""

from __future__ import annotations

from pathlib import Path

import brian2
import numpy as np
from brian2 import Network, StateMonitor, TimedArray, prefs

from nmbrl_brian.config import load_config
from nmbrl_brian.equations.eprop_neurons import SpikingNetworkConfig
from nmbrl_brian.snn.eprop_network import build_eprop_network

CONFIGS = Path(__file__).resolve().parents[1] / "nmbrl_brian" / "configs"
N_IN, N_REC, N_OUT, N_PERIODS = 8, 20, 3, 6
#: Input weight scale small enough that no neuron reaches the threshold (the map stays linear).
SMALL = 0.015


def end_of_period_potentials(cfg: SpikingNetworkConfig, x: np.ndarray) -> np.ndarray:
    """Membrane potentials at the end of each period, inputs ``x`` held over each period."""
    brian2.start_scope()
    prefs.codegen.target = "numpy"
    net = build_eprop_network(N_IN, N_OUT, cfg, error_mode="supervised", seed=4, name_prefix="scale")
    net.namespace["scale_drive"] = TimedArray(x, dt=cfg.period, name="scale_drive")
    drive = net.inputs.run_regularly("x = scale_drive(t, i)", when="start", name="scale_drive_op")
    v = StateMonitor(net.recurrent, "v", record=True, when="end", name="scale_v")
    Network(*net.objects, drive, v).run(N_PERIODS * cfg.period, namespace={})
    return np.array(v.v[:])[:, cfg.steps_per_env_step - 1 :: cfg.steps_per_env_step]


def test_scaled_weights_give_the_same_end_of_period_potential():
    """Without spikes (weights too small to reach the threshold) both networks decay by
    exp(-10 ms / tau_m) over a period, so with the drive scaled by the gain ratio the end-of-period
    potentials agree in every period, and without it they are the gain ratio apart."""
    saved = prefs.codegen.target
    try:
        common = {
            "n_recurrent": N_REC,
            "p_input": 0.6,
            "recurrent": False,
            "input_kind": "current",
            "hold_input": True,
            "hidden_learning": False,
            "readout_learning_rate": 0.0,
            "refractory_ms": 0.0,
            "tau_m_ms": 20.0,
        }
        ten = SpikingNetworkConfig(dt_ms=1.0, steps_per_env_step=10, input_weight_scale=SMALL, **common)
        unscaled = SpikingNetworkConfig(dt_ms=2.0, steps_per_env_step=5, input_weight_scale=SMALL, **common)
        ratio = ten.period_gain / unscaled.period_gain
        assert 1.9 < ratio < 2.0
        scaled = SpikingNetworkConfig(
            dt_ms=2.0, steps_per_env_step=5, input_weight_scale=SMALL * ratio, **common
        )
        x = np.random.default_rng(0).normal(0.0, 1.0, (N_PERIODS, N_IN))
        v_ten = end_of_period_potentials(ten, x)
        assert 0.05 < np.max(np.abs(v_ten)) < 0.5 * ten.v_th  # a real drive, and no spikes
        np.testing.assert_allclose(end_of_period_potentials(unscaled, x), v_ten / ratio, rtol=1e-9)
        np.testing.assert_allclose(end_of_period_potentials(scaled, x), v_ten, rtol=1e-9)
    finally:
        prefs.codegen.target = saved


def test_the_lean_agent_scales_the_make_run_weights_by_the_gain_ratio():
    lean = load_config(CONFIGS / "cartpole_mbrl_lean.toml", []).network
    cheap = load_config(CONFIGS / "cartpole_mbrl_cheap.toml", []).network
    assert lean.steps_per_env_step < cheap.steps_per_env_step
    assert lean.period == cheap.period  # the same period as the world model's
    ratio = cheap.period_gain / lean.period_gain
    assert abs(lean.input_weight_scale / cheap.input_weight_scale - ratio) < 0.01
    assert abs(lean.recurrent_weight_scale / cheap.recurrent_weight_scale - ratio) < 0.01
    assert abs(lean.learning_rate / cheap.learning_rate - ratio**2) < 0.25
