"""The actor-critic training loop: collect experience, evaluate, log; learning is online.

``learn()`` advances the agent through :meth:`BaseAgent.interact` in chunks that end
at evaluations and at the points callbacks ask for (checkpoints). Evaluation runs
``eval_episodes`` greedy episodes on a separate environment whose seeds never
overlap the training seeds. The whole state of the loop (agent, environment,
counters, metrics) is checkpointed so an interrupted run resumes exactly.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from nmbrl_brian.agents.base import BaseAgent
from nmbrl_brian.config import RunConfig
from nmbrl_brian.results import read_pickle, write_pickle_atomic
from nmbrl_brian.training.callbacks import Callback, metrics_frame
from nmbrl_brian.training.env_loop import EnvLoop
from nmbrl_brian.world_models.base import BaseWorldModel

CHECKPOINT_FILE = "checkpoint.pkl"


def evaluation_seed(run_seed: int, eval_index: int, eval_episodes: int) -> int:
    """First reset seed of evaluation ``eval_index``; disjoint from training seeds (< 10**6)."""
    return 10**6 * (1 + run_seed) + eval_index * eval_episodes


class ActorCriticTrainer:
    """Trains an agent online against any :class:`BaseWorldModel` and evaluates it.

    Parameters
    ----------
    config : RunConfig
        The resolved run configuration.
    agent : BaseAgent
        The agent to train.
    env : BaseWorldModel
        Where training experience comes from (the real environment or a world model).
    eval_env : BaseWorldModel
        Where evaluation episodes run (normally the real environment).
    run_dir : str or Path
        The results folder of this run.
    callbacks : sequence of Callback
        Side effects (progress bar, metrics files, checkpoints).
    """

    def __init__(
        self,
        config: RunConfig,
        agent: BaseAgent,
        env: BaseWorldModel,
        eval_env: BaseWorldModel,
        run_dir: str | Path,
        callbacks: Sequence[Callback] = (),
    ):
        self.config = config
        self.agent = agent
        self.eval_env = eval_env
        self.run_dir = Path(run_dir)
        self.callbacks = list(callbacks)
        self.loop = EnvLoop(env, seed=config.seed)
        self.rows: list[dict] = []
        self.train_returns: list[float] = []
        self.wall_s = 0.0
        self.eval_index = 0
        self._attach()

    def _attach(self) -> None:
        self.loop.on_episode_end = lambda ret, length: self.train_returns.append(ret)

    @property
    def env_steps(self) -> int:
        """Real environment steps taken so far."""
        return self.loop.env_steps

    @property
    def metrics(self) -> pd.DataFrame:
        """The evaluation rows so far as a tidy DataFrame."""
        return metrics_frame(self.rows)

    # ----------------------------------------------------------------------------------
    def learn(self) -> pd.DataFrame:
        """Train until ``config.total_env_steps``; return the metrics table."""
        cfg = self.config
        for cb in self.callbacks:
            cb.on_training_start(self)
        if not self.rows:
            self._evaluate()
        while self.env_steps < cfg.total_env_steps:
            start = time.perf_counter()
            self.agent.interact(self.loop, max_steps=self._next_pause() - self.env_steps)
            self.wall_s += time.perf_counter() - start
            if self._evaluation_due():
                self._evaluate()
            for cb in self.callbacks:
                cb.on_chunk_end(self)
        for cb in self.callbacks:
            cb.on_training_end(self)
        return self.metrics

    def _evaluation_due(self) -> bool:
        """The steps have reached the next multiple of ``eval_every`` (or the budget).

        Agents that advance in whole runs (a standalone closed loop) may pass a multiple;
        the evaluation then happens at the first pause after it.
        """
        last = int(self.rows[-1]["env_steps"]) if self.rows else -1
        next_due = (last // self.config.eval_every + 1) * self.config.eval_every
        return self.env_steps >= next_due or self.env_steps >= self.config.total_env_steps

    def _next_pause(self) -> int:
        steps = self.env_steps
        periods = [self.config.eval_every] + [cb.every for cb in self.callbacks if cb.every > 0]
        candidates = [(steps // p + 1) * p for p in periods]
        return min(min(candidates), self.config.total_env_steps)

    def evaluate(self, episodes: int | None = None, seed: int | None = None) -> np.ndarray:
        """Run greedy episodes on the evaluation env without learning; return their returns."""
        episodes = episodes or self.config.eval_episodes
        if seed is None:
            seed = evaluation_seed(self.config.seed, self.eval_index, self.config.eval_episodes)
        returns: list[float] = []
        loop = EnvLoop(self.eval_env, seed=seed, on_episode_end=lambda ret, length: returns.append(ret))
        self.agent.interact(loop, max_episodes=episodes, explore=False, learn=False)
        return np.asarray(returns[:episodes])

    def _evaluate(self) -> None:
        returns = self.evaluate()
        recent = self.train_returns[-20:]
        row = {
            "env_steps": self.env_steps,
            "episodes": self.loop.episodes,
            "wall_s": round(self.wall_s, 4),
            "return_mean": float(returns.mean()),
            "return_std": float(returns.std()),
            "seed": self.config.seed,
            "train_return_recent": float(np.mean(recent)) if recent else float("nan"),
        }
        self.rows.append(row)
        self.eval_index += 1
        for cb in self.callbacks:
            cb.on_evaluation(self, row)

    # ----------------------------------------------------------------------------------
    def save_checkpoint(self, path: str | Path | None = None) -> Path:
        """Write everything needed to continue this run exactly to ``run_dir/checkpoint.pkl``."""
        path = Path(path) if path is not None else self.run_dir / CHECKPOINT_FILE
        state = {
            "loop": self.loop,
            "agent": self.agent.state_dict(),
            "rows": self.rows,
            "train_returns": self.train_returns,
            "wall_s": self.wall_s,
            "eval_index": self.eval_index,
        }
        write_pickle_atomic(state, path)
        return path

    def load_checkpoint(self, path: str | Path | None = None) -> None:
        """Restore a state written by :meth:`save_checkpoint`."""
        path = Path(path) if path is not None else self.run_dir / CHECKPOINT_FILE
        state = read_pickle(path)
        self.loop = state["loop"]
        self.agent.load_state_dict(state["agent"])
        self.rows = state["rows"]
        self.train_returns = state["train_returns"]
        self.wall_s = state["wall_s"]
        self.eval_index = state["eval_index"]
        self._attach()


def steps_to_threshold(metrics: pd.DataFrame, threshold: float = 475.0) -> float:
    """First ``env_steps`` at which ``return_mean >= threshold``, or NaN if never reached."""
    hit = metrics.loc[metrics["return_mean"] >= threshold, "env_steps"]
    return float(hit.iloc[0]) if len(hit) else float("nan")
