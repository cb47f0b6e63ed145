"""How many e-prop trace updates the activity-sparse mode saves, and what it costs in learning.

Figure: ``activity_sparse.png``, left: the fraction of eligibility-trace updates skipped
by the spiking actor-critic while it learns CartPole-v1, per skip threshold ``eps``
(median and range over seeds); right: the real environment steps it needed to reach an
evaluation mean of 475 with each threshold (dense updates beside them).
Claim: skipping the updates of synapses whose postsynaptic pseudo-derivative is zero and
whose traces and presynaptic filtered spikes are below ``eps`` removes a measurable share
of the trace updates (the clock-driven synaptic work that dominates an e-prop chip's
budget) without slowing learning at small ``eps``.

A parameter study: ``network.activity_sparse`` and ``network.sparse_eps`` are swept over
:data:`SETTINGS` on ``cartpole_snn.toml``, every other setting as shipped.

Writes under ``--out``: ``sweep.csv`` (tidy: one row per setting and seed with the trace
updates performed, skipped and in total, the skipped fraction, steps to 475 and the
Loihi energy of training), ``metrics.csv`` (all evaluations), ``activity_sparse.png``
and ``<setting>/runs/`` (one results folder per run). Re-running the same command
resumes unfinished runs and skips finished ones.

Usage::

    python experiments/activity_sparse.py --seeds 5 --out results/activity_sparse
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from nmbrl_brian.energy import training_joules
from nmbrl_brian.experiment_tools import (
    check_common_args,
    experiment_parser,
    median_steps,
    run_main,
    run_seeds,
    summarise_seeds,
)
from nmbrl_brian.plotting import save_figure
from nmbrl_brian.results import write_csv_atomic

CONFIG = Path(__file__).resolve().parents[1] / "nmbrl_brian" / "configs" / "cartpole_snn.toml"
#: Setting label -> skip threshold (None: dense trace updates).
SETTINGS = {"dense": None, "eps_1e-6": 1e-6, "eps_1e-3": 1e-3, "eps_1e-2": 1e-2}
FULL = ["total_env_steps=40000", "eval_every=5000", "checkpoint_every=10000"]
QUICK = ["total_env_steps=600", "eval_every=300", "eval_episodes=2", "checkpoint_every=300"]


def overrides_for(eps: float | None) -> list[str]:
    """``--set`` overrides of one setting."""
    if eps is None:
        return ["network.activity_sparse=false"]
    return ["network.activity_sparse=true", f"network.sparse_eps={eps!r}"]


def run_costs(runs: Path) -> pd.DataFrame:
    """Per seed (newest finished run): trace updates and the Loihi energy of training."""
    rows = {}
    for run in sorted(runs.glob("*/trace_updates.csv")):  # run folders sort by timestamp
        row = pd.read_csv(run).iloc[0].to_dict()
        energy = training_joules(pd.read_csv(run.parent / "energy.csv"))
        row["training_energy_loihi_j"] = float(energy["loihi"])
        rows[int(row["seed"])] = row
    table = pd.DataFrame(list(rows.values()))
    counts = ["seed", "performed", "skipped", "total", "env_steps"]
    return table.astype(dict.fromkeys(counts, "int64"))


def plot_sweep(sweep: pd.DataFrame, *, axes=None, **kwds):
    """Skipped fraction and steps to 475 per setting; returns the first Axes."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(10, 4))
    labels = list(dict.fromkeys(sweep["setting"]))
    x = np.arange(len(labels))
    for ax, column, ylabel in (
        (axes[0], "fraction_skipped", "trace updates skipped (fraction)"),
        (axes[1], "steps_to_475", "env steps to evaluation mean 475"),
    ):
        groups = [sweep.loc[sweep.setting == s, column].to_numpy(dtype=float) for s in labels]
        med = [np.nanmedian(g) if np.isfinite(g).any() else np.nan for g in groups]
        lo = [m - np.nanmin(g) if np.isfinite(g).any() else 0 for m, g in zip(med, groups)]
        hi = [np.nanmax(g) - m if np.isfinite(g).any() else 0 for m, g in zip(med, groups)]
        ax.bar(x, med, yerr=[lo, hi], capsize=4, color="0.6", **kwds)
        ax.set_xticks(x, labels)
        ax.set_ylabel(ylabel)
        ax.set_xlabel("trace updates (skip threshold eps)")
    axes[0].set_title("spiking actor-critic on CartPole-v1")
    return axes[0]


def main(argv: list[str] | None = None) -> int:
    args = experiment_parser(__doc__.splitlines()[0]).parse_args(argv)

    def body():
        check_common_args(args)
        out = Path(args.out)
        base = QUICK if args.quick else FULL
        rows, metrics = [], []
        for label, eps in SETTINGS.items():
            print(f"setting {label}", flush=True)
            runs = run_seeds(
                CONFIG, args.seeds, out / label, [*base, *overrides_for(eps)], workers=args.workers
            )
            summary = summarise_seeds(runs)
            table = run_costs(out / label / "runs").merge(
                summary[["seed", "steps_to_threshold", "best_return_mean"]], on="seed"
            )
            table = table.rename(columns={"steps_to_threshold": "steps_to_475"})
            rows.append(table.assign(setting=label, sparse_eps=np.nan if eps is None else eps))
            metrics.append(runs.assign(setting=label))
        sweep = pd.concat(rows, ignore_index=True)
        sweep = sweep[
            [
                "setting",
                "sparse_eps",
                "seed",
                "performed",
                "skipped",
                "total",
                "fraction_skipped",
                "steps_to_475",
                "best_return_mean",
                "training_energy_loihi_j",
                "env_steps",
            ]
        ]
        write_csv_atomic(sweep, out / "sweep.csv")
        write_csv_atomic(pd.concat(metrics, ignore_index=True), out / "metrics.csv")
        save_figure(plot_sweep(sweep), out / "activity_sparse.png")
        figures = {}
        for label in SETTINGS:
            sel = sweep[sweep.setting == label]
            if label != "dense":
                figures[f"skipped_{label}"] = float(sel["fraction_skipped"].median())
            figures[f"steps_to_475_{label}"] = median_steps(sel["steps_to_475"])
        return figures

    return run_main(body)


if __name__ == "__main__":
    sys.exit(main())
