"""The shared e-prop core: Brian2 network vs the NumPy reference, vs BPTT, across targets and modes."""

from __future__ import annotations

import brian2
import numpy as np
import pytest
from brian2 import Network, StateMonitor, TimedArray, ms, prefs

from nmbrl_brian.equations.eprop_neurons import SpikingNetworkConfig
from nmbrl_brian.errors import ConfigError
from nmbrl_brian.snn.eprop_network import build_eprop_network
from nmbrl_brian.snn.reference import reference_from_network

N_IN, N_REC, N_OUT = 5, 8, 2
T = 300


@pytest.fixture(autouse=True)
def brian_prefs():
    """Start from a clean scope and give back the code-generation target and clock afterwards."""
    saved_target, saved_dt = prefs.codegen.target, brian2.defaultclock.dt
    brian2.start_scope()
    yield
    prefs.codegen.target = saved_target
    brian2.defaultclock.dt = saved_dt


def tiny_config(**overrides) -> SpikingNetworkConfig:
    """5 inputs -> 8 recurrent -> 2 readouts, strong enough weights to spike often."""
    kw = dict(
        n_recurrent=N_REC,
        p_input=0.8,
        p_recurrent=0.5,
        input_weight_scale=3.0,
        recurrent_weight_scale=1.0,
        update_interval_steps=50,
        learning_rate=1e-3,
        readout_learning_rate=1e-4,
        beta=0.3,
        tau_adapt_ms=100.0,
    )
    kw.update(overrides)
    return SpikingNetworkConfig(**kw)


def fixed_inputs(steps: int = T, seed: int = 3, signed: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Fixed input spikes (15 % per step; signed: currents of +-1) and smooth supervised targets."""
    rng = np.random.default_rng(seed)
    spikes = (rng.random((steps, N_IN)) < 0.15).astype(float)
    if signed:
        spikes *= rng.choice([-1.0, 1.0], size=spikes.shape)
    t = np.arange(steps)
    targets = np.stack([np.sin(t / 20.0), 0.5 * np.cos(t / 15.0)], axis=1)
    return spikes, targets


def run_brian_and_reference(
    cfg: SpikingNetworkConfig,
    target: str,
    steps: int = T,
    seed: int = 2,
    signed: bool = False,
    errors: np.ndarray | None = None,
) -> dict:
    """Run the Brian2 network and the reference side by side; return both histories (steps x ...).

    With ``errors`` (steps x outputs) the readout errors are external, written at the start of
    each step from that table (like the actor-critic's head), instead of supervised."""
    prefs.codegen.target = target
    spikes, targets = fixed_inputs(steps, signed=signed)
    net = build_eprop_network(
        N_IN,
        N_OUT,
        cfg,
        input_kind="timed",
        error_mode="supervised" if errors is None else "external",
        seed=seed,
        name_prefix="tiny",
        input_values=spikes,
        targets=targets if errors is None else None,
    )
    extra = []
    if errors is not None:
        net.readout.namespace["tiny_errors"] = TimedArray(errors, dt=cfg.dt)
        extra.append(
            net.readout.run_regularly("err = tiny_errors(t, i)", when="start", name="tiny_errors_op")
        )
    ref = reference_from_network(net)
    rec_vars = ["v", "psi", "L", "zbar", "zbar_out"] + (["a"] if cfg.neuron_model == "ALIF" else [])
    syn_vars = ["w"] + (
        ["ebar", "grad"] + (["eps_a"] if cfg.neuron_model == "ALIF" else []) if cfg.hidden_learning else []
    )
    mons = {
        "rec": StateMonitor(net.recurrent, rec_vars, record=True, when="end", order=100, name="mon_rec"),
        "out": StateMonitor(
            net.readout, ["y", "err", "b", "grad_b"], record=True, when="end", order=100, name="mon_out"
        ),
        "syn_out": StateMonitor(
            net.syn_out, ["w", "grad"], record=True, when="end", order=100, name="mon_syn_out"
        ),
        "syn_in": StateMonitor(net.syn_in, syn_vars, record=True, when="end", order=100, name="mon_syn_in"),
    }
    if net.syn_rec is not None:
        mons["syn_rec"] = StateMonitor(
            net.syn_rec, syn_vars, record=True, when="end", order=100, name="mon_syn_rec"
        )
    brian_net = Network(*net.objects, *mons.values(), *extra)
    brian_net.run(steps * cfg.dt_ms * ms, namespace={})

    conn = net.connectivity()
    got, want = {}, {}
    for var in rec_vars:
        got[f"rec.{var}"] = np.asarray(getattr(mons["rec"], var)).T
    for var in ["y", "err", "b", "grad_b"]:
        got[f"out.{var}"] = np.asarray(getattr(mons["out"], var)).T
    for key in ("syn_in", "syn_rec", "syn_out"):
        if key in mons:
            for var in ["w", "grad"] if key == "syn_out" else syn_vars:
                got[f"{key}.{var}"] = np.asarray(getattr(mons[key], var)).T
    ref_spikes = 0
    hist: dict[str, list] = {k: [] for k in got}
    i_out, j_out = conn["out"]
    for t in range(steps):
        if errors is None:
            ref_spikes += int(ref.step(spikes[t], y_target=targets[t]).sum())
        else:
            ref_spikes += int(ref.step(spikes[t], err=errors[t]).sum())
        for var in rec_vars:
            hist[f"rec.{var}"].append(getattr(ref, var).copy())
        for var, value in (("y", ref.y), ("err", ref.err), ("b", ref.b_out), ("grad_b", ref.grad_b)):
            hist[f"out.{var}"].append(value.copy())
        hist["syn_out.w"].append(ref.w_out[j_out, i_out].copy())
        hist["syn_out.grad"].append(ref.grad_out[j_out, i_out].copy())
        for key, short, weights in (("syn_in", "in", ref.w_in), ("syn_rec", "rec", ref.w_rec)):
            if key not in mons:
                continue
            i, j = conn[short]
            hist[f"{key}.w"].append(weights[j, i].copy())
            if cfg.hidden_learning:
                for var in syn_vars[1:]:
                    hist[f"{key}.{var}"].append(ref.syn[short][var][j, i].copy())
    want = {k: np.array(v) for k, v in hist.items()}
    return {
        "got": got,
        "want": want,
        "net": net,
        "ref": ref,
        "brian_spikes": int(net.spikes_rec.num_spikes),
        "ref_spikes": ref_spikes,
        "monitors": mons,
    }


def max_rel_err(got: np.ndarray, want: np.ndarray) -> float:
    """Largest deviation relative to the largest magnitude of the reference (0 if both are 0)."""
    scale = float(np.max(np.abs(want))) if want.size else 0.0
    diff = float(np.max(np.abs(got - want))) if want.size else 0.0
    return diff / scale if scale > 0 else diff


def assert_histories_agree(result: dict, rtol: float = 1e-6) -> None:
    assert result["brian_spikes"] == result["ref_spikes"], (
        f"spike counts differ: Brian2 {result['brian_spikes']}, reference {result['ref_spikes']}"
    )
    assert result["brian_spikes"] > 20, f"the test network should spike, got {result['brian_spikes']} spikes"
    for key, want in result["want"].items():
        got = result["got"][key]
        assert got.shape == want.shape, f"{key}: shape {got.shape} vs reference {want.shape}"
        err = max_rel_err(got, want)
        assert err <= rtol, f"{key}: Brian2 deviates from the NumPy reference by {err:.3g} (relative)"


# --------------------------------------------------------------------------------------
# Reference agreement
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "recurrent", "feedback"),
    [
        ("LIF", True, "symmetric"),
        ("LIF", False, "random"),
        ("ALIF", True, "random"),
        ("ALIF", False, "symmetric"),
    ],
)
def test_brian_matches_numpy_reference(model, recurrent, feedback):
    cfg = tiny_config(neuron_model=model, recurrent=recurrent, feedback=feedback)
    result = run_brian_and_reference(cfg, "numpy")
    assert_histories_agree(result)
    w = result["got"]["syn_in.w"]
    assert np.max(np.abs(w[-1] - w[0])) > 1e-6, "input weights should have been updated by e-prop"
    assert np.any(result["got"]["rec.L"] != 0), "learning signals should be nonzero"
    if model == "ALIF":
        assert np.max(result["got"]["rec.a"]) > 0, "ALIF adaptation should build up"


def test_readout_only_learning_matches_reference():
    cfg = tiny_config(hidden_learning=False)
    result = run_brian_and_reference(cfg, "numpy", steps=220)
    assert_histories_agree(result)
    assert result["net"].syn_feedback is None, "no feedback synapses are needed without hidden learning"


def test_external_error_written_between_runs_matches_reference():
    prefs.codegen.target = "numpy"
    cfg = tiny_config(update_interval_steps=20)
    spikes, _ = fixed_inputs(200)
    net = build_eprop_network(
        N_IN,
        N_OUT,
        cfg,
        input_kind="timed",
        error_mode="external",
        seed=5,
        name_prefix="ext",
        input_values=spikes,
    )
    ref = reference_from_network(net)
    brian_net = Network(*net.objects)
    rng = np.random.default_rng(1)
    for chunk in range(10):  # a TD-like error written once per "environment step" of 20 steps
        err = rng.normal(size=N_OUT)
        net.set_errors(err)
        brian_net.run(20 * ms, namespace={})
        for t in range(chunk * 20, chunk * 20 + 20):
            ref.step(spikes[t], err=err if t == chunk * 20 else None)
    i, j = net.connectivity()["in"]
    assert max_rel_err(net.syn_in.w[:], ref.w_in[j, i]) <= 1e-6, "input weights differ from the reference"
    assert max_rel_err(net.syn_in.ebar[:], ref.syn["in"]["ebar"][j, i]) <= 1e-6, "traces differ"
    assert max_rel_err(net.readout.y[:], ref.y) <= 1e-6, "readouts differ from the reference"
    assert np.array_equal(net.readout.err[:], ref.err), "external errors must not be overwritten"


# --------------------------------------------------------------------------------------
# E-prop equals BPTT for a single spiking layer
# --------------------------------------------------------------------------------------


def bptt_gradients(ref, x: np.ndarray, targets: np.ndarray) -> dict[str, np.ndarray]:
    """dE/dW for E = 0.5 sum_t |y_t - y*_t|^2 by a hand-written backward pass (no recurrence).

    Same discrete dynamics and pseudo-derivative as the reference; the reset and the
    refractory mask are not differentiated (as in e-prop).
    """
    p = ref.p
    steps = len(x)
    n_rec, n_in = ref.w_in.shape
    n_out = ref.w_out.shape[0]
    v, a, ref_left, y = np.zeros(n_rec), np.zeros(n_rec), np.zeros(n_rec), np.zeros(n_out)
    zs, psis, errs = [], [], []
    for t in range(steps):  # forward
        A = p.v_th + p.beta * a
        ok = ref_left <= 0
        z = ((v > A) & ok).astype(float)
        psis.append(p.gamma_pd / p.v_th * np.maximum(0.0, 1 - np.abs(v - A) / p.v_th) * ok)
        y = p.kappa * y + ref.w_out @ z + ref.b_out
        errs.append(y - targets[t])
        zs.append(z)
        v = p.alpha * v + ref.w_in @ x[t] - p.v_th * z
        a = p.rho * a + z
        ref_left = np.where(z > 0, float(p.n_ref), np.clip(ref_left - 1, 0, p.n_ref))
    g_w_in, g_w_out, g_b = np.zeros((n_rec, n_in)), np.zeros((n_out, n_rec)), np.zeros(n_out)
    gy, gv_next, ga_next = np.zeros(n_out), np.zeros(n_rec), np.zeros(n_rec)
    for t in reversed(range(steps)):  # backward
        gy = errs[t] + p.kappa * gy  # dE/dy_t
        g_w_out += np.outer(gy, zs[t])
        g_b += gy
        g_w_in += np.outer(gv_next, x[t])  # v_{t+1} = ... + W_in x_t
        gz = ref.w_out.T @ gy + ga_next  # dE/dz_t (reset not differentiated)
        gv = psis[t] * gz + p.alpha * gv_next
        ga = -p.beta * psis[t] * gz + p.rho * ga_next
        gv_next, ga_next = gv, ga
    return {"w_in": g_w_in * ref.mask_in, "w_out": g_w_out, "b_out": g_b}


@pytest.mark.parametrize("model", ["LIF", "ALIF"])
def test_eprop_gradient_equals_bptt_without_recurrence(model):
    prefs.codegen.target = "numpy"
    steps = 200
    cfg = tiny_config(
        neuron_model=model,
        recurrent=False,
        feedback="symmetric",
        update_interval_steps=10_000,
        learning_rate=0.0,
        readout_learning_rate=0.0,
        tau_out_ms=30.0,
    )
    spikes, targets = fixed_inputs(steps + 1, seed=7)
    net = build_eprop_network(
        N_IN,
        N_OUT,
        cfg,
        input_kind="timed",
        error_mode="supervised",
        seed=11,
        name_prefix="grad",
        input_values=spikes,
        targets=targets,
    )
    ref = reference_from_network(net)
    bptt = bptt_gradients(ref, spikes[:steps], targets[:steps])
    # The accumulators of step t hold the contributions of steps < t: run one step more.
    Network(*net.objects).run((steps + 1) * ms, namespace={})
    for _ in range(steps + 1):
        ref.step(spikes[ref.step_index], y_target=targets[ref.step_index])
    assert int(net.spikes_rec.num_spikes) > 20, "the layer should spike for a meaningful check"
    assert np.max(np.abs(bptt["w_in"])) > 1e-3, "the BPTT input gradient should be nonzero"
    i, j = net.connectivity()["in"]
    i_out, j_out = net.connectivity()["out"]
    eprop = {"w_in": net.syn_in.grad[:], "w_out": net.syn_out.grad[:], "b_out": net.readout.grad_b[:]}
    reference = {
        "w_in": ref.syn["in"]["grad"][j, i],
        "w_out": ref.grad_out[j_out, i_out],
        "b_out": ref.grad_b,
    }
    exact = {"w_in": bptt["w_in"][j, i], "w_out": bptt["w_out"][j_out, i_out], "b_out": bptt["b_out"]}
    for key in exact:
        err = max_rel_err(eprop[key], exact[key])
        assert err <= 1e-9, f"{model} {key}: Brian2 e-prop gradient deviates from BPTT by {err:.3g}"
        err = max_rel_err(reference[key], exact[key])
        assert err <= 1e-9, f"{model} {key}: reference e-prop gradient deviates from BPTT by {err:.3g}"


# --------------------------------------------------------------------------------------
# Code-generation targets
# --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_numpy_and_cython_give_the_same_traces():
    cfg = tiny_config(neuron_model="ALIF", recurrent=True, feedback="symmetric")
    by_target = {}
    for target in ("numpy", "cython"):
        brian2.start_scope()
        by_target[target] = run_brian_and_reference(cfg, target, steps=200)
    assert_histories_agree(by_target["cython"])
    assert by_target["numpy"]["brian_spikes"] == by_target["cython"]["brian_spikes"], "spike counts differ"
    for key, got in by_target["cython"]["got"].items():
        err = max_rel_err(got, by_target["numpy"]["got"][key])
        assert err <= 1e-9, f"{key}: cython and numpy differ by {err:.3g}"


# --------------------------------------------------------------------------------------
# Activity-sparse trace updates
# --------------------------------------------------------------------------------------


def sparse_error_bound(cfg: SpikingNetworkConfig, ns: dict, sum_abs_l: np.ndarray, lr: float) -> np.ndarray:
    """Bound on |w_sparse - w_dense| per postsynaptic neuron when both runs spike identically.

    A skipped update drops a trace below eps (and an input psi*zbar with zbar < eps);
    the dropped amounts decay through the trace filters (kappa, and rho for eps_a), and
    every skipped accumulation misses at most |L| eps.
    """
    eps, kappa, rho, beta = ns["sparse_eps"], ns["kappa"], ns["rho"], ns["beta"]
    psi_max = ns["gamma_pd"] / ns["v_th"]
    if cfg.neuron_model == "ALIF":
        drop_a = (psi_max + rho + psi_max * beta) * eps
        delta_a = drop_a / (1 - rho)
        drop_e = (kappa + psi_max * (1 + beta)) * eps
        delta_e = (drop_e + psi_max * beta * delta_a) / (1 - kappa)
    else:
        delta_e = (kappa + psi_max) * eps / (1 - kappa)
    return lr * sum_abs_l * (eps + delta_e)


@pytest.mark.parametrize("event_driven", [False, True], ids=["activity_sparse", "event_driven"])
@pytest.mark.parametrize("signed", [False, True], ids=["spikes", "signed_currents"])
@pytest.mark.parametrize("model", ["LIF", "ALIF"])
def test_activity_sparse_matches_dense_within_skip_tolerance(model, signed, event_driven):
    """Skipping trace updates changes weights by less than the skipped amounts can; with signed
    input currents too (zbar < 0 is activity: the gate tests its magnitude). Event-driven traces
    (decayed in closed form between updates) drop no more than activity-sparse ones."""
    runs = {}
    for sparse in (False, True):
        brian2.start_scope()
        cfg = tiny_config(
            neuron_model=model,
            activity_sparse=sparse,
            sparse_eps=1e-4,
            event_driven_traces=sparse and event_driven,
        )
        runs[sparse] = run_brian_and_reference(cfg, "numpy", signed=signed)
    dense, sparse = runs[False], runs[True]
    assert_histories_agree(sparse)  # the reference implements the skip rule too
    assert dense["brian_spikes"] == sparse["brian_spikes"], "skipping tiny traces should not change spikes"
    counts = sparse["net"].trace_update_counts()
    assert counts["skipped"] > 0, f"activity-sparse mode should skip some trace updates, got {counts}"
    assert counts["performed"] + counts["skipped"] == counts["total"], f"inconsistent counts {counts}"
    assert dense["net"].trace_update_counts()["skipped"] == 0, "dense mode never skips"
    cfg, ns = sparse["net"].config, sparse["net"].namespace
    sum_abs_l = np.sum(np.abs(dense["got"]["rec.L"]), axis=0)  # per recurrent neuron
    for key, short in (("syn_in.w", "in"), ("syn_rec.w", "rec")):
        _, j = sparse["net"].connectivity()[short]
        bound = sparse_error_bound(cfg, ns, sum_abs_l[j], cfg.learning_rate)
        diff = np.abs(sparse["got"][key][-1] - dense["got"][key][-1])
        assert np.all(diff <= bound + 1e-15), (
            f"{model} {key}: sparse and dense weights differ by up to {diff.max():.3g} (bound {bound.max():.3g})"
        )
        change = np.max(np.abs(dense["got"][key][-1] - dense["got"][key][0]))
        assert diff.max() < 0.05 * change, (
            f"{key}: the skip error should be small next to the learning itself"
        )


@pytest.mark.parametrize("model", ["LIF", "ALIF"])
def test_event_driven_traces_cost_only_reads_and_inputs(model):
    """With a learning signal one step in five (as at the actor-critic's decisions), event-driven
    traces match the reference's closed-form rule, stay within the skip bound of dense traces and
    perform fewer updates than activity-sparse ones: a trace that only decays is not touched."""
    errors = np.zeros((T, N_OUT))
    errors[::5] = np.random.default_rng(7).normal(0.0, 0.5, size=errors[::5].shape)
    runs = {}
    for mode in ("dense", "sparse", "event"):
        brian2.start_scope()
        cfg = tiny_config(
            neuron_model=model,
            activity_sparse=mode != "dense",
            sparse_eps=1e-4,
            event_driven_traces=mode == "event",
            learning_rate=1e-2,
        )
        runs[mode] = run_brian_and_reference(cfg, "numpy", errors=errors)
    event = runs["event"]
    assert_histories_agree(event)
    for short in ("in", "rec"):  # the Brian2 counters equal the reference's, synapse by synapse
        i, j = event["net"].connectivity()[short]
        syn = event["net"].syn_in if short == "in" else event["net"].syn_rec
        assert np.array_equal(syn.n_trace_updates[:], event["ref"].syn[short]["count"][j, i]), short
    performed = {m: runs[m]["net"].trace_update_counts()["performed"] for m in ("sparse", "event")}
    assert performed["event"] < 0.8 * performed["sparse"], (
        f"event-driven should skip decay-only steps: {performed}"
    )
    assert runs["dense"]["brian_spikes"] == event["brian_spikes"]
    cfg, ns = event["net"].config, event["net"].namespace
    sum_abs_l = np.sum(np.abs(runs["dense"]["got"]["rec.L"]), axis=0)
    for key, short in (("syn_in.w", "in"), ("syn_rec.w", "rec")):
        _, j = event["net"].connectivity()[short]
        bound = sparse_error_bound(cfg, ns, sum_abs_l[j], cfg.learning_rate)
        diff = np.abs(event["got"][key][-1] - runs["dense"]["got"][key][-1])
        assert np.all(diff <= bound + 1e-15), f"{model} {key}: off dense by {diff.max():.3g}"
        change = np.max(np.abs(runs["dense"]["got"][key][-1] - runs["dense"]["got"][key][0]))
        assert change > 0 and diff.max() < 0.05 * change, key


# --------------------------------------------------------------------------------------
# Builder, helpers and config
# --------------------------------------------------------------------------------------


def test_two_networks_share_one_brian_network_and_count_operations():
    prefs.codegen.target = "numpy"
    brian2.seed(4)
    cfg = SpikingNetworkConfig(n_recurrent=30, p_input=0.5, input_weight_scale=2.0, activity_sparse=True)
    a = build_eprop_network(6, 3, cfg, seed=1, name_prefix="agent")
    b = build_eprop_network(4, 2, cfg, input_kind="current", seed=2, name_prefix="world")
    net = Network(*a.objects, *b.objects)
    a.set_inputs(np.full(6, 0.8))
    b.set_inputs(np.linspace(0.0, 0.6, 4))
    a.set_errors([0.5, -0.5, 0.2])
    before = a.get_weights()
    net.run(60 * ms, namespace={})
    assert a.steps_done() == 60 and b.steps_done() == 60, "both networks advance with the shared Network"
    assert not np.allclose(a.get_weights()["w_in"], before["w_in"]), "e-prop should change input weights"
    counts = a.operation_counts()
    assert counts.spikes == a.spikes_in.num_spikes + a.spikes_rec.num_spikes > 0, "spikes should be counted"
    fan_in = np.bincount(a.syn_in.i[:], minlength=6)
    fan_rec = np.bincount(a.syn_rec.i[:], minlength=30) + 3
    expected = int(a.spikes_in.count[:] @ fan_in + a.spikes_rec.count[:] @ fan_rec)
    assert counts.synaptic_events == expected, f"synaptic events {counts.synaptic_events} != {expected}"
    assert counts.neuron_updates == (6 + 30 + 3) * 60, "neuron updates are neurons x steps"
    traces = a.trace_update_counts()
    assert counts.synapse_updates == traces["performed"] + len(a.syn_out) * 60, "trace + readout updates"
    assert counts.weight_updates == (len(a.syn_in) + len(a.syn_rec) + len(a.syn_out) + 3) * 2, "2 updates"
    # get/set weights round trip and run_args for standalone re-runs
    saved = a.get_weights()
    a.set_weights(before)
    assert np.array_equal(a.syn_in.w[:], before["w_in"]), "set_weights should restore the input weights"
    a.set_weights(saved)
    run_args = a.weight_run_args(saved)
    assert len(run_args) == 4, f"run_args should cover w_in, w_rec, w_out and b_out, got {len(run_args)}"
    assert np.all(b.readout_values() != 0), "current-driven network should produce nonzero readouts"


def test_config_rejects_bad_values_with_field_names():
    with pytest.raises(ConfigError, match="network.neuron_model"):
        SpikingNetworkConfig(neuron_model="HH")
    with pytest.raises(ConfigError, match="network.p_recurrent"):
        SpikingNetworkConfig(p_recurrent=1.5)
    with pytest.raises(ConfigError, match="network.feedback"):
        SpikingNetworkConfig(feedback="transposed")
    with pytest.raises(ConfigError, match="network.update_interval_steps"):
        SpikingNetworkConfig(update_interval_steps=0)
    with pytest.raises(ConfigError, match="network.input_rate_hz"):
        SpikingNetworkConfig(input_rate_hz=5000.0, dt_ms=1.0)
