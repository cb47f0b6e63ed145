"""What every experiment script shares: the ``--seeds/--out/--quick`` interface,
resumable multi-seed runs and the final ``key=value`` headline line.

An experiment script stays thin: it parses its arguments with
:func:`experiment_parser`, trains with :func:`run_seeds`, writes its tables and
figures under ``--out`` and ends with :func:`print_headline`.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from nmbrl_brian.config import load_config
from nmbrl_brian.errors import ConfigError, DeviceError
from nmbrl_brian.training.metrics import steps_to_threshold, summarise_seeds
from nmbrl_brian.training.run import find_run, run_finished, train_or_resume

# Re-exported for the experiment scripts: these live in product modules (the sweep uses them too).
__all__ = [
    "check_common_args",
    "experiment_parser",
    "find_run",
    "median_steps",
    "parallel_map",
    "print_headline",
    "run_finished",
    "run_main",
    "run_seeds",
    "steps_to_threshold",
    "summarise_seeds",
    "tidy_tables",
    "train_or_resume",
]


def experiment_parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the shared ``--seeds N``, ``--out DIR`` and ``--quick`` flags."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--seeds", type=int, default=5, help="number of seeds, 0..N-1 (default 5)")
    p.add_argument("--out", required=True, help="folder for tables, figures and per-seed runs")
    p.add_argument("--quick", action="store_true", help="smoke-sized run (used by the tests)")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="training runs at a time, each in its own process (default 1; at most the number of cores)",
    )
    return p


def check_common_args(args: argparse.Namespace) -> None:
    """Validate the shared flags; raise :class:`ConfigError` with a one-line message."""
    if args.seeds < 1:
        raise ConfigError("--seeds", "an integer >= 1", args.seeds)
    workers = getattr(args, "workers", 1)
    if workers < 1:
        raise ConfigError("--workers", "an integer >= 1", workers)


def run_main(body: Callable[[], dict[str, Any]]) -> int:
    """Run an experiment body; print its headline, or a one-line error with exit code 2."""
    try:
        headline = body()
    except (ConfigError, DeviceError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print_headline(headline)
    return 0


def print_headline(figures: dict[str, Any]) -> None:
    """Print the last line of an experiment: ``key=value`` pairs separated by spaces."""

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            if v != v:
                return "nan"
            return str(int(v)) if v.is_integer() else f"{v:.4g}"
        return str(v)

    print(" ".join(f"{k}={fmt(v)}" for k, v in figures.items()), flush=True)


def parallel_map(
    fn: Callable[[Any], Any], items: Sequence[Any], workers: int = 1, *, isolate: bool = False
) -> list[Any]:
    """``[fn(item) for item in items]``, in up to ``workers`` fresh processes when ``workers > 1``.

    Each worker is *spawned*, so it starts its own Brian2 (devices and code-generation
    state are never shared; compiled cython code is shared through Brian2's file-locked
    cache). ``fn`` and the items must be picklable: a module-level function, or a
    ``functools.partial`` of one. ``isolate=True`` gives every item a fresh process
    even with one worker (e.g. one standalone build per item).
    """
    items = list(items)
    if not isolate and (workers <= 1 or len(items) <= 1):
        return [fn(item) for item in items]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("spawn")
    pool_kw = {"max_tasks_per_child": 1} if isolate else {}
    with ProcessPoolExecutor(max_workers=min(workers, len(items)), mp_context=context, **pool_kw) as pool:
        return list(pool.map(fn, items))


def run_seeds(
    config_path: str | Path | None,
    seeds: int,
    out: str | Path,
    overrides: list[str] | tuple[str, ...] = (),
    *,
    workers: int = 1,
) -> pd.DataFrame:
    """Train seeds ``0..seeds-1`` of one config; resume or skip runs already under ``out/runs``.

    Parameters
    ----------
    config_path : str or Path, optional
        TOML config of the runs.
    seeds : int
        How many seeds.
    out : str or Path
        Experiment folder; each seed's results folder goes under ``out/runs``.
    overrides : list of str
        ``--set``-style overrides applied to every seed.
    workers : int
        Runs trained at the same time, each in a fresh (spawned) process; 1 trains them one
        after another in this process. Every run is seeded on its own, so the results do
        not depend on ``workers``.

    Returns
    -------
    pandas.DataFrame
        All seeds' ``metrics.csv`` rows concatenated (tidy; column ``seed`` tells them apart).
    """
    runs_root = Path(out) / "runs"
    configs = [load_config(config_path, overrides, seed=s) for s in range(seeds)]  # validate all first
    run_dirs = parallel_map(functools.partial(train_or_resume, runs_root=runs_root), configs, workers)
    return pd.concat([pd.read_csv(run_dir / "metrics.csv") for run_dir in run_dirs], ignore_index=True)


def tidy_tables(
    runs: dict[str, pd.DataFrame], column: str, threshold: float = 475.0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One tidy metrics table and one per-seed summary (:func:`summarise_seeds`) of several
    groups of runs, each row labelled with its group's name in ``column``."""
    metrics = pd.concat([df.assign(**{column: name}) for name, df in runs.items()], ignore_index=True)
    summary = pd.concat(
        [summarise_seeds(df, threshold).assign(**{column: name}) for name, df in runs.items()],
        ignore_index=True,
    )
    return metrics, summary


def median_steps(steps: pd.Series) -> float:
    """Median over all seeds, counting a seed that never reached the threshold (NaN) as infinite.

    Returns NaN when the median itself is such a seed (fewer than half solved).
    """
    import numpy as np

    med = float(np.median(steps.fillna(np.inf).to_numpy()))
    return med if np.isfinite(med) else float("nan")


def nj_per_period(energy: pd.DataFrame, agent: str, phase: str) -> pd.Series:
    """Median over seeds of the joules per period of ``phase`` (per profile), in nJ: one period of
    network time is one decision (and, while learning, one learning step).

    ``energy`` is a tidy table with ``agent, seed, phase, profile, joules, phase_periods``.
    """
    rows = energy[(energy.agent == agent) & (energy.phase == phase)]
    per_seed = rows.groupby(["profile", "seed"]).agg(joules=("joules", "sum"), steps=("phase_periods", "first"))
    per_seed = per_seed[per_seed.steps > 0]
    return (per_seed.joules / per_seed.steps).groupby("profile").median() * 1e9


def per_decision_table(energy: pd.DataFrame, agents: Sequence[str]) -> pd.DataFrame:
    """``agent, profile, nj_per_decision, nj_per_learning_step`` of spiking agents: the evaluation
    phase's energy per period (greedy, learning off) and that of the phase where the agent acts
    and learns: the dream for a model-based agent (its real phase may only act:
    ``model_based.learn_on_real``), the real phase for a model-free one."""

    def learning_phase(agent: str) -> str:
        return "dream" if ((energy.agent == agent) & (energy.phase == "dream")).any() else "real"

    return pd.concat(
        [
            pd.DataFrame(
                {
                    "agent": agent,
                    "nj_per_decision": nj_per_period(energy, agent, "evaluation"),
                    "nj_per_learning_step": nj_per_period(energy, agent, learning_phase(agent)),
                }
            )
            .rename_axis("profile")
            .reset_index()
            for agent in agents
        ],
        ignore_index=True,
    )[["agent", "profile", "nj_per_decision", "nj_per_learning_step"]]
