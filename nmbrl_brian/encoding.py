"""Observation encodings shared by the dense and the spiking agents.

Gaussian population coding maps each observation dimension :math:`x_d` onto
:math:`K` neurons with preferred values :math:`\\mu_{d,k}` evenly spaced over
``[low_d, high_d]`` and tuning width :math:`\\sigma_d = w\\,(high_d - low_d)/(K - 1)`:

.. math:: r_{d,k}(x) = \\exp\\left(-\\frac{(x_d - \\mu_{d,k})^2}{2\\sigma_d^2}\\right)

The dense agent uses :math:`r` as its feature vector; the spiking agent scales it
into input firing rates (Poisson) or input currents.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nmbrl_brian.errors import ConfigError

#: Observation ranges covering CartPole-v1's reachable states (x, x_dot, theta, theta_dot).
CARTPOLE_OBS_LOW = (-2.4, -3.0, -0.21, -3.5)
CARTPOLE_OBS_HIGH = (2.4, 3.0, 0.21, 3.5)


@dataclass(frozen=True)
class EncodingConfig:
    """How observations are presented to an agent."""

    kind: str = "population"
    """``"population"`` (Gaussian population coding) or ``"raw"`` (the observation itself)."""
    neurons_per_dim: int = 10
    """Population-coding neurons per observation dimension (K >= 2)."""
    width: float = 0.6
    """Tuning width sigma as a fraction of the spacing between preferred values."""
    obs_low: tuple[float, ...] = CARTPOLE_OBS_LOW
    """Lower end of the encoded range per observation dimension (values are clipped)."""
    obs_high: tuple[float, ...] = CARTPOLE_OBS_HIGH
    """Upper end of the encoded range per observation dimension (values are clipped)."""

    def __post_init__(self) -> None:
        if self.kind not in ("population", "raw"):
            raise ConfigError("encoding.kind", "one of 'population', 'raw'", self.kind)
        if self.neurons_per_dim < 2:
            raise ConfigError("encoding.neurons_per_dim", "an integer >= 2", self.neurons_per_dim)
        if not self.width > 0:
            raise ConfigError("encoding.width", "a number > 0", self.width)
        if len(self.obs_low) != len(self.obs_high):
            raise ConfigError(
                "encoding.obs_high", f"a list of {len(self.obs_low)} numbers like obs_low", self.obs_high
            )
        if any(h <= lo for lo, h in zip(self.obs_low, self.obs_high)):
            raise ConfigError("encoding.obs_high", "values greater than obs_low", self.obs_high)


class PopulationEncoder:
    """Encodes observations with :class:`EncodingConfig`.

    Parameters
    ----------
    config : EncodingConfig
        The encoding settings.
    obs_dim : int
        Number of observation dimensions; must match the configured ranges.
    """

    def __init__(self, config: EncodingConfig, obs_dim: int):
        self.config = config
        self.obs_dim = obs_dim
        if config.kind == "population" and len(config.obs_low) != obs_dim:
            raise ConfigError(
                "encoding.obs_low",
                f"{obs_dim} values, one per observation dimension",
                f"{len(config.obs_low)} values",
            )
        k = config.neurons_per_dim
        if config.kind == "population":
            low = np.asarray(config.obs_low, dtype=float)
            high = np.asarray(config.obs_high, dtype=float)
            self.low, self.high = low, high
            self.centers = low[:, None] + (high - low)[:, None] * np.linspace(0.0, 1.0, k)[None, :]
            self.sigma = config.width * (high - low) / (k - 1)
            self.size = obs_dim * k
        else:
            self.size = obs_dim

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """Return the feature vector of ``obs`` (shape ``(size,)``), in [0, 1] for population coding."""
        obs = np.asarray(obs, dtype=float)
        if self.config.kind == "raw":
            return obs.copy()
        x = np.clip(obs, self.low, self.high)
        z = (x[:, None] - self.centers) / self.sigma[:, None]
        return np.exp(-0.5 * z * z).ravel()
