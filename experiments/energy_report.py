"""Energy per decision, per learning step and per learning run on every hardware profile; spike rasters.

Figures: ``energy_breakdown.png`` (energy by phase and operation kind, spiking model-free,
spiking model-based and the dense twin, per profile, log scale), ``return_vs_energy.png``
(evaluation return vs the training energy spent so far, Loihi prices) and ``raster.png``
(one greedy episode of the spiking agent: cart-pole state, actions and rewards, input and
recurrent spikes, readouts; beside it a real and a dreamed episode of the model-based
agent).
Claim: on Loihi prices learning CartPole model-free to a greedy mean of 475 costs the
spiking agent well under a joule (measured: about 1 microjoule per decision, 0.19 J to
475); the model-based agent spends more (its dreams and world-model updates) for far fewer
real steps. The counts come from the runs' monitors and counters (``energy.csv`` of every
run), not from formulas.

Runs (``--seeds``): the spiking actor-critic (``cartpole_snn.toml``, cpp_standalone), the
dense twin (``cartpole_dense.toml``) and the spiking model-based agent
(``cartpole_mbrl.toml``, runtime). Per decision: the evaluation phase's energy over its
periods of network time (greedy, learning off; one period is one decision); per learning
step: the real phase's energy over its periods (acting and learning); for the dense twin,
one forward pass (and one update) priced as MACs. To 475: the training energy spent up to
the first evaluation with a mean of at least 475 (median over the seeds that got there),
for all three agents.

Writes under ``--out``: ``energy.csv`` (tidy: agent, seed, phase, operation, count,
profile, joules, phase_steps), ``per_decision.csv`` (agent, profile, nJ per decision and
per learning step), ``to_475.csv``, the figures and ``runs/``.

Usage::

    python experiments/energy_report.py --seeds 5 --out results/energy_report
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from nmbrl_brian.experiment_tools import (
    check_common_args,
    experiment_parser,
    per_decision_table,
    run_main,
    run_seeds,
)
from nmbrl_brian.plotting import (
    plot_energy_breakdown,
    plot_episode_activity,
    plot_return_vs_energy,
    save_figure,
)
from nmbrl_brian.results import write_csv_atomic

CONFIGS = Path(__file__).resolve().parents[1] / "nmbrl_brian" / "configs"
STATE_NAMES = ("x (m)", "x_dot (m/s)", "theta (rad)", "theta_dot (rad/s)")


def plan(quick: bool) -> dict[str, tuple[Path, list[str]]]:
    """Config and overrides of each agent's runs."""
    if quick:
        return {
            "spiking": (
                CONFIGS / "cartpole_snn.toml",
                [
                    "total_env_steps=600",
                    "eval_every=300",
                    "eval_episodes=2",
                    "checkpoint_every=0",
                    "network.n_recurrent=40",
                ],
            ),
            "dense": (
                CONFIGS / "cartpole_dense.toml",
                ["total_env_steps=600", "eval_every=300", "eval_episodes=2"],
            ),
            "model_based": (
                CONFIGS / "cartpole_mbrl.toml",
                [
                    "total_env_steps=200",
                    "eval_episodes=2",
                    "model_based.dream_steps=200",
                    "network.n_recurrent=40",
                    "world_model.network.n_recurrent=40",
                    "world_model.min_updates=300",
                ],
            ),
        }
    return {
        "spiking": (
            CONFIGS / "cartpole_snn.toml",
            ["total_env_steps=40000", "eval_every=2000", "device=cpp_standalone", "periods_per_run=500"],
        ),
        "dense": (CONFIGS / "cartpole_dense.toml", ["total_env_steps=20000", "eval_every=1000"]),
        "model_based": (CONFIGS / "cartpole_mbrl.toml", ["total_env_steps=600"]),
    }


def run_folders(out: Path, agent: str) -> list[Path]:
    return sorted(p for p in (out / agent / "runs").iterdir() if (p / "energy.csv").is_file())


def dense_per_decision(config_path: Path, overrides: list[str], profiles) -> pd.DataFrame:
    """nJ per greedy decision (one encoding and forward pass) and per learning step of the dense twin."""
    from nmbrl_brian.config import load_config
    from nmbrl_brian.energy import OperationCounts, price
    from nmbrl_brian.envs import EnvironmentWrapper
    from nmbrl_brian.training.run import build_agent

    config = load_config(config_path, overrides)
    env = EnvironmentWrapper(config.env_id)
    agent = build_agent(config, env.observation_space, env.action_space)
    forward = sum(agent.params[k].size for k in ("hidden_w", "critic_w", "actor_w") if k in agent.params)
    decision = OperationCounts(macs=int(forward + agent.encoder.size))
    learning = OperationCounts(
        macs=int(forward + agent.encoder.size + 6 * agent.theta.size), weight_updates=int(agent.theta.size)
    )
    table = price({"decision": decision, "learning_step": learning}, profiles)
    per = table.groupby(["phase", "profile"])["joules"].sum().unstack("phase") * 1e9
    return pd.DataFrame(
        {
            "agent": "dense",
            "profile": per.index,
            "nj_per_decision": per["decision"].to_numpy(),
            "nj_per_learning_step": per["learning_step"].to_numpy(),
        }
    )


def energy_to_475(out: Path, agent: str) -> pd.DataFrame:
    """Per seed and profile: the training energy spent up to the first evaluation mean >= 475."""
    rows = []
    for run in run_folders(out, agent):
        metrics = pd.read_csv(run / "metrics.csv")
        metrics = metrics[metrics["policy"] != "kept"]
        hit = metrics.loc[metrics["return_mean"] >= 475, "env_steps"]
        curve = pd.read_csv(run / "energy_curve.csv")
        training = curve[curve["phase"] != "evaluation"].groupby(["env_steps", "profile"])["joules"].sum()
        seed = int(metrics["seed"].iloc[0])
        for profile in curve["profile"].unique():
            joules = (
                float(training.xs(profile, level="profile").loc[hit.iloc[0]]) if len(hit) else float("nan")
            )
            rows.append(
                {
                    "agent": agent,
                    "seed": seed,
                    "profile": profile,
                    "steps_to_475": hit.iloc[0] if len(hit) else float("nan"),
                    "joules_to_475": joules,
                }
            )
    return pd.DataFrame(rows)


def draw_rasters(out: Path, quick: bool) -> None:
    """Rasters of the first seed's kept policies: a real episode, and a real and a dreamed one (model-based)."""
    import matplotlib.pyplot as plt

    from nmbrl_brian.checkpoints import read_checkpoint
    from nmbrl_brian.config import load_config_json
    from nmbrl_brian.devices import select_device
    from nmbrl_brian.envs import EnvironmentWrapper
    from nmbrl_brian.training.run import build_agent

    panels = []
    for agent_name, dream in (("spiking", False), ("model_based", False), ("model_based", True)):
        run = run_folders(out, agent_name)[0]
        config = load_config_json(run / "config.json")
        # the same environment part as the run, in runtime mode (monitors can be added there)
        config = dataclasses.replace(config, device="runtime", environment=config.closed_loop_environment)
        select_device("runtime")
        env = EnvironmentWrapper(config.env_id)
        agent = build_agent(config, env.observation_space, env.action_space)
        agent.load_state_dict(read_checkpoint(run / "best_policy.npz", kind="agent")["state"])
        label = {
            "spiking": "model-free, real",
            "model_based": "model-based, " + ("dream" if dream else "real"),
        }
        panels.append(
            (label[agent_name], agent.record_episode(seed=123, max_steps=40 if quick else 150, dream=dream))
        )
    fig, axes = plt.subplots(
        4,
        len(panels),
        figsize=(6 * len(panels), 8),
        sharex="col",
        squeeze=False,
        gridspec_kw={"height_ratios": [1.2, 0.6, 2, 1]},
    )
    for col, (title, activity) in enumerate(panels):
        plot_episode_activity(activity, axes=axes[:, col], title=title, state_names=STATE_NAMES)
    save_figure(axes[0, 0], out / "raster.png")


def main(argv: list[str] | None = None) -> int:
    args = experiment_parser(__doc__.splitlines()[0]).parse_args(argv)

    def body():
        check_common_args(args)
        from nmbrl_brian.energy import load_profiles, return_vs_energy

        out = Path(args.out)
        runs = plan(args.quick)
        for agent, (path, overrides) in runs.items():
            run_seeds(path, args.seeds, out / agent, overrides, workers=args.workers)
        energy = pd.concat(
            [
                pd.read_csv(run / "energy.csv").assign(agent=agent)
                for agent in runs
                for run in run_folders(out, agent)
            ],
            ignore_index=True,
        )
        write_csv_atomic(energy, out / "energy.csv")
        profiles = load_profiles()
        per = [per_decision_table(energy, ("spiking", "model_based"))]
        per.append(dense_per_decision(*runs["dense"], profiles))
        per_decision = pd.concat(per, ignore_index=True)
        write_csv_atomic(per_decision, out / "per_decision.csv")
        to_475 = pd.concat(
            [energy_to_475(out, agent) for agent in ("spiking", "model_based", "dense")], ignore_index=True
        )
        write_csv_atomic(to_475, out / "to_475.csv")

        training = energy[energy["phase"] != "evaluation"]
        ax = plot_energy_breakdown(training, by="agent", log=True)
        save_figure(ax, out / "energy_breakdown.png")
        ax = None
        for agent in ("spiking", "model_based"):
            run = run_folders(out, agent)[0]
            curve = return_vs_energy(pd.read_csv(run / "metrics.csv"), pd.read_csv(run / "energy_curve.csv"))
            ax = plot_return_vs_energy(curve, axes=ax, profile="loihi", label=agent, threshold=475.0)
        save_figure(ax, out / "return_vs_energy.png")
        draw_rasters(out, args.quick)

        def pick(agent: str, profile: str, column: str) -> float:
            row = per_decision[(per_decision.agent == agent) & (per_decision.profile == profile)]
            return float(row[column].iloc[0]) if len(row) else float("nan")

        def to_475_median(agent: str, profile: str) -> float:
            rows = to_475[(to_475.agent == agent) & (to_475.profile == profile)]["joules_to_475"].dropna()
            return float(np.median(rows)) if len(rows) else float("nan")

        return {
            "snn_nj_per_decision_loihi": pick("spiking", "loihi", "nj_per_decision"),
            "snn_nj_per_learning_step_loihi": pick("spiking", "loihi", "nj_per_learning_step"),
            "dense_nj_per_decision_45nm": pick("dense", "cmos45_fp32", "nj_per_decision"),
            "learning_to_475_j_loihi": to_475_median("spiking", "loihi"),
            "mbrl_learning_to_475_j_loihi": to_475_median("model_based", "loihi"),
            "dense_learning_to_475_j_45nm": to_475_median("dense", "cmos45_fp32"),
        }

    return run_main(body)


if __name__ == "__main__":
    sys.exit(main())
