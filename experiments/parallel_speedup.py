"""Concurrent vs sequential model-based learning: wall-clock time and real steps to a greedy mean of 475.

Figure: ``parallel_speedup.png``, evaluation return against training wall-clock time
(median over seeds) for the sequential cycle and for ``--parallel`` (a dreamer process
beside the acting and model-learning one).
Claim: on two cores the concurrent mode reaches 475 in less wall-clock time than the
sequential cycle, with a comparable number of real steps.

Runs ``cartpole_mbrl.toml`` (spiking world model) once sequentially and once with
``model_based.parallel = true`` per seed, one run at a time so that each has the machine
to itself (a parallel run uses two processes). ``wall_s`` is the trainer's training time
(acting, model learning and, sequentially, dreaming; evaluations excluded). A run stops at
its first evaluation >= 475 (``stop_at_return``) or after 1,500 real steps.

Writes under ``--out``: ``summary.csv`` (mode, seed, steps_to_475, wall_s_to_475, total
wall_s), ``metrics.csv`` and the figure. The last line: ``sequential_wall_s_median=<x>
parallel_wall_s_median=<x> speedup=<x> sequential_steps_to_475_median=<n>
parallel_steps_to_475_median=<n>``.

Usage::

    python experiments/parallel_speedup.py --seeds 3 --out results/parallel_speedup
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from nmbrl_brian.experiment_tools import (
    check_common_args,
    experiment_parser,
    median_steps,
    run_main,
    run_seeds,
)
from nmbrl_brian.plotting import save_figure
from nmbrl_brian.results import write_csv_atomic

CONFIG = Path(__file__).resolve().parents[1] / "nmbrl_brian" / "configs" / "cartpole_mbrl.toml"
QUICK = [
    "total_env_steps=200",
    "eval_episodes=2",
    "model_based.dream_steps=200",
    "network.n_recurrent=40",
    "world_model.network.n_recurrent=40",
    "world_model.min_updates=300",
]

#: Both modes stop at their first evaluation >= 475 (the figure of interest is the time to get there).
FULL = ["total_env_steps=1500", "stop_at_return=475"]


def summarise(metrics: pd.DataFrame, mode: str) -> pd.DataFrame:
    rows = []
    for seed, df in metrics[metrics["policy"] != "kept"].groupby("seed"):
        hit = df[df["return_mean"] >= 475]
        rows.append(
            {
                "mode": mode,
                "seed": seed,
                "steps_to_475": float(hit["env_steps"].iloc[0]) if len(hit) else float("nan"),
                "wall_s_to_475": float(hit["wall_s"].iloc[0]) if len(hit) else float("nan"),
                "wall_s": float(df["wall_s"].max()),
            }
        )
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = experiment_parser(__doc__.splitlines()[0])
    parser.set_defaults(seeds=3)
    args = parser.parse_args(argv)

    def body():
        check_common_args(args)
        out = Path(args.out)
        base = QUICK if args.quick else FULL
        modes = {"sequential": [*base], "parallel": [*base, "model_based.parallel=true"]}
        metrics = {
            mode: run_seeds(CONFIG, args.seeds, out / mode, overrides, workers=1)
            for mode, overrides in modes.items()
        }
        table = pd.concat([df.assign(mode=mode) for mode, df in metrics.items()], ignore_index=True)
        summary = pd.concat([summarise(df, mode) for mode, df in metrics.items()], ignore_index=True)
        write_csv_atomic(table, out / "metrics.csv")
        write_csv_atomic(summary, out / "summary.csv")

        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        for mode, df in metrics.items():
            df = df[df["policy"] != "kept"]
            curve = df.groupby("env_steps")[["wall_s", "return_mean"]].median()
            ax.plot(curve["wall_s"], curve["return_mean"], marker="o", ms=3, label=mode)
        ax.axhline(475, ls="--", color="grey", lw=1)
        ax.set_xlabel("training wall-clock time (s)")
        ax.set_ylabel("evaluation return (median over seeds)")
        ax.legend()
        save_figure(ax, out / "parallel_speedup.png")

        def med(mode: str, column: str) -> float:
            values = summary.loc[summary["mode"] == mode, column].to_numpy()
            return float(np.median(values)) if len(values) else float("nan")

        seq, par = med("sequential", "wall_s_to_475"), med("parallel", "wall_s_to_475")
        return {
            "sequential_wall_s_median": seq,
            "parallel_wall_s_median": par,
            "speedup": seq / par if par == par and par > 0 and seq == seq else float("nan"),
            "sequential_steps_to_475_median": median_steps(
                summary.loc[summary["mode"] == "sequential", "steps_to_475"]
            ),
            "parallel_steps_to_475_median": median_steps(
                summary.loc[summary["mode"] == "parallel", "steps_to_475"]
            ),
        }

    return run_main(body)


if __name__ == "__main__":
    sys.exit(main())
