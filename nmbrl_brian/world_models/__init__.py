"""World models: the interface and its learned implementations."""

from nmbrl_brian.world_models.base import BaseWorldModel

__all__ = ["BaseWorldModel"]
