"""Held input drive (``network.hold_input``): same dynamics as per-step sends, fewer input events.

The inputs here change only at period starts (a TimedArray with ``dt = period`` read in the
``start`` slot, as the agent's encoder writes them), so the held drive must reproduce the
per-step network: recurrent spikes, membrane potentials, readouts and (with interval
e-prop updates, which need the refresh send after each update) the learnt weights.
"""

from __future__ import annotations

from pathlib import Path

import brian2
import numpy as np
import pytest
from brian2 import Network, SpikeMonitor, StateMonitor, TimedArray, prefs

from nmbrl_brian.config import load_config
from nmbrl_brian.equations.eprop_neurons import SpikingNetworkConfig
from nmbrl_brian.errors import ConfigError
from nmbrl_brian.snn.direct_readout import add_direct_readout, direct_readout_equations
from nmbrl_brian.snn.eprop_network import build_eprop_network

CONFIGS = Path(__file__).resolve().parents[1] / "nmbrl_brian" / "configs"
N_IN, N_REC, N_OUT, PERIOD, N_PERIODS = 8, 20, 3, 5, 50


def config(hold: bool, learn: bool) -> SpikingNetworkConfig:
    return SpikingNetworkConfig(
        n_recurrent=N_REC,
        p_input=0.6,
        p_recurrent=0.3,
        input_kind="current",
        steps_per_env_step=PERIOD,
        update_interval_steps=PERIOD,
        hidden_learning=learn,
        hold_input=hold,
        input_weight_scale=1.5,
        recurrent_weight_scale=1.0,
        learning_rate=3e-4,
        readout_learning_rate=3e-4,
        refractory_ms=2.0,
    )


def simulate(hold: bool, learn: bool) -> dict:
    """50 periods of signed currents (40 % of inputs silent), constant within each period."""
    brian2.start_scope()
    prefs.codegen.target = "numpy"
    cfg = config(hold, learn)
    rng = np.random.default_rng(1)
    x = rng.normal(0.0, 1.0, (N_PERIODS, N_IN)) * (rng.random((N_PERIODS, N_IN)) < 0.6)
    targets = np.repeat(rng.normal(0.0, 1.0, (N_PERIODS, N_OUT)), PERIOD, axis=0)
    net = build_eprop_network(
        N_IN, N_OUT, cfg, error_mode="supervised", seed=4, name_prefix="hold", targets=targets
    )
    net.namespace["hold_drive"] = TimedArray(x, dt=cfg.period, name="hold_drive")
    drive = net.inputs.run_regularly("x = hold_drive(t, i)", when="start", name="hold_drive_op")
    v = StateMonitor(net.recurrent, "v", record=True, name="hold_v")
    y = StateMonitor(net.readout, "y", record=True, name="hold_y")
    spikes = SpikeMonitor(net.recurrent, name="hold_spikes")
    Network(*net.objects, drive, v, y, spikes).run(N_PERIODS * cfg.period, namespace={})
    fan_out = np.bincount(np.asarray(net.syn_in.i[:]), minlength=N_IN)
    return {
        "v": np.array(v.v[:]),
        "y": np.array(y.y[:]),
        "spike_i": np.array(spikes.i[:]),
        "spike_t": np.array(spikes.t_[:]),
        "weights": net.get_weights(),
        "initial": net.initial_weights,
        "sends": int(net.spikes_in.num_spikes),
        "input_events": int(np.sum(np.asarray(net.spikes_in.count[:]) * fan_out)),
        "counts": net.operation_counts(),
        "nonzero_per_period": int(np.count_nonzero(x)),
    }


@pytest.fixture(scope="module", params=[False, True], ids=["frozen", "learning"])
def pair(request):
    saved = prefs.codegen.target
    out = {
        "learn": request.param,
        "per_step": simulate(False, request.param),
        "held": simulate(True, request.param),
    }
    prefs.codegen.target = saved
    return out


def test_held_drive_gives_the_same_dynamics(pair):
    a, b = pair["per_step"], pair["held"]
    assert len(a["spike_i"]) > 100  # the layer is active
    np.testing.assert_array_equal(a["spike_i"], b["spike_i"])
    np.testing.assert_array_equal(a["spike_t"], b["spike_t"])
    np.testing.assert_allclose(b["v"], a["v"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(b["y"], a["y"], rtol=0, atol=1e-12)
    for key, w in a["weights"].items():
        np.testing.assert_allclose(b["weights"][key], w, rtol=0, atol=1e-12)
    if pair["learn"]:  # the weights did move, so equal weights after mean equal learning
        assert np.max(np.abs(a["weights"]["w_in"] - a["initial"]["w_in"])) > 1e-3


def test_input_sends_drop_by_the_period(pair):
    """One send per nonzero input and period (plus the refresh send after each interval update)."""
    a, b = pair["per_step"], pair["held"]
    assert a["sends"] == PERIOD * a["nonzero_per_period"]
    sends_per_period = 2 if pair["learn"] else 1  # refresh: step after the update in each period's first step
    assert b["sends"] == sends_per_period * a["nonzero_per_period"]
    assert b["input_events"] * PERIOD == a["input_events"] * sends_per_period
    saved = a["input_events"] - b["input_events"]
    assert b["counts"].synaptic_events == a["counts"].synaptic_events - saved
    assert b["counts"].spikes == a["counts"].spikes - (a["sends"] - b["sends"])
    assert b["counts"].neuron_updates == a["counts"].neuron_updates


def test_hold_input_needs_current_inputs():
    with pytest.raises(
        ConfigError, match=r"^network\.hold_input: expected its default .* input_kind is 'poisson'"
    ):
        load_config(CONFIGS / "cartpole_snn.toml", ["network.input_kind=poisson", "network.hold_input=true"])
    with pytest.raises(ConfigError, match=r"^network\.hold_input: .*direct_readout is true"):
        load_config(CONFIGS / "cartpole_snn.toml", ["network.direct_readout=true", "network.hold_input=true"])
    with pytest.raises(ConfigError, match=r"^world_model\.network\.hold_input: "):
        load_config(CONFIGS / "cartpole_mbrl.toml", ["world_model.network.hold_input=true"])
    assert load_config(CONFIGS / "cartpole_snn.toml", ["network.hold_input=true"]).network.hold_input
    with pytest.raises(ConfigError, match=r"^network\.hold_input: expected true or false"):
        SpikingNetworkConfig(input_kind="current", hold_input=1)


def test_builder_refuses_held_inputs_it_cannot_hold():
    brian2.start_scope()
    cfg = SpikingNetworkConfig(n_recurrent=5, input_kind="current", hold_input=True)
    with pytest.raises(ValueError, match="hold_input"):
        build_eprop_network(3, 2, cfg, input_kind="poisson", name_prefix="refuse_a")
    net = build_eprop_network(
        3, 2, cfg, name_prefix="refuse_b", extra_equations=direct_readout_equations(False)
    )
    with pytest.raises(ValueError, match="hold_input"):
        add_direct_readout(net, normalized=False, learning_rate=0.1)
