"""Settings of an e-prop spiking network (config section ``network``).

:class:`SpikingNetworkConfig` is the one place where the network's parameters are
defined (the unit is in the field name: ``_ms``, ``_hz``); its :meth:`~SpikingNetworkConfig.namespace`
hands them to Brian2 under the same names, beside the constants derived from them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from nmbrl_brian.errors import ConfigError

NEURON_MODELS = ("LIF", "ALIF")
FEEDBACK_KINDS = ("random", "symmetric")
CONFIG_INPUT_KINDS = ("poisson", "current")


@dataclass(frozen=True)
class SpikingNetworkConfig:
    """A recurrent LIF/ALIF layer with leaky readouts, trained by e-prop (Bellec et al. 2020)."""

    neuron_model: str = "LIF"
    """``"LIF"`` or ``"ALIF"`` (adaptive threshold) recurrent neurons."""
    n_recurrent: int = 200
    """Number of recurrent neurons."""
    recurrent: bool = True
    """Recurrent connections between the spiking neurons (off: a single feed-forward spiking layer)."""
    p_input: float = 0.2
    """Connection probability input -> recurrent (traces exist only for existing synapses)."""
    p_recurrent: float = 0.1
    """Connection probability recurrent -> recurrent (no self-connections)."""
    input_kind: str = "poisson"
    """``"poisson"`` (spike with probability ``x * input_rate_hz * dt``) or ``"current"`` (send ``x``)."""
    input_rate_hz: float = 200.0
    """Firing rate of a Poisson input neuron at ``x = 1``."""
    dt_ms: float = 1.0
    """Simulation time step of the network."""
    steps_per_env_step: int = 20
    """Network time steps per environment step."""
    tau_m_ms: float = 20.0
    """Membrane time constant."""
    tau_out_ms: float = 20.0
    """Time constant of the leaky readouts and of the eligibility-trace filter."""
    tau_adapt_ms: float = 200.0
    """Time constant of threshold adaptation (ALIF only)."""
    beta: float = 0.5
    """Threshold increase per unit of adaptation (ALIF only)."""
    v_th: float = 1.0
    """Spike threshold (dimensionless membrane units; also the subtractive reset)."""
    refractory_ms: float = 2.0
    """Refractory period after a spike (whole time steps)."""
    gamma_pd: float = 0.3
    """Dampening factor of the pseudo-derivative."""
    feedback: str = "symmetric"
    """Learning-signal feedback: ``"symmetric"`` (B = W_out^T) or ``"random"`` (fixed random B)."""
    update_interval_steps: int = 20
    """Apply the accumulated e-prop gradients every this many time steps."""
    activity_sparse: bool = False
    """Skip eligibility-trace updates of silent synapses (and count them)."""
    sparse_eps: float = 1e-6
    """Skip criterion of the activity-sparse mode (traces and filtered spikes below it count as 0)."""
    direct_readout: bool = False
    """The inputs also reach the readouts through learned weights (the readout rule), beside the
    recurrent layer: the part of the task linear in the input code needs no spiking layer."""
    hidden_learning: bool = True
    """Learn input and recurrent weights with e-prop (off: only the readouts learn)."""
    learning_rate: float = 1e-3
    """E-prop step size of the input and recurrent weights."""
    readout_learning_rate: float = 1e-3
    """Step size of the readout weights and biases."""
    input_weight_scale: float = 0.5
    """Input weights ~ N(0, (scale * v_th)^2 / (n_inputs * p_input))."""
    recurrent_weight_scale: float = 0.5
    """Recurrent weights ~ N(0, (scale * v_th)^2 / (n_recurrent * p_recurrent))."""
    readout_weight_scale: float = 1.0
    """Readout weights ~ N(0, scale^2 / n_recurrent)."""
    feedback_weight_scale: float = 1.0
    """Random feedback weights ~ N(0, scale^2 / n_outputs)."""

    # ----------------------------------------------------------------------------------
    # Derived constants and the Brian2 namespace
    @property
    def dt(self):
        """The time step as a Brian2 quantity."""
        from brian2 import ms

        return self.dt_ms * ms

    @property
    def period(self):
        """Network time of one environment step (``steps_per_env_step * dt``) as a Brian2 quantity."""
        return self.steps_per_env_step * self.dt

    @property
    def alpha(self) -> float:
        """Membrane decay per step, ``exp(-dt/tau_m)``."""
        return math.exp(-self.dt_ms / self.tau_m_ms)

    @property
    def kappa(self) -> float:
        """Readout (and eligibility-trace filter) decay per step, ``exp(-dt/tau_out)``."""
        return math.exp(-self.dt_ms / self.tau_out_ms)

    @property
    def rho(self) -> float:
        """Adaptation decay per step, ``exp(-dt/tau_adapt)``."""
        return math.exp(-self.dt_ms / self.tau_adapt_ms)

    @property
    def refractory_steps(self) -> int:
        """The refractory period in whole steps."""
        return int(round(self.refractory_ms / self.dt_ms))

    def namespace(self) -> dict[str, Any]:
        """Constants for Brian2's ``namespace=``: derived decay factors, then parameters under their own names."""
        return {
            "alpha": self.alpha,
            "kappa": self.kappa,
            "rho": self.rho,
            "refractory_steps": float(self.refractory_steps),
            "beta": float(self.beta) if self.neuron_model == "ALIF" else 0.0,
            "v_th": float(self.v_th),
            "gamma_pd": float(self.gamma_pd),
            "input_rate_hz": float(self.input_rate_hz),
            "sparse_eps": float(self.sparse_eps),
        }

    def unused_fields(self) -> dict[str, str]:
        """Fields that these settings make irrelevant, each with the reason (see :func:`nmbrl_brian.config.check_unused`)."""
        unused = {}
        if self.neuron_model == "LIF":
            for name in ("tau_adapt_ms", "beta"):
                unused[name] = "neuron_model is 'LIF' (no adaptation)"
        if self.input_kind != "poisson":
            unused["input_rate_hz"] = f"input_kind is {self.input_kind!r}"
        if not self.recurrent:
            for name in ("p_recurrent", "recurrent_weight_scale"):
                unused[name] = "recurrent is false"
        if not self.activity_sparse:
            unused["sparse_eps"] = "activity_sparse is false"
        if not self.hidden_learning:
            for name in (
                "learning_rate",
                "feedback",
                "feedback_weight_scale",
                "activity_sparse",
                "sparse_eps",
            ):
                unused[name] = "hidden_learning is false"
        elif self.feedback == "symmetric":
            unused["feedback_weight_scale"] = "feedback is 'symmetric'"
        return unused

    def __post_init__(self) -> None:
        def need(ok: bool, name: str, allowed: str) -> None:
            if not ok:
                raise ConfigError(f"network.{name}", allowed, getattr(self, name))

        def positive(name: str) -> None:
            value = getattr(self, name)
            need(isinstance(value, (int, float)) and math.isfinite(value) and value > 0, name, "a number > 0")

        def non_negative(name: str) -> None:
            value = getattr(self, name)
            need(
                isinstance(value, (int, float)) and math.isfinite(value) and value >= 0, name, "a number >= 0"
            )

        def probability(name: str) -> None:
            value = getattr(self, name)
            need(isinstance(value, (int, float)) and 0.0 <= value <= 1.0, name, "a probability in [0, 1]")

        def choice(name: str, options: tuple[str, ...]) -> None:
            need(getattr(self, name) in options, name, "one of " + ", ".join(repr(o) for o in options))

        def integer(name: str, minimum: int) -> None:
            value = getattr(self, name)
            need(
                isinstance(value, int) and not isinstance(value, bool) and value >= minimum,
                name,
                f"an integer >= {minimum}",
            )

        choice("neuron_model", NEURON_MODELS)
        integer("n_recurrent", 1)
        need(isinstance(self.recurrent, bool), "recurrent", "true or false")
        probability("p_input")
        probability("p_recurrent")
        choice("input_kind", CONFIG_INPUT_KINDS)
        non_negative("input_rate_hz")
        positive("dt_ms")
        integer("steps_per_env_step", 1)
        for name in ("tau_m_ms", "tau_out_ms", "tau_adapt_ms", "v_th", "gamma_pd"):
            positive(name)
        non_negative("beta")
        non_negative("refractory_ms")
        choice("feedback", FEEDBACK_KINDS)
        integer("update_interval_steps", 1)
        need(isinstance(self.activity_sparse, bool), "activity_sparse", "true or false")
        non_negative("sparse_eps")
        need(isinstance(self.hidden_learning, bool), "hidden_learning", "true or false")
        need(isinstance(self.direct_readout, bool), "direct_readout", "true or false")
        for name in ("learning_rate", "readout_learning_rate"):
            non_negative(name)
        for name in (
            "input_weight_scale",
            "recurrent_weight_scale",
            "readout_weight_scale",
            "feedback_weight_scale",
        ):
            non_negative(name)
        need(
            self.input_rate_hz * self.dt_ms * 1e-3 <= 1.0,
            "input_rate_hz",
            f"at most 1/dt = {1e3 / self.dt_ms:g} Hz (one spike per step)",
        )
