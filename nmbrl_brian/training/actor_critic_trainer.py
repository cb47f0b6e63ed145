"""The actor-critic training loop: run the agent's schedule of phases, evaluate, log.

``learn()`` runs the training phases of the agent's schedule
(:func:`~nmbrl_brian.training.phases.schedule_for`: model-free ``[Real]``, model-based
``[Real, LearnModel, Dream]``, an agent that learns in Python :meth:`BaseAgent.interact`) once
per chunk; chunks end at evaluations and at the points callbacks ask for (checkpoints).
The Evaluate phase runs ``eval_episodes`` greedy episodes on a separate environment whose
seeds never overlap the training seeds. The whole state of the loop (agent, environment,
counters, metrics) is checkpointed as data (:mod:`nmbrl_brian.checkpoints`) so an
interrupted run resumes exactly.

Divergence: at every evaluation and before every checkpoint the agent's weights,
readouts and TD error are checked (:meth:`BaseAgent.check_finite`; agents may also
raise :class:`~nmbrl_brian.errors.DivergenceError` as soon as they see a non-finite
value). On the first one the run stops: ``metrics.csv`` gets a last row with
``diverged = True``, the last (finite) checkpoint is kept and the error names the
variable and the environment step.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from nmbrl_brian import seeding
from nmbrl_brian.agents.base import BaseAgent
from nmbrl_brian.build_cache import total_build_seconds
from nmbrl_brian.checkpoints import read_checkpoint, write_checkpoint
from nmbrl_brian.config import RESUME_OVERRIDES, RunConfig, from_dict
from nmbrl_brian.envs.env_loop import EnvLoop
from nmbrl_brian.errors import CheckpointError, ConfigError, DivergenceError
from nmbrl_brian.training.callbacks import Callback
from nmbrl_brian.training.metrics import metrics_frame
from nmbrl_brian.training.phases import schedule_for
from nmbrl_brian.world_models.base import BaseWorldModel

CHECKPOINT_FILE = "checkpoint.npz"
#: The kept policy: the agent state of the best evaluation (see ``_evaluate_kept_policy``).
BEST_POLICY_FILE = "best_policy.npz"
#: The ``kind`` of a trainer checkpoint (see :mod:`nmbrl_brian.checkpoints`).
CHECKPOINT_KIND = "actor_critic_run"


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
        self.schedule = schedule_for(agent)
        """The phases the trainer runs (:mod:`nmbrl_brian.training.phases`)."""
        self.eval_env = eval_env
        self.run_dir = Path(run_dir)
        self.callbacks = list(callbacks)
        self.loop = EnvLoop(env, seed=config.seed)
        self.rows: list[dict] = []
        self.train_returns: list[float] = []
        self.wall_s = 0.0
        self.eval_index = 0
        self.best: dict | None = None
        self.checkpoint_path: Path | None = None
        """The last checkpoint written or loaded (None before the first)."""
        self.checkpoint_step: int | None = None
        """Its environment step."""
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
        try:
            # overflow warnings are redundant: non-finite values stop the run with a DivergenceError
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                self._learn()
        except DivergenceError as exc:
            self._diverged(exc)
            raise
        except BaseException as exc:
            self.agent.close()
            for cb in self.callbacks:
                cb.on_training_abort(self, exc)
            raise
        finally:
            self.agent.close()
        return self.metrics

    def _learn(self) -> None:
        cfg = self.config
        for cb in self.callbacks:
            cb.on_training_start(self)
        if not self.rows:
            self._evaluate()
        while self.env_steps < cfg.total_env_steps and not self.reached_stop_return():
            start, built = time.perf_counter(), total_build_seconds()
            self.schedule.train(self.agent, self.loop, self._next_pause() - self.env_steps)
            # a standalone build in this chunk (a resumed run's first) is not training time
            self.wall_s += time.perf_counter() - start - (total_build_seconds() - built)
            if self._evaluation_due():
                self._evaluate()
            for cb in self.callbacks:
                cb.on_chunk_end(self)
        self._evaluate_kept_policy()
        for cb in self.callbacks:
            cb.on_training_end(self)

    def reached_stop_return(self) -> bool:
        """Whether the last evaluation of the training weights reached ``config.stop_at_return``."""
        rows = [r for r in self.rows if r.get("policy", "current") == "current" and not r.get("diverged")]
        return bool(rows) and rows[-1]["return_mean"] >= self.config.stop_at_return

    def _evaluate_kept_policy(self) -> None:
        """Evaluate the best evaluated weights again, on fresh episodes; save them as ``best_policy.npz``.

        The run ends with two policies: the final weights (the last ``current`` row) and
        the kept ones, those of the best evaluation so far (a ``kept`` row, evaluated on
        episodes none of the other evaluations saw). Learning continues from the final
        weights on ``--resume``.
        """
        if self.best is None:
            return
        final = self.agent.state_dict()
        self.agent.load_state_dict(self.best["agent"])
        try:
            write_checkpoint(
                self.run_dir / BEST_POLICY_FILE,
                {"agent": self.agent.name, "state": self.best["agent"]},
                kind="agent",
                meta={"env_steps": self.best["env_steps"]},
            )
            seed = seeding.kept_policy_seed(self.config.seed, self.config.eval_episodes)
            row = self._row(self.evaluate(seed=seed))
        finally:
            self.agent.load_state_dict(final)
        row.update(policy="kept", kept_from_env_steps=self.best["env_steps"])
        self.rows.append(row)
        for cb in self.callbacks:
            cb.on_evaluation(self, row)

    def _diverged(self, exc: DivergenceError) -> None:
        """Name the step and the last good checkpoint in ``exc``; add a ``diverged`` metrics row."""
        if exc.env_step is None:
            exc.env_step = self.env_steps
        if self.checkpoint_path is None:
            exc.note = "no checkpoint was written"
        else:
            exc.note = f"last good checkpoint (env step {self.checkpoint_step}): {self.checkpoint_path}"
        row = self._row(np.array([np.nan]))
        row.update(env_steps=exc.env_step, diverged=True, diverged_variable=exc.variable)
        self.rows.append(row)
        for cb in self.callbacks:
            cb.on_evaluation(self, row)
        for cb in self.callbacks:
            cb.on_training_abort(self, exc)

    def _next_evaluation(self, after: int) -> int:
        """The first evaluation point after ``after`` env steps: the next entry of
        ``eval_schedule``, else the next multiple of ``eval_every`` past the schedule."""
        later = [p for p in self.config.eval_schedule if p > after]
        if later:
            return later[0]
        every = self.config.eval_every
        start = self.config.eval_schedule[-1] if self.config.eval_schedule else 0
        return start + (max(after - start, 0) // every + 1) * every

    def _evaluation_due(self) -> bool:
        """The steps have reached the next evaluation point (or the budget).

        Agents that advance in whole runs (a standalone closed loop) may pass a point;
        the evaluation then happens at the first pause after it.
        """
        last = int(self.rows[-1]["env_steps"]) if self.rows else -1
        return self.env_steps >= self._next_evaluation(last) or self.env_steps >= self.config.total_env_steps

    def _next_pause(self) -> int:
        steps = self.env_steps
        candidates = [self._next_evaluation(steps)]
        candidates += [(steps // cb.every + 1) * cb.every for cb in self.callbacks if cb.every > 0]
        return min(min(candidates), self.config.total_env_steps)

    def evaluate(self, episodes: int | None = None, seed: int | None = None) -> np.ndarray:
        """Run greedy episodes on the evaluation env without learning; return their returns."""
        episodes = episodes or self.config.eval_episodes
        if seed is None:
            seed = seeding.evaluation_seed(self.config.seed, self.eval_index, self.config.eval_episodes)
        returns: list[float] = []
        loop = EnvLoop(self.eval_env, seed=seed, on_episode_end=lambda ret, length: returns.append(ret))
        self.schedule.evaluate(self.agent, loop, episodes, explore=False)
        return np.asarray(returns[:episodes])

    def _evaluate(self) -> None:
        self.agent.check_finite(self.env_steps)  # a diverged agent's evaluation would look ordinary
        row = self._row(self.evaluate())
        if self.best is None or row["return_mean"] >= self.best["return_mean"]:
            self.best = {
                "return_mean": row["return_mean"],
                "env_steps": self.env_steps,
                "agent": self.agent.state_dict(),
            }
        self.rows.append(row)
        self.eval_index += 1
        for cb in self.callbacks:
            cb.on_evaluation(self, row)

    def _row(self, returns: np.ndarray) -> dict:
        recent = self.train_returns[-20:]
        return {
            "env_steps": self.env_steps,
            "episodes": self.loop.episodes,
            "wall_s": round(self.wall_s, 4),
            "return_mean": float(returns.mean()),
            "return_std": float(returns.std()),
            "seed": self.config.seed,
            "train_return_recent": float(np.mean(recent)) if recent else float("nan"),
            "diverged": False,
            "policy": "current",
            **self.agent.progress(),
        }

    # ----------------------------------------------------------------------------------
    def save_checkpoint(self, path: str | Path | None = None) -> Path:
        """Write everything needed to continue this run exactly to ``run_dir/checkpoint.npz``.

        The agent is checked for non-finite values first, so a checkpoint is always a
        good one. Data only (:mod:`nmbrl_brian.checkpoints`), written atomically.

        Raises
        ------
        DivergenceError
            If the agent's weights, readouts or TD error are not finite (nothing is written).
        """
        path = Path(path) if path is not None else self.run_dir / CHECKPOINT_FILE
        self.agent.check_finite(self.env_steps)
        state = {
            "agent_name": self.agent.name,
            "config": self.config.to_dict(),
            "loop": self.loop.state_dict(),
            "agent": self.agent.state_dict(),
            "rows": self.rows,
            "train_returns": np.asarray(self.train_returns, dtype=float),
            "wall_s": self.wall_s,
            "eval_index": self.eval_index,
            "best": self.best,
        }
        meta = {"env_steps": self.env_steps, "agent": self.agent.name}
        write_checkpoint(path, state, kind=CHECKPOINT_KIND, meta=meta)
        self.checkpoint_path, self.checkpoint_step = path, self.env_steps
        return path

    def load_checkpoint(self, path: str | Path | None = None) -> None:
        """Restore a state written by :meth:`save_checkpoint`.

        Raises
        ------
        CheckpointError
            One line, if the file is damaged or foreign, was written by another agent or
            another config (only ``total_env_steps`` and ``checkpoint_every`` may differ),
            or does not restore (e.g. the environment replay differs).
        """
        path = Path(path) if path is not None else self.run_dir / CHECKPOINT_FILE
        state = read_checkpoint(path, kind=CHECKPOINT_KIND)
        try:
            if state["agent_name"] != self.agent.name:
                raise CheckpointError(
                    path, f"holds a {state['agent_name']!r} agent, this run has {self.agent.name!r}"
                )
            self._check_config(path, state["config"])
            self.loop.load_state_dict(state["loop"])
            self.agent.load_state_dict(state["agent"])
            # a kept-policy row describes the end of the earlier run; this one ends with its own
            self.rows = [dict(r) for r in state["rows"] if r.get("policy") != "kept"]
            self.train_returns = [float(r) for r in np.asarray(state["train_returns"], dtype=float)]
            self.wall_s = float(state["wall_s"])
            self.eval_index = int(state["eval_index"])
            self.best = state.get("best")
        except CheckpointError:
            raise
        except (KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:
            detail = " ".join(str(exc).split())[:200] or type(exc).__name__
            raise CheckpointError(path, f"does not restore this run ({detail})") from None
        self.checkpoint_path, self.checkpoint_step = path, self.env_steps
        self._attach()

    def _check_config(self, path: Path, saved: dict) -> None:
        """Refuse a checkpoint written under another config (beyond the resumable fields)."""
        try:
            theirs = from_dict(RunConfig, saved).to_dict()
        except ConfigError as exc:
            raise CheckpointError(path, f"holds an invalid config ({exc})") from None
        ours = self.config.to_dict()
        for key in RESUME_OVERRIDES:
            theirs.pop(key, None)
            ours.pop(key, None)
        if theirs != ours:
            field = _first_difference(theirs, ours)
            raise CheckpointError(
                path, f"was written by a run with another config ({field} differs from config.json)"
            )


def _first_difference(a: dict, b: dict, prefix: str = "") -> str:
    for key in sorted(set(a) | set(b)):
        if isinstance(a.get(key), dict) and isinstance(b.get(key), dict):
            if a[key] != b[key]:
                return _first_difference(a[key], b[key], f"{prefix}{key}.")
        elif a.get(key) != b.get(key):
            return f"{prefix}{key}"
    return prefix.rstrip(".") or "?"  # pragma: no cover - only called when a != b
