"""An independent plain-NumPy implementation of the e-prop network's discrete-time equations.

It computes what :func:`nmbrl_brian.snn.eprop_network.build_eprop_network` builds in
Brian2 (maths in :mod:`nmbrl_brian.equations.eprop_neurons` and
:mod:`nmbrl_brian.equations.eprop_synapses`), with dense weight matrices and a
connectivity mask, one time step at a time and in Brian2's order within a step:

====================  =========  ==================================================
slot                  order      operation
====================  =========  ==================================================
groups                -1         learning signal ``L = B err`` (summed variable)
before_thresholds     0          input neurons: ``zbar = alpha zbar + s``; new ``s``
before_thresholds     1          synapses: ``grad += L ebar``; advance traces;
                                 readout synapses: ``grad += err zbar_out``
thresholds            0          recurrent spikes ``z = [v > A][ref_left <= 0]``
synapses              -1         ``I_syn`` of recurrent and readout neurons
after_synapses        0          recurrent step (v, a, ref_left, zbar, zbar_out, psi);
                                 readout step (grad_b, y, bbar, y_target, err)
end                   0          every ``K`` steps (at steps 0, K, 2K, ...): weight
                                 updates ``w -= lr grad; grad = 0``
====================  =========  ==================================================

It is used by the tests as the ground truth the Brian2 network must match.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ReferenceParams:
    """Dimensionless constants of the discrete dynamics (as in the Brian2 namespace)."""

    alpha: float
    """Membrane decay per step."""
    kappa: float
    """Readout / trace-filter decay per step."""
    rho: float
    """Adaptation decay per step (ALIF)."""
    beta: float
    """Adaptation strength (0 for LIF)."""
    v_th: float
    """Threshold and reset amount."""
    gamma_pd: float
    """Pseudo-derivative dampening."""
    n_ref: int
    """Refractory steps."""
    adaptive: bool
    """ALIF (True) or LIF (False)."""
    update_interval: int
    """Weight update every this many steps."""
    activity_sparse: bool = False
    """Skip silent trace updates (see eprop_synapses)."""
    eps_skip: float = 1e-6
    """Skip criterion."""
    event_driven: bool = False
    """Update a trace only when read or fed, decaying it in closed form in between (see eprop_synapses)."""
    lr_hidden: float = 0.0
    """Step size of input and recurrent weights."""
    lr_readout: float = 0.0
    """Step size of readout weights and biases."""

    @classmethod
    def from_namespace(
        cls,
        ns: dict,
        *,
        adaptive: bool,
        update_interval: int,
        activity_sparse: bool,
        event_driven: bool = False,
        lr_hidden: float,
        lr_readout: float,
    ) -> ReferenceParams:
        """Take the constants from a Brian2 namespace built by the e-prop builder."""
        return cls(
            alpha=ns["alpha"],
            kappa=ns["kappa"],
            rho=ns["rho"],
            beta=ns["beta"] if adaptive else 0.0,
            v_th=ns["v_th"],
            gamma_pd=ns["gamma_pd"],
            n_ref=int(ns["refractory_steps"]),
            adaptive=adaptive,
            update_interval=update_interval,
            activity_sparse=activity_sparse,
            eps_skip=ns["sparse_eps"],
            event_driven=event_driven,
            lr_hidden=lr_hidden,
            lr_readout=lr_readout,
        )


class EpropReference:
    """E-prop network state and one-step update in NumPy.

    Parameters
    ----------
    params : ReferenceParams
        Constants of the dynamics.
    w_in : ndarray (n_rec, n_in)
        Input weights (0 where no synapse); ``mask_in`` marks existing synapses.
    w_rec : ndarray (n_rec, n_rec) or None
        Recurrent weights ``W[j, i]`` for ``i -> j``; None for a feed-forward layer.
    w_out : ndarray (n_out, n_rec)
        Readout weights.
    b_out : ndarray (n_out,)
        Readout biases.
    feedback : ndarray (n_rec, n_out) or None
        Random feedback ``B``; None for symmetric feedback (``B = w_out.T``).
    learn_hidden : bool
        Whether input/recurrent synapses carry traces and learn.
    supervised : bool
        ``err = y - y_target`` every step (else ``err`` is set by the caller).
    """

    def __init__(
        self,
        params: ReferenceParams,
        *,
        w_in,
        mask_in,
        w_rec,
        mask_rec,
        w_out,
        b_out,
        feedback=None,
        learn_hidden=True,
        supervised=True,
    ):
        self.p = params
        self.learn_hidden = learn_hidden
        self.supervised = supervised
        self.w_in = np.array(w_in, dtype=float)
        self.mask_in = np.asarray(mask_in, dtype=bool)
        self.w_rec = None if w_rec is None else np.array(w_rec, dtype=float)
        self.mask_rec = None if mask_rec is None else np.asarray(mask_rec, dtype=bool)
        self.w_out = np.array(w_out, dtype=float)
        self.b_out = np.array(b_out, dtype=float)
        self.feedback = None if feedback is None else np.array(feedback, dtype=float)
        n_rec, n_in = self.w_in.shape
        n_out = self.w_out.shape[0]
        zeros = np.zeros
        # neurons
        self.x_s, self.x_zbar = zeros(n_in), zeros(n_in)
        self.v, self.a, self.ref_left, self.psi = zeros(n_rec), zeros(n_rec), zeros(n_rec), zeros(n_rec)
        self.zbar, self.zbar_out, self.L = zeros(n_rec), zeros(n_rec), zeros(n_rec)
        self.y, self.bbar, self.err, self.y_target, self.grad_b = (zeros(n_out) for _ in range(5))
        # synapses: one (trace, eps_a, grad, count) set per learning synapse group
        self.syn = {"in": self._synapse_state(self.mask_in)}
        if self.w_rec is not None:
            self.syn["rec"] = self._synapse_state(self.mask_rec)
        self.grad_out = zeros((n_out, n_rec))
        self.step_index = 0
        self.last_spikes = zeros(n_rec, dtype=bool)

    @staticmethod
    def _synapse_state(mask):
        return {
            "ebar": np.zeros(mask.shape),
            "eps_a": np.zeros(mask.shape),
            "grad": np.zeros(mask.shape),
            "count": np.zeros(mask.shape, dtype=np.int64),
            "last": np.zeros(mask.shape, dtype=np.int64),  # step of the last update (event-driven)
            "mask": mask,
        }

    # ----------------------------------------------------------------------------------
    def threshold(self) -> np.ndarray:
        """Adaptive threshold ``A = v_th + beta a``."""
        return self.p.v_th + self.p.beta * self.a

    def _trace_step(self, st: dict, zbar_pre: np.ndarray) -> None:
        p = self.p
        psi = self.psi[:, None]
        zpre = zbar_pre[None, :]
        mask = st["mask"]
        if p.event_driven:
            self._event_trace_step(st, psi, zpre)
            return
        if p.activity_sparse:
            active = (np.abs(st["ebar"]) > p.eps_skip) | ((psi > 0) & (np.abs(zpre) > p.eps_skip))
            if p.adaptive:
                active |= np.abs(st["eps_a"]) > p.eps_skip
            gate = (active & mask).astype(float)
            st["count"] += (active & mask).astype(np.int64)
        else:
            gate = mask.astype(float)
        st["grad"] += gate * self.L[:, None] * st["ebar"]
        if p.adaptive:
            ebar = p.kappa * st["ebar"] + psi * (zpre - p.beta * st["eps_a"])
            eps_a = psi * zpre + (p.rho - psi * p.beta) * st["eps_a"]
            st["eps_a"] = gate * eps_a
        else:
            ebar = p.kappa * st["ebar"] + psi * zpre
        st["ebar"] = gate * ebar

    def _event_trace_step(self, st: dict, psi: np.ndarray, zpre: np.ndarray) -> None:
        """Event-driven trace step: bring the stored traces forward to the previous step, run the
        dense step where a learning signal reads a live trace or an input feeds one."""
        p = self.p
        lag = np.maximum(self.step_index - st["last"], 1)
        prev = st["ebar"] * p.kappa ** (lag - 1)
        live = np.abs(prev) > p.eps_skip
        fed = np.abs(zpre) > p.eps_skip
        if p.adaptive:
            prev_a = st["eps_a"] * p.rho ** (lag - 1)
            fed = fed | (np.abs(prev_a) > p.eps_skip)
        read = live & (self.L[:, None] != 0)
        active = (read | ((psi > 0) & fed)) & st["mask"]
        st["grad"] += np.where(active & live, self.L[:, None] * prev, 0.0)
        if p.adaptive:
            ebar = p.kappa * prev + psi * (zpre - p.beta * prev_a)
            st["eps_a"] = np.where(active, psi * zpre + (p.rho - psi * p.beta) * prev_a, st["eps_a"])
        else:
            ebar = p.kappa * prev + psi * zpre
        st["ebar"] = np.where(active, ebar, st["ebar"])
        st["last"] = np.where(active, self.step_index, st["last"])
        st["count"] += active.astype(np.int64)

    def step(self, x_t, *, y_target=None, err=None) -> np.ndarray:
        """Advance one time step.

        Parameters
        ----------
        x_t : ndarray (n_in,)
            What the input neurons send in this step (spikes 0/1 or currents).
        y_target : ndarray (n_out,), optional
            Supervised target of this step.
        err : ndarray (n_out,), optional
            External error, written before the step (like a caller between runs).

        Returns
        -------
        ndarray (n_rec,) of bool
            The recurrent spikes of this step.
        """
        p = self.p
        if err is not None:
            self.err = np.array(err, dtype=float)
        # groups: learning signal from the current error
        if self.learn_hidden:
            B = self.w_out.T if self.feedback is None else self.feedback
            self.L = B @ self.err
        # before_thresholds, order 0: input neurons
        self.x_zbar = p.alpha * self.x_zbar + self.x_s
        self.x_s = np.asarray(x_t, dtype=float).copy()
        # before_thresholds, order 1: traces and accumulators (with the previous step's values)
        if self.learn_hidden:
            self._trace_step(self.syn["in"], self.x_zbar)
            if "rec" in self.syn:
                self._trace_step(self.syn["rec"], self.zbar)
        self.grad_out += self.err[:, None] * self.zbar_out[None, :]
        # thresholds
        z = (self.v > self.threshold()) & (self.ref_left <= 0)
        zf = z.astype(float)
        # synapses
        i_rec = self.w_in @ self.x_s
        if self.w_rec is not None:
            i_rec = i_rec + self.w_rec @ zf
        i_out = self.w_out @ zf
        # after_synapses: recurrent step
        self.v = p.alpha * self.v + i_rec - p.v_th * zf
        if p.adaptive:
            self.a = p.rho * self.a + zf
        self.ref_left = np.where(z, float(p.n_ref), np.clip(self.ref_left - 1, 0, p.n_ref))
        self.zbar = p.alpha * self.zbar + zf
        self.zbar_out = p.kappa * self.zbar_out + zf
        self.psi = (
            p.gamma_pd
            / p.v_th
            * np.clip(1 - np.abs(self.v - self.threshold()) / p.v_th, 0, 1)
            * (self.ref_left <= 0)
        )
        # after_synapses: readout step
        self.grad_b += self.err * self.bbar
        self.y = p.kappa * self.y + i_out + self.b_out
        self.bbar = p.kappa * self.bbar + 1
        if self.supervised:
            if y_target is not None:
                self.y_target = np.asarray(y_target, dtype=float).copy()
            self.err = self.y - self.y_target
        # end: weight updates every K steps (at steps 0, K, 2K, ...)
        if self.step_index % p.update_interval == 0:
            self.apply_weight_update()
        self.step_index += 1
        self.last_spikes = z
        return z

    def apply_weight_update(self) -> None:
        """``w -= lr grad; grad = 0`` for every learning parameter."""
        p = self.p
        if self.learn_hidden:
            self.w_in -= p.lr_hidden * self.syn["in"]["grad"] * self.mask_in
            self.syn["in"]["grad"][:] = 0
            if "rec" in self.syn:
                self.w_rec -= p.lr_hidden * self.syn["rec"]["grad"] * self.mask_rec
                self.syn["rec"]["grad"][:] = 0
        self.w_out -= p.lr_readout * self.grad_out
        self.grad_out[:] = 0
        self.b_out -= p.lr_readout * self.grad_b
        self.grad_b[:] = 0


def reference_from_network(
    net, *, weights: dict | None = None, supervised: bool | None = None
) -> EpropReference:
    """A reference with the constants, weights and connectivity of a built :class:`EpropNetwork`.

    ``weights`` default to the network's current weights, or to the builder's initial
    weights where they cannot be read (a standalone device before its run).
    """
    cfg = net.config
    n_in, n_rec, n_out = len(net.inputs), len(net.recurrent), len(net.readout)
    params = ReferenceParams.from_namespace(
        net.namespace,
        adaptive=cfg.neuron_model == "ALIF",
        update_interval=cfg.update_interval_steps,
        activity_sparse=cfg.activity_sparse,
        event_driven=cfg.event_driven_traces,
        lr_hidden=cfg.learning_rate,
        lr_readout=cfg.readout_learning_rate,
    )
    conn = net.connectivity()
    if weights is None:
        try:
            weights = net.get_weights()
        except NotImplementedError:  # standalone, not run yet
            weights = net.initial_weights

    def dense(key: str, shape: tuple[int, int], values: np.ndarray):
        i, j = conn[key]
        w, mask = np.zeros(shape), np.zeros(shape, dtype=bool)
        w[j, i] = values
        mask[j, i] = True
        return w, mask

    w_in, mask_in = dense("in", (n_rec, n_in), weights["w_in"])
    w_rec = mask_rec = None
    if "rec" in conn:
        w_rec, mask_rec = dense("rec", (n_rec, n_rec), weights["w_rec"])
    w_out, _ = dense("out", (n_out, n_rec), weights["w_out"])
    feedback = None
    if "feedback" in conn:
        i, j = conn["feedback"]  # readout k -> recurrent j: B[j, k]
        feedback = np.zeros((n_rec, n_out))
        feedback[j, i] = weights["B"]
    return EpropReference(
        params,
        w_in=w_in,
        mask_in=mask_in,
        w_rec=w_rec,
        mask_rec=mask_rec,
        w_out=w_out,
        b_out=weights["b_out"],
        feedback=feedback,
        learn_hidden=cfg.hidden_learning,
        supervised=(net.error_mode == "supervised") if supervised is None else supervised,
    )
