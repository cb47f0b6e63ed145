"""The direct input -> readout pathway of an e-prop network against a NumPy implementation of its rule."""

from __future__ import annotations

import brian2
import numpy as np
import pytest
from brian2 import Network, StateMonitor, ms, prefs

from nmbrl_brian.equations.eprop_neurons import SpikingNetworkConfig
from nmbrl_brian.snn.direct_readout import add_direct_readout, direct_readout_equations
from nmbrl_brian.snn.eprop_network import build_eprop_network

N_IN, N_REC, N_OUT = 5, 8, 2
STEPS = 120


@pytest.fixture(autouse=True)
def brian_scope():
    brian2.start_scope()
    prefs.codegen.target = "numpy"


def direct_reference(x, targets, mask, *, kappa, interval, lr, normalized):
    """NumPy history (steps x ...) of readouts fed only by the direct pathway: ``y``, ``grad``, ``w``.

    ``y^t = kappa y^{t-1} + W x^t`` (bias 0), ``err^t = y^t - y*^t``, ``xbar^t = kappa xbar^{t-1} + x^t``;
    step ``t`` accumulates ``err^{t-1} xbar^{t-1}`` (divided by the squared norm of each readout's
    direct inputs when normalised), and at the end of steps 0, K, 2K, ... ``W -= lr * grad``.
    """
    n_out, n_in = mask.T.shape
    w, grad = np.zeros((n_out, n_in)), np.zeros((n_out, n_in))
    y, xbar = np.zeros(n_out), np.zeros(n_in)
    err_prev, xbar_prev = np.zeros(n_out), np.zeros(n_in)
    hist = {"y": [], "grad": [], "w": []}
    for t in range(len(x)):
        norm = (mask.T * xbar_prev**2).sum(axis=1) + 1e-9 if normalized else np.ones(n_out)
        grad += mask.T * np.outer(err_prev / norm, xbar_prev)
        y = kappa * y + (w * mask.T) @ x[t]
        xbar = kappa * xbar + x[t]
        err_prev, xbar_prev = y - targets[t], xbar.copy()
        if t % interval == 0:
            w, grad = w - lr * grad, np.zeros_like(grad)
        hist["y"].append(y.copy())
        hist["grad"].append(grad.copy())
        hist["w"].append(w.copy())
    return {k: np.array(v) for k, v in hist.items()}


@pytest.mark.parametrize("normalized", [False, True])
def test_direct_pathway_follows_the_readout_rule(normalized):
    """Readouts fed only by the direct pathway follow y = kappa y + W x and learn W by err * xbar."""
    # tau_out differs from tau_m, so the readout filter kappa cannot pass for the membrane's alpha.
    cfg = SpikingNetworkConfig(
        n_recurrent=N_REC,
        p_input=0.8,
        input_weight_scale=3.0,
        tau_out_ms=10.0,
        update_interval_steps=10,
        readout_weight_scale=0.0,
        readout_learning_rate=0.0,
        learning_rate=0.0,
    )
    rng = np.random.default_rng(7)
    x = rng.normal(0.0, 0.5, (STEPS, N_IN))  # signed analog currents
    x[rng.random((STEPS, N_IN)) < 0.2] = 0.0  # a zero current sends nothing
    t = np.arange(STEPS)
    targets = np.stack([np.sin(t / 20.0), 0.5 * np.cos(t / 15.0)], axis=1)
    mask = np.ones((N_IN, N_OUT), dtype=bool)
    mask[0, 1] = mask[3, 0] = False
    lr = 0.3 if normalized else 0.02
    net = build_eprop_network(
        N_IN,
        N_OUT,
        cfg,
        input_kind="timed",
        error_mode="supervised",
        seed=2,
        name_prefix="direct",
        input_values=x,
        targets=targets,
        extra_equations=direct_readout_equations(normalized),
    )
    direct = add_direct_readout(net, mask, normalized=normalized, learning_rate=lr)
    mon_out = StateMonitor(net.readout, ["y"], record=True, when="end", order=100, name="mon_direct_out")
    mon_syn = StateMonitor(
        direct.synapses, ["w", "grad"], record=True, when="end", order=100, name="mon_direct"
    )
    Network(*net.objects, direct.synapses, mon_out, mon_syn).run(STEPS * cfg.dt_ms * ms, namespace={})

    assert net.spikes_rec.num_spikes > 0, "the recurrent layer should spike (its readout weights stay 0)"
    i, k = direct.indices
    assert len(i) == mask.sum() and np.all(mask[i, k]), "direct synapses should follow the connection mask"
    want = direct_reference(
        x, targets, mask, kappa=cfg.kappa, interval=cfg.update_interval_steps, lr=lr, normalized=normalized
    )
    np.testing.assert_allclose(
        np.asarray(mon_out.y).T,
        want["y"],
        rtol=0,
        atol=1e-9,
        err_msg="readouts differ from y = kappa y + W x",
    )
    for var in ("grad", "w"):
        np.testing.assert_allclose(
            np.asarray(getattr(mon_syn, var)).T,
            want[var][:, k, i],
            rtol=0,
            atol=1e-9,
            err_msg=f"direct synapse {var} differs from the readout rule",
        )
    assert np.max(np.abs(want["w"][-1])) > 1e-2, "the direct weights should have learned"
    counts = direct.counts(np.asarray(net.spikes_in.count[:]), STEPS, 12)
    sends = np.count_nonzero(x, axis=0)  # an input neuron "fires" whenever its current is nonzero
    assert counts.synaptic_events == int(sends @ mask.sum(axis=1)), "one event per nonzero send and synapse"
    assert counts.synapse_updates == mask.sum() * STEPS and counts.weight_updates == mask.sum() * 12


def test_direct_pathway_needs_its_equations():
    cfg = SpikingNetworkConfig(n_recurrent=N_REC)
    net = build_eprop_network(N_IN, N_OUT, cfg, input_kind="current", name_prefix="plain")
    with pytest.raises(ValueError, match="direct_readout_equations"):
        add_direct_readout(net, normalized=False, learning_rate=0.1)
    net = build_eprop_network(
        N_IN,
        N_OUT,
        cfg,
        input_kind="current",
        name_prefix="plain2",
        extra_equations=direct_readout_equations(False),
    )
    with pytest.raises(ValueError, match="connections: expected shape"):
        add_direct_readout(net, np.ones((N_OUT, N_IN), dtype=bool), normalized=False, learning_rate=0.1)
