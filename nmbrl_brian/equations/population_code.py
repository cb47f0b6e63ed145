"""Gaussian population coding of an observation into input values, as Brian2 code.

Each observation dimension :math:`o_d` drives :math:`K` input neurons with preferred
values :math:`\\mu_{d,k}` evenly spaced over ``[low_d, high_d]`` and tuning width
:math:`\\sigma_d = w\\,(high_d - low_d)/(K - 1)`, and a cut-off :math:`c` below which a neuron
sends nothing (``cutoff``; 0: every neuron sends its value, however small):

.. math::

    g_{d,k} = \\exp\\left(-\\frac{(\\mathrm{clip}(o_d, low_d, high_d) - \\mu_{d,k})^2}{2\\sigma_d^2}\\right),
    \\qquad x_{d,k} = g_{d,k}\\,[g_{d,k} \\ge c]

An input sends (a synaptic event on each of its synapses) only when :math:`x \\ne 0`, so a cut-off
of 0.01 keeps about :math:`2 \\cdot 3\\sigma` of each dimension's neurons active (with the default
width, 3-4 of 10) instead of all of them.

The same code as :class:`nmbrl_brian.encoding.PopulationEncoder` (NumPy), here run once
per environment period on the agent's input neurons, each of which reads its
dimension of the environment's ``obs`` port through a linked variable. ``x`` is then
sent as a current or used as a Poisson firing probability scale
(:mod:`nmbrl_brian.equations.eprop_neurons`).

Its parameters (:math:`K`, :math:`w`, the ranges) are :class:`EncodingConfig` (config
sections ``encoding`` and ``world_model.encoding``).
"""

from __future__ import annotations

from dataclasses import dataclass

from nmbrl_brian.errors import ConfigError

#: Observation ranges covering CartPole-v1's reachable states (x, x_dot, theta, theta_dot).
CARTPOLE_OBS_LOW = (-2.4, -3.0, -0.21, -3.5)
CARTPOLE_OBS_HIGH = (2.4, 3.0, 0.21, 3.5)


#: Added to the input neurons of an agent.
POPULATION_CODE_EQUATIONS = """
obs : 1 (linked)               # the observation dimension this neuron encodes (environment port)
center : 1 (constant)          # preferred value mu
width : 1 (constant)           # tuning width sigma
obs_low : 1 (constant)         # the encoded range: values are clipped to [obs_low, obs_high]
obs_high : 1 (constant)
cutoff : 1 (shared, constant)  # tuning values below this send nothing
"""

#: Once per period, after the environment step.
POPULATION_CODE = """
x = exp(-0.5*((clip(obs, obs_low, obs_high) - center)/width)**2)
x = x*int(x >= cutoff)
"""


@dataclass(frozen=True)
class EncodingConfig:
    """How observations are presented to an agent."""

    kind: str = "population"
    """``"population"`` (Gaussian population coding) or ``"raw"`` (the observation itself)."""
    neurons_per_dim: int = 10
    """Population-coding neurons per observation dimension (K >= 2)."""
    width: float = 0.6
    """Tuning width sigma as a fraction of the spacing between preferred values."""
    cutoff: float = 0.0
    """Tuning values below this fraction of the peak send nothing (0: every neuron sends, however
    weakly; 0.01: only the 3-4 neurons nearest the value at the default width, far fewer synaptic
    events)."""
    obs_low: tuple[float, ...] = CARTPOLE_OBS_LOW
    """Lower end of the encoded range per observation dimension (values are clipped)."""
    obs_high: tuple[float, ...] = CARTPOLE_OBS_HIGH
    """Upper end of the encoded range per observation dimension (values are clipped)."""

    def unused_fields(self) -> dict[str, str]:
        """Fields these settings make irrelevant, each with the reason.

        Returns
        -------
        dict of str to str
            Field name (within the section) to the reason (see :func:`nmbrl_brian.config.check_unused`).
        """
        if self.kind != "raw":
            return {}
        return {
            name: "encoding.kind is 'raw'"
            for name in ("neurons_per_dim", "width", "cutoff", "obs_low", "obs_high")
        }

    def __post_init__(self) -> None:
        if self.kind not in ("population", "raw"):
            raise ConfigError("encoding.kind", "one of 'population', 'raw'", self.kind)
        if self.neurons_per_dim < 2:
            raise ConfigError("encoding.neurons_per_dim", "an integer >= 2", self.neurons_per_dim)
        if not self.width > 0:
            raise ConfigError("encoding.width", "a number > 0", self.width)
        if not 0.0 <= self.cutoff < 1.0:
            raise ConfigError("encoding.cutoff", "a number in [0, 1)", self.cutoff)
        if len(self.obs_low) != len(self.obs_high):
            raise ConfigError(
                "encoding.obs_high", f"a list of {len(self.obs_low)} numbers like obs_low", self.obs_high
            )
        if any(h <= lo for lo, h in zip(self.obs_low, self.obs_high)):
            raise ConfigError("encoding.obs_high", "values greater than obs_low", self.obs_high)
