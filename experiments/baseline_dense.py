"""Dense (non-spiking) TD(lambda) actor-critic on CartPole-v1: the baseline to beat.

Figure: ``learning_curves.png``, the evaluation return (20 greedy episodes) vs real
environment steps, median and interquartile range over seeds.
Claim: the non-spiking twin of the spiking agent reaches an evaluation mean of 475
within 200k environment steps in at least 4 of 5 seeds.

Writes under ``--out``: ``metrics.csv`` (tidy, all seeds), ``summary.csv`` (per seed),
``learning_curves.png`` and ``runs/`` (one results folder per seed). Re-running the
same command resumes unfinished seeds and skips finished ones.

Usage::

    python experiments/baseline_dense.py --seeds 5 --out results/baseline_dense
"""

from __future__ import annotations

import sys
from pathlib import Path

from nmbrl_brian.experiment_tools import (
    check_common_args,
    experiment_parser,
    median_steps,
    run_main,
    run_seeds,
    summarise_seeds,
)
from nmbrl_brian.plotting import plot_return_quantiles, save_figure
from nmbrl_brian.results import write_csv_atomic

CONFIG = Path(__file__).resolve().parents[1] / "nmbrl_brian" / "configs" / "cartpole_dense.toml"
QUICK = ["total_env_steps=3000", "eval_every=1000", "eval_episodes=3"]


def main(argv: list[str] | None = None) -> int:
    args = experiment_parser(__doc__.splitlines()[0]).parse_args(argv)

    def body():
        check_common_args(args)
        out = Path(args.out)
        metrics = run_seeds(
            CONFIG, args.seeds, out, overrides=QUICK if args.quick else (), workers=args.workers
        )
        summary = summarise_seeds(metrics, threshold=475.0)
        write_csv_atomic(metrics, out / "metrics.csv")
        write_csv_atomic(summary, out / "summary.csv")
        ax = plot_return_quantiles(metrics, label="dense actor-critic", threshold=475.0)
        save_figure(ax, out / "learning_curves.png")
        solved = summary["steps_to_threshold"].notna()
        return {
            "steps_to_475_median": median_steps(summary["steps_to_threshold"]),
            "seeds_solved": f"{int(solved.sum())}/{len(summary)}",
            "wall_s_median": float(summary["wall_s"].median()),
        }

    return run_main(body)


if __name__ == "__main__":
    sys.exit(main())
