"""Acrobot-v1: the spiking actor-critic and its dense twin on a second environment, from configs alone.

Figure: ``learning_curves.png``, the evaluation return (10 greedy episodes) vs real
environment steps, median and interquartile range over seeds, spiking and dense.
Claim: with ``acrobot_snn.toml`` (the CartPole network; the population code over
Acrobot's ranges, the dense twin's step sizes and the direct readout) the spiking agent
ends with an evaluation mean of at least -100 in at least 3 of 5 seeds within 100k real
steps; no code is specific to Acrobot.

Every run ends with two policies: its final weights and the kept ones (the weights of its
best evaluation, evaluated again on fresh episodes). ``snn_final_return_median`` is the
final weights' last evaluation; ``snn_kept_return_median`` the kept policy's;
``snn_seeds_solved`` counts the runs whose kept policy scores at least -100 (the policy a
run ends with). Acrobot's return is minus the steps to swing the tip above the bar
(-500: not within the 500-step limit).

Writes under ``--out``: ``metrics.csv`` (tidy, both agents, all seeds), ``summary.csv``
(per agent and seed: steps to -100, best, final and kept returns, wall time),
``learning_curves.png`` and ``runs/``. Re-running the same command resumes unfinished seeds.

Usage::

    python experiments/acrobot.py --seeds 5 --workers 2 --out results/acrobot
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
    tidy_tables,
)
from nmbrl_brian.plotting import plot_return_quantiles, save_figure
from nmbrl_brian.results import write_csv_atomic

CONFIGS = Path(__file__).resolve().parents[1] / "nmbrl_brian" / "configs"
THRESHOLD = -100.0
AGENTS = {"spiking_actor_critic": "acrobot_snn.toml", "dense_actor_critic": "acrobot_dense.toml"}
QUICK = ["total_env_steps=600", "eval_every=300", "eval_episodes=1", "checkpoint_every=300"]
FULL = ["total_env_steps=50000", "checkpoint_every=10000"]


def overrides(agent: str, quick: bool) -> list[str]:
    """The runs' budget: 50k real steps (``--quick``: 600, and a 40-neuron spiking network)."""
    if not quick:
        return FULL
    return [*QUICK, "network.n_recurrent=40"] if agent == "spiking_actor_critic" else QUICK


def main(argv: list[str] | None = None) -> int:
    parser = experiment_parser(__doc__.splitlines()[0])
    args = parser.parse_args(argv)

    def body():
        check_common_args(args)
        out = Path(args.out)
        agents = {
            name: run_seeds(
                CONFIGS / config, args.seeds, out / name, overrides(name, args.quick), workers=args.workers
            )
            for name, config in AGENTS.items()
        }
        metrics, summary = tidy_tables(agents, "agent", THRESHOLD)
        write_csv_atomic(metrics, out / "metrics.csv")
        write_csv_atomic(summary, out / "summary.csv")
        ax = None
        for name, df in agents.items():
            ax = plot_return_quantiles(df, axes=ax, label=name, threshold=THRESHOLD)
        ax.set_title("Acrobot-v1")
        save_figure(ax, out / "learning_curves.png")
        snn = summary[summary.agent == "spiking_actor_critic"]
        dense = summary[summary.agent == "dense_actor_critic"]
        return {
            "snn_final_return_median": float(snn["final_return_mean"].median()),
            "dense_final_return_median": float(dense["final_return_mean"].median()),
            "snn_seeds_solved": f"{int((snn['kept_return_mean'] >= THRESHOLD).sum())}/{len(snn)}",
            "snn_kept_return_median": float(snn["kept_return_mean"].median()),
            "snn_steps_to_minus100_median": median_steps(snn["steps_to_threshold"]),
        }

    return run_main(body)


if __name__ == "__main__":
    sys.exit(main())
