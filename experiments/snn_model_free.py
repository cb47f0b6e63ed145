"""Spiking actor-critic (reward-based e-prop) learning CartPole-v1 online from real steps, on any Brian2 device.

Figure: ``learning_curves.png``, the evaluation return (20 greedy episodes) vs real
environment steps, median and interquartile range over seeds, for the spiking agent
with the dense TD(lambda) baseline beside it.
Claim: the spiking agent, learning only with local traces inside one Brian2 closed loop,
reaches an evaluation mean of 475 within 100k environment steps in 5 of 5 seeds in
runtime mode (gymnasium behind a network operation) and in at least 4 of 5 under
``--device cpp_standalone`` (CartPole as Brian2 equations, no Python in the loop).

Every run ends with two policies: its final weights and the kept ones (the weights of
its best evaluation, evaluated once more on fresh episodes; ``best_policy.npz``). The
headline's ``final_return_median`` is the final weights' last evaluation, and
``seeds_ending_475`` counts the runs whose kept policy scores at least 475.

Writes under ``--out``: ``metrics.csv`` (tidy, both agents, all seeds), ``summary.csv``
(per agent and seed: steps to 475, wall time, env steps per second), ``energy.csv``
(tidy: operation counts and joules per agent, seed, phase, operation and energy profile),
``learning_curves.png``, ``energy_breakdown.png`` (training energy per profile, phase and
operation, spiking vs dense, median over seeds), ``return_vs_energy.png`` (evaluation return
vs training energy spent, Loihi and 45 nm CMOS prices, one line per agent and seed) and ``runs/``.
Re-running the same command resumes unfinished seeds and skips finished ones.

Usage::

    python experiments/snn_model_free.py --seeds 5 --out results/snn_model_free
    python experiments/snn_model_free.py --seeds 5 --device cpp_standalone --out results/snn_model_free_cpp
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from nmbrl_brian.energy import return_vs_energy
from nmbrl_brian.experiment_tools import (
    check_common_args,
    experiment_parser,
    median_steps,
    run_main,
    run_seeds,
    tidy_tables,
)
from nmbrl_brian.plotting import (
    plot_energy_breakdown,
    plot_return_quantiles,
    plot_return_vs_energy,
    save_figure,
)
from nmbrl_brian.results import write_csv_atomic

CONFIGS = Path(__file__).resolve().parents[1] / "nmbrl_brian" / "configs"
#: Agent -> folder of its runs under ``--out``.
FOLDERS = {"spiking_actor_critic": "snn", "dense_actor_critic": "dense"}
QUICK = ["total_env_steps=1000", "eval_every=500", "eval_episodes=2", "checkpoint_every=500"]


def run_energy(out: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every run's ``energy.csv`` rows, and its return beside the training energy spent by each
    evaluation (:func:`~nmbrl_brian.energy.return_vs_energy`), with columns ``agent`` and ``seed``."""
    energy, curves = [], []
    for agent, folder in FOLDERS.items():
        for path in sorted((out / folder / "runs").glob("*/energy.csv")):
            table = pd.read_csv(path).assign(agent=agent)
            energy.append(table)
            metrics, curve = pd.read_csv(path.with_name("metrics.csv")), path.with_name("energy_curve.csv")
            if curve.is_file():
                seed = int(table["seed"].iloc[0])
                curves.append(return_vs_energy(metrics, pd.read_csv(curve)).assign(agent=agent, seed=seed))
    return tuple(
        pd.concat(frames, ignore_index=True) if frames else pd.DataFrame() for frames in (energy, curves)
    )


def main(argv: list[str] | None = None) -> int:
    parser = experiment_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--device", default="runtime", help="Brian2 device of the spiking agent (default runtime)"
    )
    args = parser.parse_args(argv)

    def body():
        check_common_args(args)
        out = Path(args.out)
        overrides = QUICK if args.quick else []
        agents = {
            "spiking_actor_critic": run_seeds(
                CONFIGS / "cartpole_snn.toml",
                args.seeds,
                out / FOLDERS["spiking_actor_critic"],
                [*overrides, f"device={args.device}"],
                workers=args.workers,
            ),
            "dense_actor_critic": run_seeds(
                CONFIGS / "cartpole_dense.toml",
                args.seeds,
                out / FOLDERS["dense_actor_critic"],
                overrides,
                workers=args.workers,
            ),
        }
        metrics, summary = tidy_tables(agents, "agent")
        summary["env_steps_per_s"] = summary["env_steps"] / summary["wall_s"]
        write_csv_atomic(metrics, out / "metrics.csv")
        write_csv_atomic(summary, out / "summary.csv")
        energy, curves = run_energy(out)
        if not energy.empty:
            write_csv_atomic(energy, out / "energy.csv")
            save_figure(
                plot_energy_breakdown(energy[energy.phase != "evaluation"], by="agent", log=True),
                out / "energy_breakdown.png",
            )
            import matplotlib.pyplot as plt

            _, panels = plt.subplots(1, 2, figsize=(11, 4))
            for ax, profile in zip(panels, ("loihi", "cmos45_fp32")):
                for (agent, seed), rows in curves.groupby(["agent", "seed"], sort=False):
                    plot_return_vs_energy(rows, axes=ax, profile=profile, label=f"{agent} seed {seed}", lw=1)
                ax.axhline(475, ls="--", color="grey", lw=1)
                ax.set_xscale("log")
            save_figure(panels[0], out / "return_vs_energy.png")
        ax = None
        for name, df in agents.items():
            ax = plot_return_quantiles(df, axes=ax, label=name, threshold=475.0)
        save_figure(ax, out / "learning_curves.png")
        snn = summary[summary.agent == "spiking_actor_critic"]
        solved = snn["steps_to_threshold"].notna()
        ending = int((snn["kept_return_mean"] >= 475).sum())
        return {
            "steps_to_475_median": median_steps(snn["steps_to_threshold"]),
            "seeds_solved": f"{int(solved.sum())}/{len(snn)}",
            "final_return_median": float(snn["final_return_mean"].median()),
            "kept_return_median": float(snn["kept_return_mean"].median()),
            "seeds_ending_475": f"{ending}/{len(snn)}",
            "env_steps_per_s": float(snn["env_steps_per_s"].median()),
            "dense_steps_to_475_median": median_steps(
                summary.loc[summary.agent == "dense_actor_critic", "steps_to_threshold"]
            ),
        }

    return run_main(body)


if __name__ == "__main__":
    sys.exit(main())
