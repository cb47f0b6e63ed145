"""Parts of a closed loop: bundles of Brian2 objects named by a prefix.

A part never creates a ``brian2.Network`` and never calls ``run``; :class:`nmbrl_brian.loop.ClosedLoop`
joins parts into one network and runs it. Environment parts offer the same ports
(:mod:`nmbrl_brian.equations.environment`), so an agent part never knows which
environment it is wired to.
"""

from nmbrl_brian.parts.agent import ActorCriticPart
from nmbrl_brian.parts.base import EnvironmentPart, Part
from nmbrl_brian.parts.cartpole import CartPolePart
from nmbrl_brian.parts.gymnasium import GymnasiumPart

__all__ = ["ActorCriticPart", "CartPolePart", "EnvironmentPart", "GymnasiumPart", "Part"]
