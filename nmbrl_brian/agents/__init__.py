"""Agents: the interface, the dense baseline and the spiking actor-critic."""

from nmbrl_brian.agents.base import BaseAgent
from nmbrl_brian.agents.config import AgentConfig

__all__ = ["AgentConfig", "BaseAgent"]
