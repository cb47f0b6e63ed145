"""An independent integer NumPy implementation of Loihi's CUBA LIF compartment and its synapses.

Written from the published equations (Davies et al. 2018, IEEE Micro 38(1):82-99) in the
order of operations, rounding and overflow of Lava's bit-accurate model
(``lava.proc.lif.models.PyLifModelBitAcc``), with integer arithmetic only (``np.int64``, shifts):
it does not use the Brian2 code of :mod:`nmbrl_brian.equations.fixed_point`, which the tests
compare with it bit for bit. One time step ``k`` of :class:`LoihiLIF`::

    a[k] = sum_i m_ji * s_i[k] << (e_g + 6)                  (synaptic input, MSB-aligned)
    u[k] = wrap(sign(u) * ((|u| * (4096 - du)) >> 12) + a[k]) (wrap: -2M if > M, +2M if <= -M)
    v[k] = clip(sign(v) * ((|v| * (4096 - dv)) >> 12) + u[k] + bias - theta*s[k-1], -(M-1), M-1)
    s[k] = v[k] > theta and r <= 0;  r = R if s[k] else max(r - 1, 0)

with ``M = 2**(state_bits - 1)`` and 4096, 12 standing for ``2**decay_bits``, ``decay_bits``.
``theta*s[k-1]`` is the subtractive reset (the package's choice); with ``reset="zero"`` the
voltage is set to 0 right after a spike instead (Loihi 1, Lava), and the next decay keeps it 0.
The refractory counter ``r`` (``R`` steps) is the package's: it blocks spikes, not integration.
"""

from __future__ import annotations

import numpy as np


def decay(x: np.ndarray, d: int, decay_bits: int) -> np.ndarray:
    """Loihi's decay: ``sign(x) * ((|x| * (2**decay_bits - d)) >> decay_bits)`` in 64-bit integers."""
    x = np.asarray(x, dtype=np.int64)
    return np.sign(x) * np.right_shift(np.abs(x) * np.int64((1 << decay_bits) - d), decay_bits)


class LoihiLIF:
    """A population of integer CUBA LIF neurons (all state ``np.int64``).

    Parameters
    ----------
    n : int
        Number of neurons.
    du, dv : int
        Current and voltage decay constants in ``[0, 2**decay_bits]``.
    theta : int
        Threshold in state units.
    bias : array of int, optional
        Integer bias per neuron (mantissa already shifted by its exponent).
    state_bits, decay_bits : int
        Widths of ``u``, ``v`` and of the decay constants.
    reset : str
        ``"subtract"`` (``v`` loses ``theta`` with the next step's update) or ``"zero"``.
    refractory_steps : int
        Steps after a spike in which the neuron cannot spike.
    """

    def __init__(
        self,
        n: int,
        du: int,
        dv: int,
        theta: int,
        bias=None,
        state_bits: int = 24,
        decay_bits: int = 12,
        reset: str = "subtract",
        refractory_steps: int = 0,
    ):
        if reset not in ("subtract", "zero"):
            raise ValueError(f"reset: expected 'subtract' or 'zero', got {reset!r}")
        self.n, self.du, self.dv, self.theta = n, int(du), int(dv), int(theta)
        self.decay_bits, self.reset, self.refractory_steps = decay_bits, reset, int(refractory_steps)
        self.max_uv = 1 << (state_bits - 1)
        self.bias = np.zeros(n, np.int64) if bias is None else np.asarray(bias, dtype=np.int64)
        self.u = np.zeros(n, np.int64)
        self.v = np.zeros(n, np.int64)
        self.v_before_reset = np.zeros(n, np.int64)
        self.r = np.zeros(n, np.int64)
        self.s = np.zeros(n, bool)
        self.wraps = 0
        self.clips = 0

    def step(self, a_in: np.ndarray) -> np.ndarray:
        """Advance one step with integer synaptic input ``a_in`` (state units); return the spikes."""
        m = self.max_uv
        u = decay(self.u, self.du, self.decay_bits) + np.asarray(a_in, dtype=np.int64)
        wrapped = np.where(u > m, u - 2 * m, u)
        wrapped = np.where(wrapped <= -m, u + 2 * m, wrapped)
        self.wraps += int(np.sum(wrapped != u))
        self.u = wrapped
        v = decay(self.v, self.dv, self.decay_bits) + self.u + self.bias
        if self.reset == "subtract":
            v = v - self.theta * self.s.astype(np.int64)
        clipped = np.clip(v, -m + 1, m - 1)
        self.clips += int(np.sum(clipped != v))
        self.v_before_reset = clipped
        self.s = (clipped > self.theta) & (self.r <= 0)
        self.r = np.where(self.s, self.refractory_steps, np.maximum(self.r - 1, 0))
        self.v = np.where(self.s, 0, clipped) if self.reset == "zero" else clipped
        return self.s.copy()


class LoihiNetwork:
    """Inputs and a recurrent layer of :class:`LoihiLIF` neurons joined by integer weights.

    ``w_in[j, i]`` and ``w_rec[j, i]`` are signed mantissas; ``e_in``, ``e_rec`` the groups' shared
    exponents. A spike of step ``k`` reaches the synaptic input of step ``k + 1`` (Loihi's one-step
    delay); input spikes ``x[k]`` reach step ``k``.
    """

    ACT_SHIFT = 6

    def __init__(self, neurons: LoihiLIF, w_in: np.ndarray, e_in: int, w_rec: np.ndarray, e_rec: int):
        self.neurons = neurons
        self.w_in = np.asarray(w_in, dtype=np.int64)
        self.w_rec = np.asarray(w_rec, dtype=np.int64)
        self.shift_in = e_in + self.ACT_SHIFT
        self.shift_rec = e_rec + self.ACT_SHIFT

    def step(self, x: np.ndarray) -> np.ndarray:
        """One step with input spikes (or integer graded values) ``x``; returns the recurrent spikes."""
        x = np.asarray(x, dtype=np.int64)
        a = np.left_shift(self.w_in @ x, self.shift_in)
        a += np.left_shift(self.w_rec @ self.neurons.s.astype(np.int64), self.shift_rec)
        return self.neurons.step(a)
