"""World models: the interface, training data, evaluation and learned implementations."""

from nmbrl_brian.world_models.base import BaseWorldModel
from nmbrl_brian.world_models.baselines import LinearWorldModel, MLPWorldModel, PredictiveWorldModel
from nmbrl_brian.world_models.dataset import TransitionDataset, collect_transitions
from nmbrl_brian.world_models.termination import termination_fn_for

__all__ = [
    "BaseWorldModel",
    "LinearWorldModel",
    "MLPWorldModel",
    "PredictiveWorldModel",
    "TransitionDataset",
    "collect_transitions",
    "termination_fn_for",
]
