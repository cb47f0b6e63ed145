"""Training a world model on real transitions: collect, store, train, checkpoint.

:class:`WorldModelTrainer` collects real transitions with a given policy (uniform
random by default) into ``transitions.npz`` in its run folder, then trains the model
either in epochs over the stored dataset or online, chunk by chunk as transitions
arrive. Collection and training both resume: the dataset continues where it
stopped, and finished epochs (saved in ``world_model.npz``, a data-only checkpoint:
:mod:`nmbrl_brian.checkpoints`) are not repeated.

A model is trained through ``train_epoch(dataset) -> dict`` when it has one (the
spiking world model: one pass of online e-prop over the data), else through
``fit(dataset)`` (closed-form or internally iterated baselines).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from nmbrl_brian.checkpoints import read_checkpoint, write_checkpoint
from nmbrl_brian.errors import CheckpointError, ConfigError
from nmbrl_brian.results import write_csv_atomic
from nmbrl_brian.world_models.base import BaseWorldModel
from nmbrl_brian.world_models.dataset import TransitionDataset, collect_transitions

TRANSITIONS_FILE = "transitions.npz"
MODEL_CHECKPOINT_FILE = "world_model.npz"
#: The ``kind`` of a world-model training checkpoint.
MODEL_CHECKPOINT_KIND = "world_model_training"
TRAINING_LOG_FILE = "world_model_training.csv"


@dataclass(frozen=True)
class WorldModelTrainingConfig:
    """How much real data to collect and how to train on it."""

    n_transitions: int = 5_000
    """Real transitions to collect (the sample budget of the world model)."""
    mode: str = "epochs"
    """``"epochs"``: collect everything, then pass over it ``epochs`` times; ``"online"``: train on each chunk as it arrives."""
    epochs: int = 5
    """Passes over the dataset in ``epochs`` mode (passes over each chunk in ``online`` mode)."""
    online_chunk: int = 500
    """Transitions per chunk in ``online`` mode."""
    seed: int = 0
    """Seed of the collection episodes."""

    def __post_init__(self) -> None:
        if self.n_transitions < 1:
            raise ConfigError("world_model.n_transitions", "an integer >= 1", self.n_transitions)
        if self.mode not in ("epochs", "online"):
            raise ConfigError("world_model.mode", "one of 'epochs', 'online'", self.mode)
        if self.epochs < 1:
            raise ConfigError("world_model.epochs", "an integer >= 1", self.epochs)
        if self.online_chunk < 1:
            raise ConfigError("world_model.online_chunk", "an integer >= 1", self.online_chunk)


class WorldModelTrainer:
    """Collects real transitions and trains a world model on them, resumably.

    Parameters
    ----------
    model : object
        A world model with ``train_epoch(dataset) -> dict`` or ``fit(dataset)``, and
        ``state_dict()`` / ``load_state_dict(state)`` for checkpoints when trained in epochs.
    env : BaseWorldModel
        The real environment to collect from.
    run_dir : str or Path
        Folder for ``transitions.npz``, the model checkpoint and the training log.
    config : WorldModelTrainingConfig
        Budget and schedule.
    policy : BaseAgent or callable, optional
        Collection policy; uniform random if None.
    on_epoch_end : callable, optional
        Called with each training-log row (for progress display).
    """

    def __init__(
        self,
        model: Any,
        env: BaseWorldModel,
        run_dir: str | Path,
        config: WorldModelTrainingConfig = WorldModelTrainingConfig(),
        *,
        policy: Any = None,
        on_epoch_end: Callable[[dict], None] | None = None,
    ):
        self.model = model
        self.env = env
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.config = config
        self.policy = policy
        self.on_epoch_end = on_epoch_end
        self.log: list[dict] = []

    @property
    def dataset_path(self) -> Path:
        """Where the collected transitions are stored."""
        return self.run_dir / TRANSITIONS_FILE

    def collect(self, n_transitions: int | None = None) -> TransitionDataset:
        """Collect up to ``n_transitions`` (default: the config's budget), continuing a stored dataset."""
        n = n_transitions if n_transitions is not None else self.config.n_transitions
        return collect_transitions(self.env, self.policy, n, seed=self.config.seed, path=self.dataset_path)

    # ----------------------------------------------------------------------------------
    def train(self) -> pd.DataFrame:
        """Collect and train according to the config; return the training log."""
        self._load_checkpoint()
        if self.config.mode == "epochs":
            data = self.collect()
            for epoch in range(self._epochs_done(), self.config.epochs):
                self._train_once(data, epoch=epoch, transitions_seen=len(data))
        else:
            chunk, total, passes = self.config.online_chunk, self.config.n_transitions, self.config.epochs
            n_chunks = -(-total // chunk)
            for i in range(self._epochs_done() // passes, n_chunks):
                start, stop = i * chunk, min((i + 1) * chunk, total)
                new = self.collect(stop).subset(slice(start, stop))
                while self._epochs_done() < (i + 1) * passes:
                    self._train_once(new, epoch=self._epochs_done(), transitions_seen=stop)
        return pd.DataFrame(self.log)

    def _epochs_done(self) -> int:
        return len(self.log)

    def _train_once(self, data: TransitionDataset, *, epoch: int, transitions_seen: int) -> None:
        start = time.perf_counter()
        if hasattr(self.model, "train_epoch"):
            stats = dict(self.model.train_epoch(data) or {})
        else:
            self.model.fit(data)
            stats = {}
        row = {
            "epoch": epoch,
            "transitions_seen": transitions_seen,
            "wall_s": time.perf_counter() - start,
            **stats,
        }
        self.log.append(row)
        self._save_checkpoint()
        if self.on_epoch_end is not None:
            self.on_epoch_end(row)

    def _save_checkpoint(self) -> None:
        if hasattr(self.model, "state_dict"):
            state = {"model": self.model.state_dict(), "log": self.log}
            write_checkpoint(self.run_dir / MODEL_CHECKPOINT_FILE, state, kind=MODEL_CHECKPOINT_KIND)
        write_csv_atomic(pd.DataFrame(self.log), self.run_dir / TRAINING_LOG_FILE)
        (self.run_dir / "world_model_config.json").write_text(
            json.dumps(self.config.__dict__, indent=2) + "\n"
        )

    def _load_checkpoint(self) -> None:
        path = self.run_dir / MODEL_CHECKPOINT_FILE
        if path.is_file() and hasattr(self.model, "load_state_dict"):
            state = read_checkpoint(path, kind=MODEL_CHECKPOINT_KIND)
            try:
                self.model.load_state_dict(state["model"])
                self.log = [dict(row) for row in state["log"]]
            except (KeyError, ValueError, TypeError, IndexError) as exc:
                detail = " ".join(str(exc).split())[:200] or type(exc).__name__
                raise CheckpointError(path, f"does not fit this model ({detail})") from None
