"""Environments: the real gymnasium env as a world model, and any world model as a gymnasium env."""

from nmbrl_brian.envs.environment_wrapper import EnvironmentWrapper, check_spaces
from nmbrl_brian.envs.world_model_env import WorldModelEnv

__all__ = ["EnvironmentWrapper", "WorldModelEnv", "check_spaces"]
