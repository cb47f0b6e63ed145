"""What learning CartPole costs: real steps, training joules and training seconds to a greedy mean of 475.

Figures: ``return_vs_joules.png`` (evaluation return against the training energy spent so
far on Loihi prices, one line per agent and seed, log x) and ``return_vs_wall_s.png`` (the
same against the training wall-clock seconds spent so far, log x).
Claim: what model-based learning costs, in real steps, joules and seconds, against the
spiking model-free agent and the dense twin: the model-based spiking agent reaches 475 in
far fewer real steps, and pays for it in the energy and time of its dreams and world-model
updates.

Agents (seeds ``0..N-1``):

``model_based``
    the spiking model-based agent (``cartpole_mbrl_lean.toml``, the ``make run`` config,
    cpp_standalone), 1,500 real steps, evaluated every 100 (as its config says); ``--quick`` runs
    it in runtime mode (no compile);
``spiking``
    the spiking model-free actor-critic (``cartpole_snn.toml``, ``--device``, default
    cpp_standalone), 40,000 real steps;
``dense``
    the dense twin (``cartpole_dense.toml``), 20,000 real steps;
``ppo`` (``--with-peers``, needs the ``peers`` extra)
    stable-baselines3 PPO (:mod:`nmbrl_brian.peers`), 40,000 steps.

Protocol: the model-free agents are evaluated every 100 real steps up to 2,000 and every
500 after (as ``sample_efficiency.py``). No run stops at 475 (``stop_at_return=inf``): each
runs its whole budget, and ``final_return`` is its last evaluation. To 475: at the first
evaluation with a mean of at least 475, the real steps, the training energy on every profile
of ``energy_profiles.toml`` (all phases but evaluation, from the run's ``energy_curve.csv``;
the dense twin counts its greedy evaluations in its one ``training`` phase, so they are taken
out at the price of its first, pre-training evaluation per decision: :func:`without_evaluations`)
and the ``wall_s`` of the run's ``metrics.csv`` (the time spent in the training phases only:
evaluations, agent construction and -- in cpp_standalone -- the project's compilation, which
happens at the first evaluation before any training, are not in it). PPO has no energy and
its ``metrics`` carry no training time: its ``wall_s_total`` is the whole run's, evaluations
included. Per decision: the evaluation phase's energy (greedy, learning off) over its periods
of network time; per learning step: the energy of the phase that learns over its periods (the
model-based agent's dream, the model-free agent's real phase).

Writes under ``--out``: ``per_seed.csv`` (tidy: agent, seed, profile, joules_to_475,
steps_to_475, wall_s_to_475, final_return, final_env_steps), ``summary.csv`` (medians per
agent and profile, seeds solved), ``per_decision.csv`` (agent, profile, nJ per decision and
per learning step), the figures and ``<agent>/runs/``. Re-running resumes unfinished seeds.

Usage::

    python experiments/learning_cost.py --seeds 10 --workers 2 --out results/learning_cost
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from nmbrl_brian.experiment_tools import (
    check_common_args,
    experiment_parser,
    find_run,
    median_steps,
    per_decision_table,
    run_main,
    run_seeds,
    tidy_tables,
)
from nmbrl_brian.plotting import plot_return_vs_energy, save_figure
from nmbrl_brian.results import write_csv_atomic

CONFIGS = Path(__file__).resolve().parents[1] / "nmbrl_brian" / "configs"
MAKE_RUN_CONFIG = CONFIGS / "cartpole_mbrl_lean.toml"
EARLY = list(range(100, 2001, 100))
COLOURS = {"model_based": "tab:red", "spiking": "tab:blue", "dense": "tab:green", "ppo": "tab:grey"}
THRESHOLD = 475.0


def schedule(total: int) -> str:
    """The evaluation points: every 100 steps up to 2,000, then every ``eval_every``, up to ``total``."""
    return "eval_schedule=[" + ",".join(str(p) for p in EARLY if p <= total) + "]"


def plan(quick: bool, device: str | None) -> dict[str, tuple[Path, list[str]]]:
    """Config and overrides of each agent's runs (``device``: the spiking model-free agent's)."""
    never_stop = "stop_at_return=inf"
    if quick:
        small = ["eval_episodes=2", "network.n_recurrent=40"]
        return {
            "model_based": (
                MAKE_RUN_CONFIG,
                [
                    never_stop,
                    *small,
                    "device=runtime",
                    "total_env_steps=200",
                    "checkpoint_every=0",
                    "model_based.dream_steps=200",
                    "model_based.dream_chunk=100",
                    "world_model.network.n_recurrent=40",
                    "world_model.min_updates=300",
                ],
            ),
            "spiking": (
                CONFIGS / "cartpole_snn.toml",
                [
                    *small,
                    "total_env_steps=300",
                    "eval_every=500",
                    schedule(300),
                    "checkpoint_every=0",
                    f"device={device or 'runtime'}",
                    "periods_per_run=100",  # a standalone run goes a whole run between pauses
                ],
            ),
            "dense": (
                CONFIGS / "cartpole_dense.toml",
                ["eval_episodes=2", "total_env_steps=300", "eval_every=500", schedule(300)],
            ),
        }
    model_free = ["eval_every=500", "eval_episodes=20", "checkpoint_every=0"]
    return {
        "model_based": (MAKE_RUN_CONFIG, [never_stop, "total_env_steps=1500"]),
        "spiking": (
            CONFIGS / "cartpole_snn.toml",
            [
                *model_free,
                "total_env_steps=40000",
                schedule(40_000),
                f"device={device or 'cpp_standalone'}",
                "periods_per_run=100",
            ],
        ),
        "dense": (CONFIGS / "cartpole_dense.toml", [*model_free, "total_env_steps=20000", schedule(20_000)]),
    }


def run_folders(out: Path, plan_: dict[str, tuple[Path, list[str]]], seeds: int) -> dict[str, list[Path]]:
    """Per agent, the run folder of each seed ``0..seeds-1`` under ``<out>/<agent>/runs``: the one
    :func:`run_seeds` used (same config), not an older run of other settings beside it."""
    from nmbrl_brian.config import load_config

    return {
        agent: [find_run(load_config(path, overrides, seed=s), out / agent / "runs") for s in range(seeds)]
        for agent, (path, overrides) in plan_.items()
    }


def read_runs(folders: dict[str, list[Path]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every run's ``energy.csv`` rows and its return beside the training energy and wall time
    spent by each evaluation (:func:`~nmbrl_brian.energy.return_vs_energy`), with ``agent``,
    ``seed`` and ``wall_s`` columns."""
    from nmbrl_brian.config import load_config_json
    from nmbrl_brian.energy import EVALUATION_PHASE, return_vs_energy
    from nmbrl_brian.training.metrics import training_rows

    energy, curves = [], []
    for agent, runs in folders.items():
        for run in runs:
            metrics = training_rows(pd.read_csv(run / "metrics.csv"))
            seed = int(metrics["seed"].iloc[0])
            energy.append(pd.read_csv(run / "energy.csv").assign(agent=agent, seed=seed))
            raw = pd.read_csv(run / "energy_curve.csv")
            curve = return_vs_energy(metrics, raw)
            if EVALUATION_PHASE not in set(raw["phase"]):
                episodes = load_config_json(run / "config.json").eval_episodes
                curve = without_evaluations(curve, metrics, episodes)
            wall = metrics[["env_steps", "wall_s"]].drop_duplicates("env_steps", keep="last")
            curves.append(curve.merge(wall, on="env_steps").assign(agent=agent, seed=seed))
    return pd.concat(energy, ignore_index=True), pd.concat(curves, ignore_index=True)


def without_evaluations(curve: pd.DataFrame, metrics: pd.DataFrame, episodes: int) -> pd.DataFrame:
    """The training energy of an agent that counts its greedy evaluations in its one phase (the
    dense twin: ``training`` holds every forward pass), without them.

    An evaluation of mean return ``R`` over ``episodes`` CartPole episodes takes ``R * episodes``
    greedy decisions (one reward per step). The first evaluation comes before any training, so
    its energy over its decisions is the price of one greedy decision on each profile; the
    evaluations up to each point are removed at that price. Before any training (env_steps 0)
    the training energy is 0 exactly (not a rounding residue of the subtraction).
    """
    rows = metrics.drop_duplicates("env_steps", keep="last").sort_values("env_steps", kind="stable")
    if rows.empty or rows["env_steps"].iloc[0] != 0:
        raise ValueError("without_evaluations: needs the evaluation before training (env_steps 0)")
    decisions = (rows["return_mean"] * episodes).cumsum()
    decisions.index = rows["env_steps"].to_numpy()
    first = curve[curve["env_steps"] == 0].set_index("profile")["joules"] / decisions.loc[0]
    spent = curve["env_steps"].map(decisions) * curve["profile"].map(first)
    joules = (curve["joules"] - spent).where(curve["env_steps"] > 0, 0.0)
    return curve.assign(joules=joules.clip(lower=0.0))


def per_seed_table(metrics: dict[str, pd.DataFrame], curves: pd.DataFrame, profiles) -> pd.DataFrame:
    """Per agent, seed and profile: steps, training joules and training seconds to the first
    evaluation >= 475 (NaN if never), and the final evaluation's return."""
    from nmbrl_brian.training.metrics import steps_to_threshold, training_rows

    rows = []
    for agent, table in metrics.items():
        for seed, df in table.groupby("seed"):
            current = training_rows(df).sort_values("env_steps", kind="stable")
            steps = steps_to_threshold(current, THRESHOLD)
            hit = current[current["env_steps"] == steps]
            wall = float(hit["wall_s"].iloc[0]) if len(hit) else float("nan")
            mine = curves[(curves.agent == agent) & (curves.seed == seed)] if len(curves) else curves
            for profile in profiles if agent != "ppo" else ["none"]:
                at = mine[(mine.profile == profile) & (mine.env_steps == steps)] if len(mine) else mine
                rows.append(
                    {
                        "agent": agent,
                        "seed": int(seed),
                        "profile": profile,
                        "joules_to_475": float(at["joules"].iloc[0]) if len(at) else float("nan"),
                        "steps_to_475": steps,
                        "wall_s_to_475": wall,
                        "final_return": float(current["return_mean"].iloc[-1]),
                        "final_env_steps": int(current["env_steps"].iloc[-1]),
                    }
                )
    return pd.DataFrame(rows)


def summary_table(per_seed: pd.DataFrame) -> pd.DataFrame:
    """Medians per agent and profile (a seed that never reached 475 counts as infinite for the
    steps, and is left out of the joules and seconds), seeds solved and seeds at 475 at the end."""
    rows = []
    for (agent, profile), df in per_seed.groupby(["agent", "profile"], sort=False):
        solved = df.dropna(subset=["steps_to_475"])
        rows.append(
            {
                "agent": agent,
                "profile": profile,
                "seeds": len(df),
                "seeds_solved": len(solved),
                "seeds_final_475": int((df["final_return"] >= THRESHOLD).sum()),
                "steps_to_475_median": median_steps(df["steps_to_475"]),
                "joules_to_475_median": float(solved["joules_to_475"].median()),
                "wall_s_to_475_median": float(solved["wall_s_to_475"].median()),
                "final_return_median": float(df["final_return"].median()),
            }
        )
    return pd.DataFrame(rows)


def run_ppo_timed(seeds: int, out: Path, quick: bool) -> pd.DataFrame:
    """PPO's metrics for seeds ``0..seeds-1``, with ``wall_s_total``: the whole run's seconds
    (training and evaluations), kept in ``ppo_seed<k>_wall_s.txt`` beside its table."""
    from nmbrl_brian.peers import _require_sb3, run_ppo

    _require_sb3()
    tables = []
    for seed in range(seeds):
        timing = out / f"ppo_seed{seed}_wall_s.txt"
        start = time.perf_counter()
        table = run_ppo(
            seed, out, total_steps=300 if quick else 40_000, points=EARLY, episodes=2 if quick else 20
        )
        if not timing.is_file():
            timing.write_text(f"{time.perf_counter() - start:.3f}\n")
        tables.append(table.assign(wall_s_total=float(timing.read_text())))
    return pd.concat(tables, ignore_index=True)


def draw(curves: pd.DataFrame, out: Path) -> None:
    """``return_vs_joules.png`` (Loihi prices) and ``return_vs_wall_s.png``, one line per agent and
    seed (log x: the evaluation before any training, at 0 J and 0 s, is not drawn)."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    def finish(ax, xlabel: str, path: Path) -> None:
        ax.axhline(THRESHOLD, ls="--", color="grey", lw=1)
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("evaluation return (mean over episodes)")
        agents = list(dict.fromkeys(curves["agent"]))
        ax.legend([Line2D([], [], color=COLOURS[a], marker=".") for a in agents], agents, fontsize="small")
        save_figure(ax, path)

    _, ax = plt.subplots(figsize=(7, 4.5))
    for (agent, _seed), rows in curves[curves.joules > 0].groupby(["agent", "seed"], sort=False):
        plot_return_vs_energy(rows, axes=ax, profile="loihi", color=COLOURS[agent], lw=1)
    finish(ax, "training energy spent, Loihi prices (J)", out / "return_vs_joules.png")

    _, ax = plt.subplots(figsize=(7, 4.5))
    wall = curves[curves.wall_s > 0].drop_duplicates(["agent", "seed", "env_steps"])
    for (agent, _seed), rows in wall.groupby(["agent", "seed"], sort=False):
        rows = rows.sort_values("env_steps", kind="stable")
        ax.plot(rows["wall_s"], rows["return_mean"], marker=".", lw=1, color=COLOURS[agent])
    finish(ax, "training wall-clock time spent (s)", out / "return_vs_wall_s.png")


def main(argv: list[str] | None = None) -> int:
    parser = experiment_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--device",
        default=None,
        help="Brian2 device of the spiking model-free agent (default cpp_standalone; runtime with --quick)",
    )
    parser.add_argument("--with-peers", action="store_true", help="also run PPO (needs the 'peers' extra)")
    args = parser.parse_args(argv)

    def body():
        check_common_args(args)
        from nmbrl_brian.energy import load_profiles

        out = Path(args.out)
        if args.with_peers:
            from nmbrl_brian.peers import _require_sb3

            _require_sb3()  # before hours of training, not after
        runs = plan(args.quick, args.device)
        metrics = {
            agent: run_seeds(path, args.seeds, out / agent, overrides, workers=args.workers)
            for agent, (path, overrides) in runs.items()
        }
        energy, curves = read_runs(run_folders(out, runs, args.seeds))
        if args.with_peers:
            metrics["ppo"] = run_ppo_timed(args.seeds, out / "ppo", args.quick)
        per_seed = per_seed_table(metrics, curves, sorted(load_profiles()))
        if "ppo" in metrics:
            totals = metrics["ppo"].groupby("seed")["wall_s_total"].first()
            per_seed["wall_s_total"] = per_seed["seed"].map(totals).where(per_seed.agent == "ppo")
        write_csv_atomic(per_seed, out / "per_seed.csv")
        summary = summary_table(per_seed)
        write_csv_atomic(summary, out / "summary.csv")
        write_csv_atomic(tidy_tables(metrics, "agent")[0], out / "metrics.csv")
        per_decision = per_decision_table(energy, ("spiking", "model_based"))
        write_csv_atomic(per_decision, out / "per_decision.csv")
        draw(curves, out)

        loihi = per_seed[per_seed.profile.isin(["loihi", "none"])]
        with pd.option_context("display.width", 200, "display.max_columns", 20):
            print(
                loihi.drop(columns="profile")
                .rename(columns={"joules_to_475": "loihi_j_to_475"})
                .to_string(index=False)
            )

        def median(agent: str, column: str, scale: float = 1.0) -> float:
            rows = loihi[loihi.agent == agent][column].dropna()
            return float(np.median(rows)) * scale if len(rows) else float("nan")

        mb = loihi[loihi.agent == "model_based"]
        # the spiking agent as configured for make run: the model-based agent's greedy decision
        snn = per_decision[(per_decision.agent == "model_based") & (per_decision.profile == "loihi")]
        return {
            "mbrl_steps_to_475_median": median_steps(mb["steps_to_475"]),
            "mbrl_mj_to_475_loihi_median": median("model_based", "joules_to_475", 1e3),
            "mbrl_wall_s_to_475_median": median("model_based", "wall_s_to_475"),
            "snn_nj_per_decision_loihi": float(snn["nj_per_decision"].iloc[0]) if len(snn) else float("nan"),
            "dense_mj_to_475_loihi_median": median("dense", "joules_to_475", 1e3),
            "seeds_solved": f"{int(mb['steps_to_475'].notna().sum())}/{len(mb)}",
            "seeds_final_475": f"{int((mb['final_return'] >= THRESHOLD).sum())}/{len(mb)}",
        }

    return run_main(body)


if __name__ == "__main__":
    sys.exit(main())
