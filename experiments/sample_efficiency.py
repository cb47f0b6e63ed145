"""Sample efficiency on CartPole-v1 or Acrobot-v1: real environment steps to a greedy threshold, model-free vs model-based.

``--env CartPole-v1`` (default): real steps to a greedy mean of 475. Figure:
``sample_efficiency.png``, the evaluation return (20 greedy episodes) against real
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
evaluation afterwards, and its final return is that evaluation's. Budgets: 40,000 real
steps model-free, 1,500 model-based.

``--env Acrobot-v1``: real steps to a greedy mean of -100 (10 evaluation episodes,
evaluated every 250 real steps up to 5,000 and every 1,000 after), for
``dense_model_free`` (``acrobot_dense.toml``), ``spiking_model_free`` (``acrobot_snn.toml``,
runtime, gymnasium), ``spiking_model_free_shaped`` (the same with ``acrobot_mbrl.toml``'s
``agent.reward_shaping`` on its real steps: the control that tells the dreams' share of the
model-based result from the shaping term's), ``spiking_model_based`` (``acrobot_mbrl.toml``: the
full spiking world model, 50-step dreams ended by Acrobot's rule and rewarded by it plus the
height shaping term), ``spiking_in_direct_model`` (the same
world model with only its direct input -> readout pathway learning:
``world_model.learning_rate=0``, ``world_model.readout_learning_rate=0`` and
``world_model.readout_gain=0``, as ``snn_direct`` of ``world_model_quality.py``), ``spiking_in_linear_model`` (a linear
model fitted to the same real data; it predicts its own reward, dreams end by Acrobot's
rule) and ``spiking_in_perfect_model`` (the same cycle, shaping and guards dreaming in
Acrobot's own equations, :mod:`nmbrl_brian.equations.acrobot`: the bound that leaves only the
agent's own learning). No ``--with-peers`` (PPO's hyperparameters are CartPole's). Budgets: 5,000 real steps for
the model-based variants (each stops at its first evaluation >= -100); 100,000 for the
model-free ones, their configs' own budget, left uncapped: the spiking closed loop runs
about 1,000 real steps/s at 200 neurons (runtime cython), so a seed with its 115
evaluations takes minutes, at most about 11 (675,000 steps) if it never solves the task;
``acrobot_snn.toml`` records seed 0 of the spiking agent at -88 after 10,000 steps, so
a cap near 40,000 (CartPole's) could cut off slower seeds. ``--quick``: 500 real steps everywhere, one
evaluation episode, 30-neuron agents and world models, one world-model pass a cycle and
200 dreamed steps a cycle.

The last line for Acrobot also carries three world-model figures read from a finished
``world_model_quality.py --env Acrobot-v1`` output folder given as ``--wm-quality DIR``
(its ``summary.csv``; medians over seeds on the random-policy held-out set):
``acrobot_wm_rollout25_nmse_spiking`` and ``acrobot_wm_rollout25_nmse_direct``, the 25-step
open-loop rollout NMSE of the full spiking world model (``snn``) and of its direct pathway
alone (``snn_direct``) at the largest training size in that table, and
``acrobot_wm_nmse_1000``, the full model's one-step NMSE after 1,000 transitions. Without
``--wm-quality``, or when the table lacks a figure, that figure is ``nan``. A folder
without ``summary.csv``, or made for another environment (its ``config.json``), exits 2.
After them: ``acrobot_model_free_shaped_steps_median`` and ``ratio_to_shaped`` (that median over
the model-based one).

Writes under ``--out``: ``metrics.csv`` (tidy, all variants and seeds), ``summary.csv`` (per
variant and seed: steps to the threshold, best, final and kept-policy returns, wall time),
``sample_efficiency.png`` and ``runs/``. Re-running resumes unfinished seeds.

``--stop-at-threshold`` makes every variant, the model-free ones too, stop at its first
evaluation at or above the threshold: a run's trajectory up to there is the same (the stop only
cuts what follows), so the real steps to the threshold and the headline ratio are unchanged,
while a model-free seed costs minutes instead of its whole budget; the final and kept-policy
returns in ``summary.csv`` are then those of that evaluation.

Usage::

    python experiments/sample_efficiency.py --seeds 5 --out results/sample_efficiency
    python experiments/sample_efficiency.py --env Acrobot-v1 --seeds 5 \\
        --wm-quality results/wm_quality_acrobot --out results/sample_efficiency_acrobot
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pandas as pd

from nmbrl_brian.config import default_overrides, load_config
from nmbrl_brian.equations.world_model import DIRECT_PATHWAY_ALONE
from nmbrl_brian.errors import ConfigError
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
ACROBOT_EARLY = list(range(250, 5001, 250))
ENVS = ("CartPole-v1", "Acrobot-v1")
THRESHOLDS = {"CartPole-v1": 475.0, "Acrobot-v1": -100.0}
NAN = float("nan")


def stopping_at(
    plan: dict[str, tuple[Path, list[str]]], threshold: float
) -> dict[str, tuple[Path, list[str]]]:
    """``plan`` with every variant stopping at its first evaluation at or above ``threshold``
    (``--stop-at-threshold``: the model-free variants too; the model-based ones already do)."""
    return {
        name: (path, [*overrides, f"stop_at_return={threshold:g}"])
        for name, (path, overrides) in plan.items()
    }


def schedule(total: int, early: list[int] = EARLY) -> str:
    """The explicit evaluation points up to ``total``: ``early`` (by default every 100 steps up
    to 2,000); after them the runs evaluate every ``eval_every`` steps."""
    points = [p for p in early if p <= total]
    return "eval_schedule=[" + ",".join(map(str, points)) + "]"


def variants(quick: bool) -> dict[str, tuple[Path, list[str]]]:
    """Config file and overrides of every CartPole-v1 variant."""
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
        "spiking_in_linear_model": (
            CONFIGS / "cartpole_mbrl.toml",
            [*mb, *no_passes, "model_based.model=linear"],
        ),
        "spiking_in_perfect_model": (
            CONFIGS / "cartpole_mbrl.toml",
            [*mb, *no_passes, "model_based.model=perfect"],
        ),
    }


def acrobot_variants(quick: bool) -> dict[str, tuple[Path, list[str]]]:
    """Config file and overrides of every Acrobot-v1 variant."""
    model_free_steps, model_based_steps = (500, 500) if quick else (100_000, 5_000)
    common = ["eval_every=1000", "eval_episodes=1" if quick else "eval_episodes=10"]
    mf = [*common, f"total_env_steps={model_free_steps}", schedule(model_free_steps, ACROBOT_EARLY)]
    mb = [
        *common,
        f"total_env_steps={model_based_steps}",
        schedule(model_based_steps, ACROBOT_EARLY),
        "stop_at_return=-100",
    ]
    small_agent = ["network.n_recurrent=30"] if quick else []
    if quick:
        mb += [*small_agent, "model_based.dream_steps=200", "checkpoint_every=0"]
        mf += ["checkpoint_every=0"]
    quick_wm = (
        ["world_model.network.n_recurrent=30", "world_model.min_updates=0", "world_model.epochs=1"]
        if quick
        else []
    )
    direct_only = [f"world_model.{name}={value:g}" for name, value in DIRECT_PATHWAY_ALONE.items()]
    # acrobot_mbrl.toml sets the spiking world model (its network, code, steps, termination and
    # reward rules); without a spiking model those fields are unused and must keep their defaults
    # (the linear model predicts its reward; its dreams still end by Acrobot's rule).
    unused_world_model = default_overrides(CONFIGS / "acrobot_mbrl.toml", "world_model")
    linear = ["model_based.model=linear", *unused_world_model]
    perfect = ["model_based.model=perfect", *unused_world_model]
    # the control for acrobot_mbrl.toml's shaped dreams: the same shaping term on real steps
    shaping = load_config(CONFIGS / "acrobot_mbrl.toml").agent.reward_shaping
    return {
        "dense_model_free": (CONFIGS / "acrobot_dense.toml", mf),
        "spiking_model_free": (CONFIGS / "acrobot_snn.toml", [*mf, *small_agent]),
        "spiking_model_free_shaped": (
            CONFIGS / "acrobot_snn.toml",
            [*mf, *small_agent, f"agent.reward_shaping={shaping}"],
        ),
        "spiking_model_based": (CONFIGS / "acrobot_mbrl.toml", [*mb, "model_based.model=spiking", *quick_wm]),
        "spiking_in_direct_model": (
            CONFIGS / "acrobot_mbrl.toml",
            [*mb, "model_based.model=spiking", *direct_only, *quick_wm],
        ),
        "spiking_in_linear_model": (CONFIGS / "acrobot_mbrl.toml", [*mb, *linear]),
        "spiking_in_perfect_model": (CONFIGS / "acrobot_mbrl.toml", [*mb, *perfect]),
    }


def wm_quality_figures(folder: str | None, env_id: str) -> dict[str, float]:
    """The world-model figures of the Acrobot headline, read from a ``world_model_quality.py`` folder.

    Parameters
    ----------
    folder : str, optional
        A finished ``experiments/world_model_quality.py --env Acrobot-v1`` output folder; None:
        every figure is NaN.
    env_id : str
        The environment of this experiment; a folder whose ``config.json`` names another exits 2.

    Returns
    -------
    dict of str to float
        ``acrobot_wm_rollout25_nmse_spiking``, ``acrobot_wm_rollout25_nmse_direct`` (25-step
        rollout NMSE of ``snn`` and ``snn_direct`` at the largest training size) and
        ``acrobot_wm_nmse_1000`` (one-step NMSE of ``snn`` at 1,000 transitions), medians over
        seeds on the random-policy held-out set; NaN where the table lacks the row.

    Raises
    ------
    ConfigError
        The folder has no readable ``summary.csv`` with the columns model, metric, k, n_train
        and value, or was made for another environment.
    """
    keys = ("acrobot_wm_rollout25_nmse_spiking", "acrobot_wm_rollout25_nmse_direct", "acrobot_wm_nmse_1000")
    if folder is None:
        return dict.fromkeys(keys, NAN)
    expected = "a finished world_model_quality.py --env Acrobot-v1 folder (with summary.csv)"
    path = Path(folder)
    try:
        summary = pd.read_csv(path / "summary.csv")
    except (OSError, ValueError, pd.errors.ParserError):
        raise ConfigError("--wm-quality", expected, str(folder)) from None
    if not {"model", "metric", "k", "n_train", "value"} <= set(summary.columns):
        raise ConfigError(
            "--wm-quality", expected + " with columns model, metric, k, n_train, value", str(folder)
        )
    try:
        recorded = json.loads((path / "config.json").read_text()).get("env_id", env_id)
    except (OSError, ValueError, AttributeError):
        recorded = env_id  # an older folder without config.json: trust the user
    if recorded != env_id:
        raise ConfigError("--wm-quality", f"a folder made for {env_id}", f"{folder} (made for {recorded})")
    if "policy" in summary:
        summary = summary[summary["policy"] == "random"]
    if "dim" in summary:
        summary = summary[summary["dim"] == "mean"]

    def figure(model: str, metric: str, k: int, n_train: int | None = None) -> float:
        sel = summary[(summary["model"] == model) & (summary["metric"] == metric) & (summary["k"] == k)]
        sel = sel[sel["n_train"] == (sel["n_train"].max() if n_train is None else n_train)]
        return float(sel["value"].median()) if len(sel) else NAN

    return {
        keys[0]: figure("snn", "rollout_nmse", 25),
        keys[1]: figure("snn_direct", "rollout_nmse", 25),
        keys[2]: figure("snn", "nmse", 1, 1000),
    }


def main(argv: list[str] | None = None) -> int:
    parser = experiment_parser(__doc__.splitlines()[0])
    parser.add_argument("--env", default="CartPole-v1", help="CartPole-v1 (default) or Acrobot-v1")
    parser.add_argument("--with-peers", action="store_true", help="also run PPO (needs the 'peers' extra)")
    parser.add_argument("--only", default="", help="comma-separated variants to run (default: all)")
    parser.add_argument(
        "--wm-quality",
        default=None,
        help="Acrobot-v1 only: a finished world_model_quality.py --env Acrobot-v1 folder, for the "
        "headline's world-model figures (default: nan)",
    )
    parser.add_argument(
        "--stop-at-threshold",
        action="store_true",
        help="the model-free variants also stop at their first evaluation at or above the threshold "
        "(steps to it unchanged; final returns are then that evaluation's)",
    )
    args = parser.parse_args(argv)

    def body():
        check_common_args(args)
        if args.env not in ENVS:
            raise ConfigError("--env", "one of " + ", ".join(ENVS), args.env)
        acrobot = args.env == "Acrobot-v1"
        if acrobot and args.with_peers:
            raise ConfigError(
                "--with-peers", "only with --env CartPole-v1 (PPO's CartPole hyperparameters)", True
            )
        if not acrobot and args.wm_quality is not None:
            raise ConfigError("--wm-quality", "only with --env Acrobot-v1", args.wm_quality)
        wm = wm_quality_figures(args.wm_quality, args.env) if acrobot else {}
        threshold = THRESHOLDS[args.env]
        out = Path(args.out)
        plan = acrobot_variants(args.quick) if acrobot else variants(args.quick)
        if args.only:
            unknown = set(args.only.split(",")) - set(plan)
            if unknown:
                raise ConfigError("--only", "variants among " + ", ".join(plan), ",".join(sorted(unknown)))
            plan = {k: v for k, v in plan.items() if k in args.only.split(",")}
        if args.stop_at_threshold:
            plan = stopping_at(plan, threshold)
        for path, overrides in plan.values():  # every variant's config is valid before any runs
            load_config(path, overrides, seed=0)
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
        table, summary = tidy_tables(metrics, "variant", threshold)
        write_csv_atomic(table, out / "metrics.csv")
        write_csv_atomic(summary, out / "summary.csv")
        ax = None
        for name, df in metrics.items():
            ax = plot_return_quantiles(df, axes=ax, label=name, threshold=threshold)
        ax.set_xscale("log")
        if acrobot:
            ax.set_title("Acrobot-v1")
        save_figure(ax, out / "sample_efficiency.png")
        steps = {name: median_steps(df["steps_to_threshold"]) for name, df in summary.groupby("variant")}
        mb = summary[summary.variant == "spiking_model_based"]
        mbrl, model_free = steps.get("spiking_model_based", NAN), steps.get("spiking_model_free", NAN)

        def times_fewer(other: float) -> float:
            """``other`` real steps over the model-based agent's (NaN where either is missing)."""
            return other / mbrl if not math.isnan(mbrl + other) and mbrl > 0 else NAN

        ratio, shaped = times_fewer(model_free), steps.get("spiking_model_free_shaped", NAN)
        solved = f"{int(mb['steps_to_threshold'].notna().sum())}/{len(mb)}"
        if acrobot:
            return {
                "acrobot_mbrl_steps_to_minus100_median": mbrl,
                "acrobot_model_free_steps_median": model_free,
                "ratio": ratio,
                "seeds_solved": solved,
                **wm,
                "acrobot_model_free_shaped_steps_median": shaped,
                "ratio_to_shaped": times_fewer(shaped),
            }
        return {
            "mbrl_steps_to_475_median": mbrl,
            "model_free_steps_to_475_median": model_free,
            "ratio": ratio,
            "seeds_solved": solved,
        }

    return run_main(body)


if __name__ == "__main__":
    sys.exit(main())
