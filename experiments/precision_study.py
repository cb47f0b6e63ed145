"""How few bits learning CartPole needs: real steps to 475 and world-model NMSE against the weight and trace widths.

Variants (``network.numerics`` and ``world_model.network.numerics``, :mod:`nmbrl_brian.equations.fixed_point`):

``w<b>``
    fixed-point numerics with ``weight_bits = b`` for each ``b`` of ``--weight-bits`` (default
    4, 6, 8, 12), traces at their default width (12 bits);
``w8_t<t>``
    fixed-point, 8 weight bits, ``trace_bits = t`` for each ``t`` of ``--trace-bits`` (default 8, 10;
    the package accepts trace widths from 8 up: a trace holds 5 integer bits and a sign);
``float``
    float64 numerics (the reference).

Each variant is given to the agent's network and to the world model's alike. Parts (``--only``):

``mbrl``
    the spiking model-based agent (``cartpole_mbrl_lean.toml``, the ``make run`` config,
    cpp_standalone), at most 1,500 real steps, stopping at its first greedy evaluation >= 475;
``model_free``
    the spiking model-free actor-critic (``cartpole_snn.toml``, cpp_standalone), at most 40,000 real
    steps, evaluated every 100 steps up to 2,000 and every 500 after, stopping at 475;
``wm``
    the model-based agent's world model (the ``world_model`` table of the make run config) trained
    alone (:meth:`SNNWorldModel.fit`) on 1,000 random-policy transitions, and its one-step NMSE of
    the state change (mean over the four dimensions, :func:`one_step_metrics`) on 2,000 held-out
    random-policy transitions (seeds ``10_000 + seed``). What the widths reach there: its spiking
    layer's input and recurrent weights, currents and filtered spikes; its readouts and direct
    pathway stay float (:mod:`~nmbrl_brian.equations.fixed_point`), and in the make run config only
    they learn (``world_model.network.hidden_learning = false``), so the NMSE measures how well the
    float readouts decode a quantised spiking layer.

Energy: each run counts its own operations (spikes, synaptic events, weight updates of the
fixed-point network as of the float one: the counts are the run's, the widths do not change a
profile's price per operation); the training energy to 475 is read from its
``energy_curve.csv`` at the first evaluation >= 475 on the Loihi profile (all phases but
evaluation, :func:`~nmbrl_brian.energy.return_vs_energy`).

``min_weight_bits_solving``: the smallest weight width (among the ``w<b>`` variants run) whose
model-based seeds reach 475 in at least ``ceil(0.8 * seeds)`` seeds (4 of 5); ``nan`` if none
does, or if ``mbrl`` was not run. Bar: the study reports this width.

``--quick`` (the tests): runtime device, 200 real steps model-based and 300 model-free, 40-neuron
networks, 200 training and held-out world-model transitions (one pass), weight widths 4 and 8,
no trace variants unless ``--trace-bits`` is given.

Writes under ``--out``: ``per_seed.csv`` (tidy: variant, weight_bits, trace_bits, part, seed,
steps_to_475, loihi_j_to_475, final_return, wm_nmse), ``summary.csv`` (one row per variant: seeds
solved, median steps to 475 -- an unsolved seed counts as infinite -- median Loihi mJ to 475 of the
solved seeds, median NMSE), ``precision.png`` (steps to 475 and NMSE against the variant),
``<part>/<variant>/runs/`` and ``wm/<variant>/seed_<k>.csv``. Re-running resumes.
The last line: ``fixed8_mbrl_steps_to_475_median``, ``float_mbrl_steps_to_475_median``,
``fixed8_seeds_solved`` (model-based, 8 weight bits), ``fixed8_wm_nmse_1000`` (median NMSE at 8
weight bits; with ``--quick``, at its 200 transitions) and ``min_weight_bits_solving``.

Usage::

    python experiments/precision_study.py --seeds 5 --workers 2 --out results/precision
    python experiments/precision_study.py --only wm --weight-bits 4,8 --out results/precision
"""

from __future__ import annotations

import dataclasses
import functools
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from nmbrl_brian.config import load_config
from nmbrl_brian.errors import ConfigError
from nmbrl_brian.experiment_tools import (
    check_common_args,
    experiment_parser,
    find_run,
    median_steps,
    parallel_map,
    run_main,
    run_seeds,
    steps_to_threshold,
)
from nmbrl_brian.plotting import save_figure
from nmbrl_brian.results import write_csv_atomic

CONFIGS = Path(__file__).resolve().parents[1] / "nmbrl_brian" / "configs"
MAKE_RUN_CONFIG = CONFIGS / "cartpole_mbrl_lean.toml"
PARTS = ("mbrl", "model_free", "wm")
#: The networks each agent's variant sets (the model-free agent has no world model).
PREFIXES = {"mbrl": ("network", "world_model.network"), "model_free": ("network",)}
THRESHOLD = 475.0
NAN = float("nan")


def parse_bits(text: str, flag: str, lo: int, hi: int) -> tuple[int, ...]:
    """``"4,6,8"`` -> ``(4, 6, 8)``: distinct integers in ``[lo, hi]``, sorted; ConfigError otherwise."""
    try:
        values = tuple(sorted({int(v) for v in text.split(",") if v.strip()}))
    except ValueError:
        values = ()
    if (not values and flag == "--weight-bits") or any(not lo <= v <= hi for v in values):
        raise ConfigError(flag, f"comma-separated integers in [{lo}, {hi}]", text)
    return values


def variants(weight_bits, trace_bits) -> dict[str, dict]:
    """Per variant name, its numerics, ``weight_bits`` and ``trace_bits`` (None: float)."""
    out = {f"w{b}": {"numerics": "fixed", "weight_bits": b, "trace_bits": 12} for b in weight_bits}
    out |= {f"w8_t{t}": {"numerics": "fixed", "weight_bits": 8, "trace_bits": t} for t in trace_bits}
    out["float"] = {"numerics": "float", "weight_bits": None, "trace_bits": None}
    return out


def numerics_overrides(v: dict, prefixes: tuple[str, ...]) -> list[str]:
    """``--set`` items giving a variant's numerics to the networks under ``prefixes``."""
    if v["numerics"] == "float":
        return []
    return [
        f"{p}.{k}={v[k]}" if k != "numerics" else f"{p}.numerics=fixed"
        for p in prefixes
        for k in ("numerics", "weight_bits", "trace_bits")
    ]


def run_plan(quick: bool) -> dict[str, tuple[Path, list[str]]]:
    """Config and overrides (before the numerics) of the two agents."""
    stop = f"stop_at_return={THRESHOLD:g}"
    if quick:
        small = ["eval_episodes=2", "network.n_recurrent=40", "checkpoint_every=0", "device=runtime"]
        return {
            "mbrl": (
                MAKE_RUN_CONFIG,
                [
                    stop,
                    *small,
                    "total_env_steps=200",
                    "model_based.dream_steps=100",
                    "model_based.dream_chunk=100",
                    "world_model.network.n_recurrent=40",
                    "world_model.min_updates=200",
                ],
            ),
            "model_free": (
                CONFIGS / "cartpole_snn.toml",
                [*small, stop, "total_env_steps=300", "eval_every=100", "periods_per_run=100"],
            ),
        }
    early = "eval_schedule=[" + ",".join(str(p) for p in range(100, 2001, 100)) + "]"
    return {
        "mbrl": (MAKE_RUN_CONFIG, [stop, "total_env_steps=1500"]),
        "model_free": (
            CONFIGS / "cartpole_snn.toml",
            [
                stop,
                "total_env_steps=40000",
                "eval_every=500",
                "eval_episodes=20",
                "checkpoint_every=0",
                early,
                "device=cpp_standalone",
                "periods_per_run=100",
            ],
        ),
    }


def agent_rows(part: str, name: str, path: Path, overrides: list[str], seeds: int, out: Path) -> list[dict]:
    """Per seed of one agent and variant: steps and Loihi joules to 475 and the final return."""
    from nmbrl_brian.energy import return_vs_energy
    from nmbrl_brian.training.metrics import training_rows

    rows = []
    for seed in range(seeds):
        run = find_run(load_config(path, overrides, seed=seed), out / part / name / "runs")
        metrics = training_rows(pd.read_csv(run / "metrics.csv")).sort_values("env_steps", kind="stable")
        steps = steps_to_threshold(metrics, THRESHOLD)
        curve = return_vs_energy(metrics, pd.read_csv(run / "energy_curve.csv"))
        at = curve[(curve.profile == "loihi") & (curve.env_steps == steps)]
        rows.append(
            {
                "part": part,
                "seed": seed,
                "steps_to_475": steps,
                "loihi_j_to_475": float(at["joules"].iloc[0]) if len(at) else NAN,
                "final_return": float(metrics["return_mean"].iloc[-1]),
            }
        )
    return rows


def wm_nmse(item: tuple[str, dict, int], *, out: Path, quick: bool) -> float:
    """One-step NMSE (mean over dimensions) of the make run world model in variant ``item[1]``,
    seed ``item[2]``, trained on random-policy transitions; cached in ``wm/<variant>/seed_<k>.csv``."""
    name, v, seed = item
    cache = out / "wm" / name / f"seed_{seed}.csv"
    if cache.is_file():
        return float(pd.read_csv(cache)["wm_nmse"].iloc[0])
    from nmbrl_brian.devices import select_device
    from nmbrl_brian.envs import EnvironmentWrapper
    from nmbrl_brian.world_models import collect_transitions
    from nmbrl_brian.world_models.evaluation import one_step_metrics
    from nmbrl_brian.world_models.snn_world_model import SNNWorldModel

    n_train, n_held = (200, 200) if quick else (1000, 2000)
    select_device("runtime")
    config = load_config(MAKE_RUN_CONFIG, seed=seed).world_model
    network = config.network
    if v["numerics"] == "fixed":
        network = dataclasses.replace(
            network, numerics="fixed", weight_bits=v["weight_bits"], trace_bits=v["trace_bits"]
        )
    if quick:
        network = dataclasses.replace(network, n_recurrent=40)
    extra = {"epochs": 1, "min_updates": 0} if quick else {}
    config = dataclasses.replace(config, network=network, seed=seed, periods_per_run=n_train, **extra)
    env = EnvironmentWrapper("CartPole-v1")
    train = collect_transitions(env, None, n_train, seed=seed)
    held = collect_transitions(env, None, n_held, seed=10_000 + seed)
    model = SNNWorldModel.for_env("CartPole-v1", config=config).fit(train)
    table = one_step_metrics(model, held)
    value = float(table[(table.metric == "nmse") & (table.dim == "mean")]["value"].iloc[0])
    cache.parent.mkdir(parents=True, exist_ok=True)
    write_csv_atomic(pd.DataFrame({"wm_nmse": [value], "n_train": [n_train]}), cache)
    return value


def summary_table(per_seed: pd.DataFrame, plan: dict[str, dict], seeds: int) -> pd.DataFrame:
    """One row per variant: seeds solved, median steps and Loihi mJ to 475 per agent, median NMSE."""
    rows = []
    for name, v in plan.items():
        row = {"variant": name, **v}
        mine = per_seed[per_seed.variant == name]
        for part in ("mbrl", "model_free"):
            df = mine[mine.part == part]
            solved = df.dropna(subset=["steps_to_475"])
            row |= {
                f"{part}_seeds_solved": len(solved) if len(df) else NAN,
                f"{part}_steps_to_475_median": median_steps(df["steps_to_475"]) if len(df) else NAN,
                f"{part}_loihi_mj_to_475_median": float(solved["loihi_j_to_475"].median()) * 1e3,
            }
        wm = mine[mine.part == "wm"]["wm_nmse"]
        row["wm_nmse_median"] = float(wm.median()) if len(wm) else NAN
        row["seeds"] = seeds
        rows.append(row)
    return pd.DataFrame(rows)


def min_weight_bits_solving(summary: pd.DataFrame, seeds: int) -> float:
    """The smallest weight width of a ``w<b>`` variant whose model-based agent solves in at least
    ``ceil(0.8 * seeds)`` seeds (NaN if none)."""
    need = math.ceil(0.8 * seeds)
    weights_only = summary[summary.variant.str.fullmatch(r"w\d+")]
    ok = weights_only[weights_only["mbrl_seeds_solved"] >= need]
    return float(ok["weight_bits"].min()) if len(ok) else NAN


def draw(per_seed: pd.DataFrame, names: list[str], path: Path) -> None:
    """Steps to 475 (per seed and median, per agent) and world-model NMSE against the variant."""
    import matplotlib.pyplot as plt

    _, (top, bottom) = plt.subplots(2, 1, figsize=(7, 7), sharex=True)
    x = {name: i for i, name in enumerate(names)}
    for part, colour in (("mbrl", "tab:red"), ("model_free", "tab:blue")):
        df = per_seed[per_seed.part == part]
        if not len(df):
            continue
        top.scatter(df.variant.map(x), df.steps_to_475, color=colour, alpha=0.4, s=12)
        med = [median_steps(df[df.variant == n]["steps_to_475"]) for n in names]
        top.plot(range(len(names)), med, marker="o", color=colour, label=f"{part} (median)")
    if (per_seed.steps_to_475 > 0).any():
        top.set_yscale("log")
    top.set_ylabel("real steps to 475")
    top.legend(fontsize="small")
    wm = per_seed[per_seed.part == "wm"]
    if len(wm):
        bottom.scatter(wm.variant.map(x), wm.wm_nmse, color="tab:green", alpha=0.4, s=12)
        bottom.plot(
            range(len(names)),
            [wm[wm.variant == n]["wm_nmse"].median() for n in names],
            "o-",
            color="tab:green",
        )
        if (wm.wm_nmse > 0).any():
            bottom.set_yscale("log")
    bottom.set_ylabel("world-model one-step NMSE")
    bottom.set_xticks(range(len(names)), names)
    bottom.set_xlabel("numerics (w<b>: weight bits; _t<t>: trace bits)")
    save_figure(top, path)


def main(argv: list[str] | None = None) -> int:
    parser = experiment_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--only", default=",".join(PARTS), help="parts to run among mbrl,model_free,wm (default all)"
    )
    parser.add_argument("--weight-bits", default=None, help="weight widths (default 4,6,8,12; --quick: 4,8)")
    parser.add_argument(
        "--trace-bits",
        default=None,
        help='trace widths at 8 weight bits (default 8,10; --quick or "": none)',
    )
    args = parser.parse_args(argv)

    def body():
        check_common_args(args)
        parts = [p for p in args.only.split(",") if p]
        unknown = sorted(set(parts) - set(PARTS))
        if unknown or not parts:
            raise ConfigError("--only", "parts among " + ",".join(PARTS), args.only)
        weights = parse_bits(
            args.weight_bits or ("4,8" if args.quick else "4,6,8,12"), "--weight-bits", 2, 16
        )
        default_traces = "" if args.quick else "8,10"
        traces = parse_bits(
            default_traces if args.trace_bits is None else args.trace_bits, "--trace-bits", 8, 24
        )  # --trace-bits "": no trace variants
        plan = variants(weights, traces)
        agents = {k: v for k, v in run_plan(args.quick).items() if k in parts}
        jobs = {
            (part, name): (path, [*overrides, *numerics_overrides(v, PREFIXES[part])])
            for part, (path, overrides) in agents.items()
            for name, v in plan.items()
        }
        for path, overrides in jobs.values():  # every config is valid before any run
            load_config(path, overrides, seed=0)
        out = Path(args.out)
        rows = []
        for (part, name), (path, overrides) in jobs.items():
            run_seeds(path, args.seeds, out / part / name, overrides, workers=args.workers)
            rows += [r | {"variant": name} for r in agent_rows(part, name, path, overrides, args.seeds, out)]
        if "wm" in parts:
            items = [(name, v, s) for name, v in plan.items() for s in range(args.seeds)]
            values = parallel_map(functools.partial(wm_nmse, out=out, quick=args.quick), items, args.workers)
            rows += [
                {"part": "wm", "variant": n, "seed": s, "wm_nmse": x} for (n, _, s), x in zip(items, values)
            ]
        per_seed = pd.DataFrame(rows)
        for col in ("steps_to_475", "loihi_j_to_475", "final_return", "wm_nmse"):
            per_seed[col] = per_seed.get(col, NAN)
        per_seed["weight_bits"] = per_seed.variant.map(lambda n: plan[n]["weight_bits"])
        per_seed["trace_bits"] = per_seed.variant.map(lambda n: plan[n]["trace_bits"])
        columns = ["variant", "weight_bits", "trace_bits", "part", "seed", "steps_to_475", "loihi_j_to_475"]
        per_seed = per_seed[[*columns, "final_return", "wm_nmse"]]
        write_csv_atomic(per_seed, out / "per_seed.csv")
        summary = summary_table(per_seed, plan, args.seeds)
        write_csv_atomic(summary, out / "summary.csv")
        draw(per_seed, list(plan), out / "precision.png")
        with pd.option_context("display.width", 200, "display.max_columns", 20):
            print(summary.to_string(index=False))
        w8 = summary[summary.variant == "w8"]
        fl = summary[summary.variant == "float"]

        def figure(df: pd.DataFrame, column: str) -> float:
            return float(df[column].iloc[0]) if len(df) else NAN

        solved = figure(w8, "mbrl_seeds_solved")
        return {
            "fixed8_mbrl_steps_to_475_median": figure(w8, "mbrl_steps_to_475_median"),
            "float_mbrl_steps_to_475_median": figure(fl, "mbrl_steps_to_475_median"),
            "fixed8_seeds_solved": f"{'nan' if np.isnan(solved) else int(solved)}/{args.seeds}",
            "fixed8_wm_nmse_1000": figure(w8, "wm_nmse_median"),
            "min_weight_bits_solving": min_weight_bits_solving(summary, args.seeds)
            if "mbrl" in parts
            else NAN,
        }

    return run_main(body)


if __name__ == "__main__":
    sys.exit(main())
