"""Chip-faithful numerics: the Brian2 fixed-point LIF equals an integer Loihi reference bit for bit;
the weight quantiser and stochastic rounding (range, saturation, unbiasedness, seed determinism)."""

from __future__ import annotations

from pathlib import Path

import brian2
import numpy as np
import pytest
from brian2 import Network, NeuronGroup, SpikeMonitor, StateMonitor, Synapses, TimedArray, ms, prefs

from nmbrl_brian.equations import fixed_point as fp
from nmbrl_brian.equations.eprop_neurons import SpikingNetworkConfig
from nmbrl_brian.errors import ConfigError
from nmbrl_brian.snn.loihi_reference import LoihiLIF, LoihiNetwork, decay

N_IN, N_REC, STEPS = 12, 30, 3000


@pytest.fixture(autouse=True)
def clean_scope():
    brian2.start_scope()
    yield


def run_fixed_network(
    target: str,
    *,
    reset: str,
    state_bits: int,
    threshold_log2: int,
    e_in: int,
    e_rec: int,
    refractory_steps: int,
    seed: int,
    build_dir=None,
) -> dict:
    """A Brian2 input group + fixed-point LIF layer (random du, dv, bias, mantissas, input spikes),
    run for STEPS + 1 steps, and the Loihi reference driven by the same integers."""
    if target == "cpp_standalone":
        from nmbrl_brian.devices import select_device

        select_device("cpp_standalone", build_dir)
    else:
        prefs.codegen.target = target
    rng = np.random.default_rng(seed)
    dt = 1 * ms
    decay_bits = 12
    du, dv = int(rng.integers(0, 4097)), int(rng.integers(0, 1500))
    theta = 2**threshold_log2
    bias = rng.integers(-theta // 64, theta // 32, size=N_REC)
    x = (rng.random((STEPS + 1, N_IN)) < 0.2).astype(float)
    ns = {
        "decay_unity": float(2**decay_bits),
        "du": float(du),
        "dv": float(dv),
        "theta": float(theta),
        "uv_max": float(2 ** (state_bits - 1)),
        "refractory_steps": float(refractory_steps),
        "x_table": TimedArray(x, dt=dt),
    }
    inputs = NeuronGroup(N_IN, "s : 1", threshold="s != 0", dt=dt, namespace=ns, name="fx_in")
    inputs.run_regularly("s = x_table(t, i)", when="before_thresholds", name="fx_in_step")
    rec = NeuronGroup(
        N_REC, fp.FIXED_LIF_EQUATIONS, threshold=fp.FIXED_LIF_THRESHOLD, dt=dt, namespace=ns, name="fx_rec"
    )
    rec.bias = bias
    rec.run_regularly(fp.fixed_lif_update(reset), when="after_synapses", name="fx_rec_step")
    syn_in = Synapses(
        inputs, rec, fp.FIXED_SYNAPSE_EQUATIONS, on_pre=fp.FIXED_ON_PRE_GRADED, name="fx_syn_in"
    )
    pre, post = np.nonzero(
        rng.random((N_IN, N_REC)) < 0.6
    )  # explicit: standalone knows no len() before a run
    syn_in.connect(i=pre, j=post)
    syn_in.m = rng.integers(-60, 128, size=len(pre))
    syn_in.w_unit = fp.weight_unit(e_in)
    syn_rec = Synapses(rec, rec, fp.FIXED_SYNAPSE_EQUATIONS, on_pre=fp.FIXED_ON_PRE, name="fx_syn_rec")
    mask = rng.random((N_REC, N_REC)) < 0.3
    np.fill_diagonal(mask, False)
    pre, post = np.nonzero(mask)
    syn_rec.connect(i=pre, j=post)
    syn_rec.m = rng.integers(-128, 128, size=len(pre))
    syn_rec.w_unit = fp.weight_unit(e_rec)
    mon = StateMonitor(rec, ["u", "v", "ref_left"], record=True, when="end", name="fx_mon")
    spikes = SpikeMonitor(rec, name="fx_spikes")
    Network(inputs, rec, syn_in, syn_rec, mon, spikes).run((STEPS + 1) * dt, namespace={})
    if target == "cpp_standalone":
        brian2.get_device().build(directory=str(build_dir), compile=True, run=True, with_output=False)

    w_in = np.zeros((N_REC, N_IN), np.int64)
    w_in[np.asarray(syn_in.j), np.asarray(syn_in.i)] = np.asarray(syn_in.m).astype(np.int64)
    w_rec = np.zeros((N_REC, N_REC), np.int64)
    w_rec[np.asarray(syn_rec.j), np.asarray(syn_rec.i)] = np.asarray(syn_rec.m).astype(np.int64)
    neurons = LoihiLIF(
        N_REC,
        du,
        dv,
        theta,
        bias,
        state_bits=state_bits,
        decay_bits=decay_bits,
        reset=reset,
        refractory_steps=refractory_steps,
    )
    ref = LoihiNetwork(neurons, w_in, e_in, w_rec, e_rec)
    want = {"u": [], "v": [], "r": [], "s": []}
    for k in range(STEPS):
        want["s"].append(ref.step(x[k].astype(np.int64)))
        want["u"].append(neurons.u.copy())
        want["v"].append(neurons.v_before_reset.copy())
        want["r"].append(neurons.r.copy())
    got_spikes = np.zeros((STEPS + 1, N_REC), bool)
    steps_of_spikes = np.round(np.asarray(spikes.t / dt)).astype(int)
    got_spikes[steps_of_spikes, np.asarray(spikes.i)] = True
    return {
        # Brian2 step k's update computes the reference's step k; its threshold slot of step
        # k + 1 reports the reference's spikes of step k (and its update then sets ref_left).
        "got": {
            "u": np.asarray(mon.u).T[:STEPS],
            "v": np.asarray(mon.v).T[:STEPS],
            "r": np.asarray(mon.ref_left).T[1:],
            "s": got_spikes[1:],
        },
        "want": {k: np.array(v) for k, v in want.items()},
        "ref": neurons,
    }


def case(reset: str, state_bits: int, threshold_log2: int, e_in: int, e_rec: int, refractory_steps: int):
    """Keyword arguments of :func:`run_fixed_network`."""
    return locals()


CASES = {
    # Loihi's widths: 24-bit state, threshold 2**16 (vth mantissa 1024 << 6)
    "loihi_subtract": case("subtract", 24, 16, e_in=2, e_rec=1, refractory_steps=2),
    "loihi_zero": case("zero", 24, 16, e_in=2, e_rec=1, refractory_steps=0),
    # a 12-bit state that overflows: the current wraps and the voltage saturates
    "narrow_overflow": case("subtract", 12, 9, e_in=-2, e_rec=-3, refractory_steps=1),
}


@pytest.mark.parametrize(
    ("target", "case"),
    [(t, c) for t in ("numpy", "cython") for c in CASES]
    + [pytest.param("cpp_standalone", "narrow_overflow", marks=pytest.mark.standalone)],
)
def test_brian2_fixed_point_lif_equals_integer_loihi_reference(target, case, tmp_path):
    result = run_fixed_network(target, seed=7, build_dir=tmp_path / "build", **CASES[case])
    got, want, ref = result["got"], result["want"], result["ref"]
    n_spikes = int(want["s"].sum())
    assert 0.01 * STEPS * N_REC < n_spikes < 0.5 * STEPS * N_REC, (
        f"the test network should spike, got {n_spikes}"
    )
    if case == "narrow_overflow":
        assert ref.wraps > 0 and ref.clips > 0, (ref.wraps, ref.clips)
    for key in ("s", "u", "v", "r"):
        assert got[key].shape == want[key].shape
        mismatch = np.argwhere(got[key] != want[key])
        assert mismatch.size == 0, f"{key} differs first at step, neuron {mismatch[0]}"
    for key in ("u", "v"):
        assert np.all(got[key] == np.round(got[key])), f"{key} left the integers"


def test_reference_decay_rounds_toward_zero_like_the_chip():
    x = np.array([-4097, -5, -1, 0, 1, 5, 4097, 2**23 - 1])
    want = [int(v * (4096 - 200) / 4096) for v in x.tolist()]  # Python's int() truncates toward zero
    assert decay(x, 200, 12).tolist() == want
    assert decay(x, 4096, 12).tolist() == [0] * len(x)
    assert decay(x, 0, 12).tolist() == x.tolist()


def test_constants_from_the_float_config():
    cfg = SpikingNetworkConfig(numerics="fixed", tau_m_ms=20.0, dt_ms=1.0)
    c = fp.fixed_constants(cfg)
    assert c["dv"] == round(4096 * (1 - cfg.alpha)) == 200
    assert c["du"] == c["decay_unity"] == 4096  # the float model has no current filter
    assert c["theta"] == 2**16 and c["uv_max"] == 2**23
    assert abs((4096 - c["dv"]) / 4096 - cfg.alpha) <= 0.5 / 4096
    assert fp.decay_constant(1.0) == 0 and fp.decay_constant(0.0) == 4096
    with pytest.raises(ValueError):
        fp.decay_constant(1.5)
    with pytest.raises(ValueError):
        fp.weight_unit(-7)


# --------------------------------------------------------------------------------------
# Weight quantiser
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [4, 8])
def test_quantiser_range_error_and_minimal_exponent(bits):
    rng = np.random.default_rng(1)
    w = rng.normal(0.0, 0.3, size=2000)
    m, e = fp.quantise_weights(w, bits)
    lo, hi = fp.mantissa_range(bits)
    assert (lo, hi) == (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    assert m.dtype.kind == "i" and m.min() >= lo and m.max() <= hi
    assert np.max(np.abs(fp.dequantise_weights(m, e) - w)) <= 2.0 ** (e - 1)  # round to nearest
    assert np.max(np.abs(w)) / 2.0 ** (e - 1) > hi  # one exponent smaller would overflow
    assert np.abs(m).max() >= hi // 2  # the range is used


def test_quantiser_saturates_with_a_fixed_exponent():
    m, e = fp.quantise_weights(np.array([-10.0, -1.0, 0.0, 0.26, 10.0]), 8, exponent=-4)
    assert e == -4
    assert m.tolist() == [-128, -16, 0, 4, 127]
    assert fp.quantise_weights(np.zeros(3))[1] == 0


# --------------------------------------------------------------------------------------
# Stochastic rounding of learning increments (Brian2's seeded rand())
# --------------------------------------------------------------------------------------


def stochastic_update(dm: float, m0: float, n: int, seed: int, bits: int = 8) -> np.ndarray:
    """Apply STOCHASTIC_WEIGHT_UPDATE once to n mantissas m0 with increment dm (numpy target)."""
    prefs.codegen.target = "numpy"
    brian2.start_scope()
    lo, hi = fp.mantissa_range(bits)
    group = NeuronGroup(n, "m : 1\ndm : 1 (shared)", namespace={"m_min": float(lo), "m_max": float(hi)})
    group.m = m0
    group.dm = dm
    group.run_regularly(fp.STOCHASTIC_WEIGHT_UPDATE, dt=1 * ms)
    brian2.seed(seed)
    Network(group).run(1 * ms)
    return np.asarray(group.m).copy()


@pytest.mark.parametrize("dm", [0.3, -2.75, 0.01])
def test_stochastic_rounding_is_unbiased_and_on_the_grid(dm):
    n = 40000
    m = stochastic_update(dm, 10.0, n, seed=11)
    assert set(np.unique(m - 10.0).tolist()) <= {np.floor(dm), np.floor(dm) + 1}
    frac = dm - np.floor(dm)
    se = np.sqrt(frac * (1 - frac) / n)
    assert abs(np.mean(m - 10.0) - dm) < 4 * se, (np.mean(m - 10.0), dm, se)


def test_the_networks_quantised_update_is_unbiased_on_the_grid():
    """The e-prop network's form (float w on its grid) of the stochastically rounded TD increment."""
    prefs.codegen.target = "numpy"
    n, step, inc = 40000, 2.0**-7, 3e-4  # the increment is 0.0384 grid steps
    code = fp.quantised_update("w += lr*delta*grad")
    ns = {"m_min": -128.0, "m_max": 127.0}
    group = NeuronGroup(
        n, "w : 1\ngrad : 1\nw_step : 1 (shared)\nlr : 1 (shared)\ndelta : 1 (shared)", namespace=ns
    )
    group.w, group.grad, group.w_step, group.lr, group.delta = 5 * step, 1.0, step, inc, 1.0
    group.run_regularly(code, dt=1 * ms)
    brian2.seed(2)
    Network(group).run(1 * ms)
    m = np.asarray(group.w) / step - 5
    assert set(np.unique(m).tolist()) == {0.0, 1.0}
    frac = inc / step
    assert abs(m.mean() - frac) < 4 * np.sqrt(frac * (1 - frac) / n), (m.mean(), frac)


def test_stochastic_rounding_is_deterministic_for_a_seed_and_saturates():
    a = stochastic_update(0.5, 0.0, 1000, seed=3)
    b = stochastic_update(0.5, 0.0, 1000, seed=3)
    c = stochastic_update(0.5, 0.0, 1000, seed=4)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.all(stochastic_update(3.7, 126.0, 100, seed=0) == 127.0)
    assert np.all(stochastic_update(-9.2, -125.0, 100, seed=0) == -128.0)
    u = np.random.default_rng(0).random(1000)
    assert np.array_equal(fp.stochastic_round(np.full(1000, 0.5), u), (u >= 0.5).astype(float))


# --------------------------------------------------------------------------------------
# The config
# --------------------------------------------------------------------------------------


def test_numerics_fields_are_validated_and_unused_with_float():
    assert SpikingNetworkConfig().numerics == "float"
    unused = SpikingNetworkConfig().unused_fields()
    for name in fp.FIXED_FIELDS:
        assert unused[name] == "numerics is 'float'"
        assert name not in SpikingNetworkConfig(numerics="fixed").unused_fields()
    with pytest.raises(ConfigError, match="network.numerics"):
        SpikingNetworkConfig(numerics="double")
    with pytest.raises(ConfigError, match="network.weight_bits"):
        SpikingNetworkConfig(numerics="fixed", weight_bits=1)
    with pytest.raises(ConfigError, match="network.threshold_log2"):
        SpikingNetworkConfig(numerics="fixed", state_bits=16, threshold_log2=15)


def test_runs_accept_fixed_numerics_for_lif_and_refuse_alif():
    from nmbrl_brian.config import RunConfig, load_config

    run = load_config(
        Path(__file__).parents[1] / "nmbrl_brian" / "configs" / "cartpole_mbrl_cheap.toml",
        ["network.numerics=fixed", "world_model.network.numerics=fixed"],
    )
    assert isinstance(run, RunConfig)
    assert run.network.numerics == run.world_model.network.numerics == "fixed"
    with pytest.raises(ConfigError, match=r"^network\.neuron_model: expected 'LIF' with numerics = 'fixed'"):
        SpikingNetworkConfig(numerics="fixed", neuron_model="ALIF")


# --------------------------------------------------------------------------------------
# The e-prop network with numerics = "fixed"
# --------------------------------------------------------------------------------------


def fixed_eprop(lr: float, steps: int, seed: int = 3, **overrides):
    """A small fixed-numerics e-prop network on timed 0/1 input spikes, supervised, run ``steps`` steps."""
    from nmbrl_brian.snn.eprop_network import build_eprop_network

    prefs.codegen.target = "numpy"
    brian2.start_scope()
    kw = {
        "numerics": "fixed",
        "n_recurrent": N_REC,
        "p_input": 0.8,
        "p_recurrent": 0.3,
        "input_weight_scale": 3.0,
        "recurrent_weight_scale": 1.0,
        "update_interval_steps": 50,
        "learning_rate": lr,
        "readout_learning_rate": 1e-4,
        "refractory_ms": 2.0,
    }
    kw.update(overrides)
    cfg = SpikingNetworkConfig(**kw)
    rng = np.random.default_rng(seed)
    x = (rng.random((steps, 5)) < 0.15).astype(float)
    t = np.arange(steps)
    targets = np.stack([np.sin(t / 20.0), 0.5 * np.cos(t / 15.0)], axis=1)
    net = build_eprop_network(
        5, 2, cfg, input_kind="timed", error_mode="supervised", seed=1, name_prefix="fxe",
        input_values=x, targets=targets,
    )  # fmt: skip
    return cfg, net, x


def test_fixed_eprop_network_recurrent_layer_equals_the_loihi_reference():
    steps = 1000
    cfg, net, x = fixed_eprop(lr=0.0, steps=steps + 1)
    mon = StateMonitor(net.recurrent, ["v", "u"], record=True, when="end", name="fxe_mon")
    spikes = SpikeMonitor(net.recurrent, name="fxe_spk")
    Network(*net.objects, mon, spikes).run((steps + 1) * cfg.dt_ms * ms, namespace={})

    c = fp.fixed_constants(cfg)
    scale = fp.state_scale(cfg)
    conn, w = net.connectivity(), net.initial_weights
    w_in = np.zeros((N_REC, 5), np.int64)
    w_in[conn["in"][1], conn["in"][0]] = np.rint(w["w_in"] * scale).astype(np.int64)
    w_rec = np.zeros((N_REC, N_REC), np.int64)
    w_rec[conn["rec"][1], conn["rec"][0]] = np.rint(w["w_rec"] * scale).astype(np.int64)
    assert np.array_equal(w_in[conn["in"][1], conn["in"][0]], w["w_in"] * scale)  # integer state units
    neurons = LoihiLIF(
        N_REC, int(c["du"]), int(c["dv"]), int(c["theta"]), state_bits=cfg.state_bits,
        decay_bits=cfg.decay_bits, reset="subtract", refractory_steps=cfg.refractory_steps,
    )  # fmt: skip
    ref = LoihiNetwork(neurons, w_in, -fp.ACT_SHIFT, w_rec, -fp.ACT_SHIFT)  # weights given in state units
    want_s, want_v, want_u = [], [], []
    for k in range(steps):
        want_s.append(ref.step(x[k].astype(np.int64)))
        want_v.append(neurons.v_before_reset.copy())
        want_u.append(neurons.u.copy())
    got_s = np.zeros((steps + 1, N_REC), bool)
    got_s[np.round(np.asarray(spikes.t / ms) / cfg.dt_ms).astype(int), np.asarray(spikes.i)] = True
    assert 0.01 * steps * N_REC < np.sum(want_s) < 0.5 * steps * N_REC
    assert np.array_equal(got_s[1:], np.array(want_s))
    assert np.array_equal(np.asarray(mon.v).T[:steps], np.array(want_v))
    assert np.array_equal(np.asarray(mon.u).T[:steps], np.array(want_u))


def test_fixed_eprop_weights_stay_on_their_grids_through_learning():
    def run(seed: int):
        cfg, net, _ = fixed_eprop(lr=0.05, steps=600)
        brian2.seed(seed)
        Network(*net.objects).run(600 * cfg.dt_ms * ms, namespace={})
        return cfg, net

    cfg, net = run(5)
    lo, hi = fp.mantissa_range(cfg.weight_bits)
    for syn, key in ((net.syn_in, "w_in"), (net.syn_rec, "w_rec")):
        step = float(syn.variables["w_step"].get_value()[0])
        assert np.log2(step * fp.state_scale(cfg)) % 1 == 0  # a power of two in state units
        for w in (net.initial_weights[key], np.asarray(syn.w)):
            m = w / step
            assert np.array_equal(m, np.round(m)), f"{key} off its grid"
            assert m.min() >= lo and m.max() <= hi
        changed = np.mean(np.asarray(syn.w) != net.initial_weights[key])
        assert changed > 0.05, f"{key}: learning should move weights, {changed:.1%} moved"
    unit = 2.0 ** -(cfg.trace_bits - fp.TRACE_INT_BITS - 1)
    for group, var in (
        (net.inputs, "zbar"),
        (net.recurrent, "zbar"),
        (net.recurrent, "zbar_out"),
        (net.syn_in, "ebar"),
    ):
        values = np.asarray(getattr(group, var)) / unit
        assert np.array_equal(values, np.round(values)), f"{group.name}.{var} off the trace grid"
        assert np.abs(values).max() <= 2 ** (cfg.trace_bits - 1) - 1
        assert np.count_nonzero(values) > 0, f"{group.name}.{var} is all zero"
    again = run(5)[1]
    other = run(6)[1]
    assert np.array_equal(np.asarray(net.syn_in.w), np.asarray(again.syn_in.w))  # seeded rand()
    assert not np.array_equal(np.asarray(net.syn_in.w), np.asarray(other.syn_in.w))


def test_the_spiking_agent_learns_on_the_grids_with_fixed_numerics():
    """The actor-critic's TD updates of hidden weights are stochastically rounded onto the grids."""
    from nmbrl_brian.agents.spiking_actor_critic import SpikingActorCritic
    from nmbrl_brian.devices import select_device
    from nmbrl_brian.envs import EnvironmentWrapper
    from nmbrl_brian.envs.env_loop import EnvLoop
    from nmbrl_brian.equations.actor_critic import AgentConfig
    from nmbrl_brian.equations.population_code import EncodingConfig

    select_device("runtime")
    network = SpikingNetworkConfig(
        numerics="fixed", n_recurrent=40, input_kind="current", steps_per_env_step=10, tau_out_ms=10.0,
        refractory_ms=0.0, input_weight_scale=0.57, recurrent_weight_scale=0.3, readout_weight_scale=0.0,
        learning_rate=0.01,
    )  # fmt: skip
    env = EnvironmentWrapper()
    agent = SpikingActorCritic(
        env.observation_space, env.action_space,
        agent=AgentConfig(kind="spiking_actor_critic", actor_lr=0.1, critic_lr=0.1),
        encoding=EncodingConfig(), network=network, seed=0, environment="equations", periods_per_run=200,
    )  # fmt: skip
    e = agent.part.eprop
    before = {k: np.asarray(s.w).copy() for k, s in (("in", e.syn_in), ("rec", e.syn_rec))}
    agent.interact(EnvLoop(env, seed=0), max_steps=400)
    for key, syn in (("in", e.syn_in), ("rec", e.syn_rec)):
        m = np.asarray(syn.w) / float(syn.variables["w_step"].get_value()[0])
        assert np.array_equal(m, np.round(m)), f"syn_{key} left its grid"
        assert np.mean(np.asarray(syn.w) != before[key]) > 0.01, f"syn_{key} did not learn"
    assert np.all(np.asarray(e.recurrent.v) == np.round(np.asarray(e.recurrent.v)))
