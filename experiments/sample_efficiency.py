"""Sample efficiency on CartPole-v1: real environment steps to a greedy mean of 475, model-free vs model-based.

Figure: ``sample_efficiency.png``, the evaluation return (20 greedy episodes) against real
environment steps (log scale), median and interquartile range over seeds, for:

``dense_model_free``
    the dense TD(lambda) twin (``cartpole_dense.toml``) on the real environment;
``spiking_model_free``
    the spiking actor-critic (``cartpole_snn.toml``) on the real environment
    (cpp_standalone, CartPole as equations);
``spiking_model_based``
    the same agent learning in the dreams of the spiking world model learned from its
    own real steps (``cartpole_mbrl.toml``);
``spiking_in_linear_model``
    the same cycle with a linear model fitted to the same real data (a bound);
``spiking_in_perfect_model``
    the same cycle dreaming in the CartPole equations themselves (the bound that
    leaves only the agent's own learning);
``ppo`` (``--with-peers``, needs the ``peers`` extra)
    stable-baselines3 PPO with the rl-zoo CartPole-v1 hyperparameters.

Claim: the spiking agent learning in its spiking world model reaches 475 in at least 4
of 5 seeds with a median of at most 1,000 real steps, at least 10 times fewer than the
spiking model-free agent.

Protocol: evaluations every 100 real steps up to 2,000 and every 500 after; evaluation
episodes are never counted as real steps and never feed learning. A model-based seed
stops at its first evaluation >= 475 (``stop_at_return``; a cycle costs minutes of
dreaming); its policy no longer changes, so its curve in the figure holds that
evaluation afterwards, and its final return is that evaluation's. Writes under
``--out``: ``metrics.csv`` (tidy, all variants and seeds), ``summary.csv`` (per variant and
seed: steps to 475, best, final and kept-policy returns, wall time),
``sample_efficiency.png`` and ``runs/``. Re-running resumes unfinished seeds.

Usage::

    python experiments/sample_efficiency.py --seeds 5 --out results/sample_efficiency
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
EARLY = list(range(100, 2001, 100))


def schedule(total: int) -> str:
    """The evaluation points: every 100 steps up to 2,000, then every 500, up to ``total``."""
    points = [p for p in EARLY if p <= total]
    return "eval_schedule=[" + ",".join(map(str, points)) + "]"


def variants(quick: bool) -> dict[str, tuple[Path, list[str]]]:
    """Config file and overrides of every variant."""
    model_free_steps, model_based_steps = (300, 200) if quick else (40_000, 1_500)
    common = ["eval_every=500", "eval_episodes=2" if quick else "eval_episodes=20", "checkpoint_every=0"]
    mf = [*common, f"total_env_steps={model_free_steps}", schedule(model_free_steps)]
    mb = [*common, f"total_env_steps={model_based_steps}", schedule(model_based_steps), "stop_at_return=475"]
    if quick:
        mb += ["model_based.dream_steps=200", "network.n_recurrent=40"]
    spiking_mf = [*mf, "device=cpp_standalone", "periods_per_run=100"] if not quick else [*mf]
    quick_wm = ["world_model.network.n_recurrent=60", "world_model.min_updates=500"] if quick else []
    no_passes = ["model_based.model_patience=0"]  # the world-model stopping rule: the spiking model's only
    return {
        "dense_model_free": (CONFIGS / "cartpole_dense.toml", mf),
        "spiking_model_free": (CONFIGS / "cartpole_snn.toml", spiking_mf),
        "spiking_model_based": (
            CONFIGS / "cartpole_mbrl.toml",
            [*mb, "model_based.model=spiking", *quick_wm],
        ),
        "spiking_in_linear_model": (CONFIGS / "cartpole_mbrl.toml", [*mb, *no_passes, "model_based.model=linear"]),
        "spiking_in_perfect_model": (CONFIGS / "cartpole_mbrl.toml", [*mb, *no_passes, "model_based.model=perfect"]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = experiment_parser(__doc__.splitlines()[0])
    parser.add_argument("--with-peers", action="store_true", help="also run PPO (needs the 'peers' extra)")
    parser.add_argument("--only", default="", help="comma-separated variants to run (default: all)")
    args = parser.parse_args(argv)

    def body():
        check_common_args(args)
        out = Path(args.out)
        plan = variants(args.quick)
        if args.only:
            unknown = set(args.only.split(",")) - set(plan)
            if unknown:
                from nmbrl_brian.errors import ConfigError

                raise ConfigError("--only", "variants among " + ", ".join(plan), ",".join(sorted(unknown)))
            plan = {k: v for k, v in plan.items() if k in args.only.split(",")}
        metrics = {
            name: run_seeds(path, args.seeds, out / name, overrides, workers=args.workers)
            for name, (path, overrides) in plan.items()
        }
        if args.with_peers:
            from nmbrl_brian.peers import run_ppo_seeds

            total = 300 if args.quick else 40_000
            metrics["ppo"] = run_ppo_seeds(
                args.seeds, out / "ppo", total_steps=total, points=EARLY, episodes=2 if args.quick else 20
            )
        table, summary = tidy_tables(metrics, "variant")
        write_csv_atomic(table, out / "metrics.csv")
        write_csv_atomic(summary, out / "summary.csv")
        ax = None
        for name, df in metrics.items():
            ax = plot_return_quantiles(df, axes=ax, label=name, threshold=475.0)
        ax.set_xscale("log")
        save_figure(ax, out / "sample_efficiency.png")
        steps = {name: median_steps(df["steps_to_threshold"]) for name, df in summary.groupby("variant")}
        mb = summary[summary.variant == "spiking_model_based"]
        mbrl, model_free = (
            steps.get("spiking_model_based", float("nan")),
            steps.get("spiking_model_free", float("nan")),
        )
        return {
            "mbrl_steps_to_475_median": mbrl,
            "model_free_steps_to_475_median": model_free,
            "ratio": model_free / mbrl
            if mbrl == mbrl and model_free == model_free and mbrl > 0
            else float("nan"),
            "seeds_solved": f"{int(mb['steps_to_threshold'].notna().sum())}/{len(mb)}",
        }

    return run_main(body)


if __name__ == "__main__":
    sys.exit(main())
