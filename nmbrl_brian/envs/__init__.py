"""Environments: the real gymnasium env as a world model, any world model as a gymnasium env,
and the episode loop (:class:`EnvLoop`) that steps one and counts its episodes."""

from nmbrl_brian.envs.env_loop import EnvLoop, Transition
from nmbrl_brian.envs.environment_wrapper import EnvironmentWrapper, check_spaces
from nmbrl_brian.envs.world_model_env import WorldModelEnv

__all__ = ["EnvLoop", "EnvironmentWrapper", "Transition", "WorldModelEnv", "check_spaces"]
