"""Observation encodings shared by the dense and the spiking agents.

Gaussian population coding maps each observation dimension :math:`x_d` onto
:math:`K` neurons with preferred values :math:`\\mu_{d,k}` evenly spaced over
``[low_d, high_d]`` and tuning width :math:`\\sigma_d = w\\,(high_d - low_d)/(K - 1)`:

.. math:: r_{d,k}(x) = \\exp\\left(-\\frac{(x_d - \\mu_{d,k})^2}{2\\sigma_d^2}\\right)

The dense agent uses :math:`r` as its feature vector; the spiking agent scales it
into input firing rates (Poisson) or input currents.
"""

from __future__ import annotations

import numpy as np

from nmbrl_brian.equations.population_code import EncodingConfig
from nmbrl_brian.errors import ConfigError


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
        g = np.exp(-0.5 * z * z).ravel()
        return np.where(g >= self.config.cutoff, g, 0.0)
