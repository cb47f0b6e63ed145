"""WorldModelTrainer: stored dataset, epoch and online schedules, resume."""

from __future__ import annotations

import numpy as np
import pytest

from nmbrl_brian.envs import EnvironmentWrapper
from nmbrl_brian.errors import ConfigError
from nmbrl_brian.training.world_model_trainer import (
    MODEL_CHECKPOINT_FILE,
    TRAINING_LOG_FILE,
    TRANSITIONS_FILE,
    WorldModelTrainer,
    WorldModelTrainingConfig,
)
from nmbrl_brian.world_models import LinearWorldModel, TransitionDataset


class CountingModel:
    """Records what it was trained on; checkpointable."""

    def __init__(self):
        self.seen: list[int] = []

    def train_epoch(self, data):
        self.seen.append(len(data))
        return {"n": len(data)}

    def state_dict(self):
        return {"seen": list(self.seen)}

    def load_state_dict(self, state):
        self.seen = list(state["seen"])


def test_epochs_mode_stores_data_and_log(tmp_path):
    model = CountingModel()
    cfg = WorldModelTrainingConfig(n_transitions=300, epochs=3, seed=1)
    log = WorldModelTrainer(model, EnvironmentWrapper(), tmp_path, cfg).train()
    assert model.seen == [300, 300, 300], f"three epochs over 300 transitions expected, got {model.seen}"
    assert list(log["epoch"]) == [0, 1, 2]
    for name in (TRANSITIONS_FILE, MODEL_CHECKPOINT_FILE, TRAINING_LOG_FILE):
        assert (tmp_path / name).is_file(), f"{name} missing"
    assert len(TransitionDataset.load(tmp_path / TRANSITIONS_FILE)) == 300


def test_online_mode_trains_each_chunk(tmp_path):
    model = CountingModel()
    cfg = WorldModelTrainingConfig(n_transitions=250, mode="online", online_chunk=100, epochs=2)
    log = WorldModelTrainer(model, EnvironmentWrapper(), tmp_path, cfg).train()
    assert model.seen == [100, 100, 100, 100, 50, 50], f"chunks of 100,100,50 twice each, got {model.seen}"
    assert list(log["transitions_seen"]) == [100, 100, 200, 200, 250, 250]


def test_resume_skips_finished_epochs(tmp_path):
    cfg = WorldModelTrainingConfig(n_transitions=200, epochs=4)
    first = CountingModel()
    trainer = WorldModelTrainer(
        first, EnvironmentWrapper(), tmp_path, WorldModelTrainingConfig(n_transitions=200, epochs=2)
    )
    trainer.train()
    second = CountingModel()
    WorldModelTrainer(second, EnvironmentWrapper(), tmp_path, cfg).train()
    assert second.seen == [200] * 4, f"resume should restore 2 epochs and add 2, got {second.seen}"


def test_fit_models_are_trained_once_per_epoch(tmp_path):
    model = LinearWorldModel.for_env("CartPole-v1")
    WorldModelTrainer(
        model, EnvironmentWrapper(), tmp_path, WorldModelTrainingConfig(n_transitions=400, epochs=1)
    ).train()
    data = TransitionDataset.load(tmp_path / TRANSITIONS_FILE)
    pred, _, _ = model.predict(data.obs[:50], data.action[:50])
    assert np.mean((pred - data.next_obs[:50]) ** 2) < 1e-3, (
        "the fitted linear model should predict CartPole closely"
    )


def test_config_validation():
    with pytest.raises(ConfigError, match=r"^world_model.mode"):
        WorldModelTrainingConfig(mode="batch")
