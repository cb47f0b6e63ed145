"""Agents: the interface, the dense baseline and the spiking actor-critic."""

from nmbrl_brian.agents.base import BaseAgent
from nmbrl_brian.agents.dense_actor_critic import DenseActorCritic, DenseNetworkConfig

__all__ = ["BaseAgent", "DenseActorCritic", "DenseNetworkConfig"]
