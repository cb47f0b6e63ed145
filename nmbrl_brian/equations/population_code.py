"""Gaussian population coding of an observation into input values, as Brian2 code.

Each observation dimension :math:`o_d` drives :math:`K` input neurons with preferred
values :math:`\\mu_{d,k}` evenly spaced over ``[low_d, high_d]`` and tuning width
:math:`\\sigma_d = w\\,(high_d - low_d)/(K - 1)`:

.. math:: x_{d,k} = \\exp\\left(-\\frac{(\\mathrm{clip}(o_d, low_d, high_d) - \\mu_{d,k})^2}{2\\sigma_d^2}\\right)

The same code as :class:`nmbrl_brian.encoding.PopulationEncoder` (NumPy), here run once
per environment period on the agent's input neurons, each of which reads its
dimension of the environment's ``obs`` port through a linked variable. ``x`` is then
sent as a current or used as a Poisson firing probability scale
(:mod:`nmbrl_brian.equations.eprop_neurons`).
"""

from __future__ import annotations

#: Added to the input neurons of an agent.
POPULATION_CODE_EQUATIONS = """
obs : 1 (linked)               # the observation dimension this neuron encodes (environment port)
center : 1 (constant)          # preferred value mu
width : 1 (constant)           # tuning width sigma
obs_low : 1 (constant)         # the encoded range: values are clipped to [obs_low, obs_high]
obs_high : 1 (constant)
"""

#: Once per period, after the environment step.
POPULATION_CODE = "x = exp(-0.5*((clip(obs, obs_low, obs_high) - center)/width)**2)"
