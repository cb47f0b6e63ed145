"""Side effects of training, kept out of the loop: progress bar, metrics files, checkpoints.

A callback may ask the trainer to pause at multiples of :attr:`Callback.every`
environment steps; :meth:`Callback.on_chunk_end` is then called at those points.
The public ``on_*`` hooks are called by :class:`ActorCriticTrainer`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from nmbrl_brian.plotting import plot_learning_curve, save_figure
from nmbrl_brian.results import write_csv_atomic
from nmbrl_brian.training.metrics import training_rows

if TYPE_CHECKING:  # pragma: no cover
    from nmbrl_brian.training.actor_critic_trainer import ActorCriticTrainer


class Callback:
    """Base class: every hook does nothing."""

    #: Pause the loop at multiples of this many env steps to call :meth:`on_chunk_end` (0: never).
    every: int = 0

    def on_training_start(self, trainer: ActorCriticTrainer) -> None:
        """Called once before the first step (also after a resume)."""

    def on_chunk_end(self, trainer: ActorCriticTrainer) -> None:
        """Called whenever the loop pauses (evaluations and multiples of :attr:`every`)."""

    def on_evaluation(self, trainer: ActorCriticTrainer, row: dict) -> None:
        """Called with each new ``metrics.csv`` row."""

    def on_training_end(self, trainer: ActorCriticTrainer) -> None:
        """Called once after the last step."""

    def on_training_abort(self, trainer: ActorCriticTrainer, exc: BaseException) -> None:
        """Called instead of :meth:`on_training_end` when training stops early (divergence, Ctrl-C)."""


def progress_enabled() -> bool:
    """Show progress bars on a terminal, never under CI (``CI`` set) or when output is piped."""
    return sys.stderr.isatty() and not os.environ.get("CI")


class ProgressBar(Callback):
    """A tqdm bar over environment steps with the latest evaluation return."""

    def __init__(self) -> None:
        self.bar = None

    def on_training_start(self, trainer: ActorCriticTrainer) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(
            total=trainer.config.total_env_steps,
            initial=trainer.env_steps,
            unit="step",
            desc=trainer.config.run_name_stem,
            disable=not progress_enabled(),
        )

    def on_chunk_end(self, trainer: ActorCriticTrainer) -> None:
        if self.bar is not None:
            self.bar.update(trainer.env_steps - self.bar.n)

    def on_evaluation(self, trainer: ActorCriticTrainer, row: dict) -> None:
        if self.bar is not None:
            self.bar.set_postfix(eval_return=f"{row['return_mean']:.1f}")

    def on_training_end(self, trainer: ActorCriticTrainer) -> None:
        if self.bar is not None:
            self.bar.close()

    def on_training_abort(self, trainer: ActorCriticTrainer, exc: BaseException) -> None:
        self.on_training_end(trainer)


class MetricsWriter(Callback):
    """Rewrites ``metrics.csv`` after each evaluation and draws ``learning_curve.png`` at the end."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)

    def on_evaluation(self, trainer: ActorCriticTrainer, row: dict) -> None:
        write_csv_atomic(trainer.metrics, self.run_dir / "metrics.csv")

    def on_training_end(self, trainer: ActorCriticTrainer) -> None:
        df = trainer.metrics
        write_csv_atomic(df, self.run_dir / "metrics.csv")
        ax = plot_learning_curve(training_rows(df), label=trainer.config.run_name_stem)
        ax.axhline(475, ls="--", color="grey", lw=1)
        save_figure(ax, self.run_dir / "learning_curve.png")


class Checkpointer(Callback):
    """Saves a resumable checkpoint at the start, every ``every`` env steps and at the end of training.

    The first one (before any step) makes every interrupted or diverged run resumable.
    """

    def __init__(self, every: int):
        self.every = every
        self._saved_at: int | None = None

    def on_training_start(self, trainer: ActorCriticTrainer) -> None:
        self._saved_at = trainer.env_steps
        if trainer.checkpoint_path is None:
            trainer.save_checkpoint()

    def on_chunk_end(self, trainer: ActorCriticTrainer) -> None:
        # A multiple of ``every`` was reached (agents that advance in whole runs may pass it).
        if self.every and trainer.env_steps // self.every > (self._saved_at or 0) // self.every:
            trainer.save_checkpoint()
            self._saved_at = trainer.env_steps

    def on_training_end(self, trainer: ActorCriticTrainer) -> None:
        trainer.save_checkpoint()


class EnergyReport(Callback):
    """Prices the agent's operation counts with every energy profile (:mod:`nmbrl_brian.energy`).

    Files, for agents that count their operations (``operation_counts_by_phase()`` or
    ``operation_counts()``; :func:`~nmbrl_brian.energy.phase_counts`):

    - ``energy.csv`` at the end of training: tidy rows ``phase, operation, count, profile,
      joules`` (one per phase, profile and operation kind) with the run's ``env_steps`` and
      ``seed``. The profiles are the shipped ones and those of the config's ``energy_profiles``
      files.
    - ``energy_curve.csv`` at every evaluation: ``env_steps, phase, profile, joules`` spent so far
      (summed over operation kinds), for return-vs-energy curves
      (:func:`~nmbrl_brian.energy.return_vs_energy`). A resumed run keeps the rows up to its
      checkpoint.
    - ``trace_updates.csv`` at the end, for agents with e-prop traces: trace updates performed,
      skipped (activity-sparse mode) and in total.
    """

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self._profiles = None
        self._curve: list[pd.DataFrame] = []

    def _price(self, trainer: ActorCriticTrainer) -> pd.DataFrame | None:
        from nmbrl_brian.energy import load_profiles, phase_counts, price

        counts = phase_counts(trainer.agent)
        if counts is None:
            return None
        if self._profiles is None:
            self._profiles = load_profiles(trainer.config.energy_profiles)
        return price(counts, self._profiles)

    def on_training_start(self, trainer: ActorCriticTrainer) -> None:
        path = self.run_dir / "energy_curve.csv"
        if path.is_file():  # a resumed run: keep what was spent up to its checkpoint
            curve = pd.read_csv(path)
            self._curve = [curve[curve["env_steps"] <= trainer.env_steps]]

    def on_evaluation(self, trainer: ActorCriticTrainer, row: dict) -> None:
        if row.get("policy") == "kept":
            return
        table = self._price(trainer)
        if table is None:
            return
        spent = table.groupby(["phase", "profile"], sort=False)["joules"].sum().reset_index()
        self._curve.append(spent.assign(env_steps=trainer.env_steps))
        curve = pd.concat(self._curve, ignore_index=True)
        curve = curve.drop_duplicates(["env_steps", "phase", "profile"], keep="last")
        self._curve = [curve]
        write_csv_atomic(
            curve[["env_steps", "phase", "profile", "joules"]], self.run_dir / "energy_curve.csv"
        )

    def on_training_end(self, trainer: ActorCriticTrainer) -> None:
        table = self._price(trainer)
        if table is None:
            return
        table["env_steps"] = trainer.env_steps
        table["seed"] = trainer.config.seed
        for column, method in (("phase_steps", "steps_by_phase"), ("phase_periods", "periods_by_phase")):
            by_phase = getattr(trainer.agent, method, None)  # energy per step, per decision (period)
            if by_phase is not None:
                table[column] = table["phase"].map(by_phase()).fillna(0).astype(int)
        write_csv_atomic(table, self.run_dir / "energy.csv")
        traces = getattr(trainer.agent, "trace_update_counts", None)
        if traces is not None:
            row = traces()
            row["fraction_skipped"] = row["skipped"] / row["total"] if row["total"] else 0.0
            row.update(env_steps=trainer.env_steps, seed=trainer.config.seed)
            write_csv_atomic(pd.DataFrame([row]), self.run_dir / "trace_updates.csv")
