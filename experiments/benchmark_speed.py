"""Closed-loop speed: environment steps per wall-clock second, learning included, per Brian2 device.

Figure: ``speed.png``, env steps per second (log scale) against the number of recurrent
neurons, one line per device and trace mode (dense or activity-sparse e-prop traces).
Claim: the whole learning loop compiled by cpp_standalone (CartPole as equations, one
build re-run with ``run_args``) runs the default network (``cartpole_snn.toml``, 200 LIF
neurons, 10 steps of 1 ms per environment step) at least 5 times faster than Brian2's
runtime mode with cython.

Every measurement trains a fresh agent of ``cartpole_snn.toml`` (seed = repeat index) in
its own process on the CartPole part: a warm-up run (code generation and compilation:
``build_s``), then ``--steps`` environment steps (``run_s``; for standalone devices whole
runs of ``periods_per_run`` periods, so a few more steps). Runtime rows also include the
default runtime coupling, gymnasium behind a network operation, at the default size.

Writes under ``--out``: ``speed.csv`` (tidy: device, environment, n_recurrent, traces,
seed, steps, build_s, run_s, steps_per_s, periods_per_run), ``summary.csv`` (medians),
``speed.png``. The last line: ``cython_steps_per_s=<x> standalone_steps_per_s=<x>
speedup=<x>`` for the default network (dense traces, CartPole as equations).

Usage::

    python experiments/benchmark_speed.py --seeds 3 --out results/benchmark_speed
"""

from __future__ import annotations

import functools
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from nmbrl_brian.experiment_tools import check_common_args, experiment_parser, parallel_map, run_main
from nmbrl_brian.plotting import save_figure
from nmbrl_brian.results import write_csv_atomic

CONFIG = Path(__file__).resolve().parents[1] / "nmbrl_brian" / "configs" / "cartpole_snn.toml"
DEFAULT_SIZE = 200
FULL = {
    "sizes": (100, 200, 300, 1000),
    "devices": ("numpy", "cython", "cpp_standalone"),
    "steps": 10_000,
    "numpy_steps": 1_000,
    "warmup_steps": 200,
}
QUICK = {
    "sizes": (DEFAULT_SIZE,),
    "devices": ("cython", "cpp_standalone"),
    "steps": 300,
    "numpy_steps": 100,
    "warmup_steps": 50,
}


def measure(task: dict) -> dict:
    """Build one agent, warm it up (compilation), then time ``task['steps']`` training steps."""
    import brian2

    from nmbrl_brian.config import load_config
    from nmbrl_brian.devices import select_device
    from nmbrl_brian.envs import EnvironmentWrapper
    from nmbrl_brian.envs.env_loop import EnvLoop
    from nmbrl_brian.training.run import build_agent

    device = "runtime" if task["device"] in ("numpy", "cython") else task["device"]
    overrides = [
        f"network.n_recurrent={task['n_recurrent']}",
        f"network.activity_sparse={'true' if task['traces'] == 'activity_sparse' else 'false'}",
        f"environment={task['environment']}",
        f"device={device}",
        f"periods_per_run={task['periods_per_run']}",
    ]
    config = load_config(CONFIG, overrides, seed=task["seed"])
    with tempfile.TemporaryDirectory() as tmp:
        select_device(device, build_dir=Path(tmp) / "build")
        if task["device"] == "numpy":
            brian2.prefs.codegen.target = "numpy"
        env = EnvironmentWrapper(config.env_id)
        agent = build_agent(config, env.observation_space, env.action_space, build_dir=Path(tmp) / "build")
        loop = EnvLoop(env, seed=config.seed)
        start = time.perf_counter()
        agent.interact(loop, max_steps=task["warmup_steps"])
        build_s = time.perf_counter() - start
        first = loop.env_steps
        start = time.perf_counter()
        agent.interact(loop, max_steps=task["steps"])
        run_s = time.perf_counter() - start
    steps = loop.env_steps - first
    return {**task, "steps": steps, "build_s": build_s, "run_s": run_s, "steps_per_s": steps / run_s}


def tasks_for(args, sizes_devices: dict) -> list[dict]:
    tasks = []
    for seed in range(args.seeds):
        for device in sizes_devices["devices"]:
            steps = sizes_devices["numpy_steps"] if device == "numpy" else sizes_devices["steps"]
            common = {
                "device": device,
                "seed": seed,
                "steps": steps,
                "warmup_steps": sizes_devices["warmup_steps"],
                "periods_per_run": min(2000, steps),
            }
            for n in sizes_devices["sizes"]:
                for traces in ("dense", "activity_sparse"):
                    tasks.append({**common, "n_recurrent": n, "traces": traces, "environment": "equations"})
            if device in ("numpy", "cython"):
                tasks.append(
                    {**common, "n_recurrent": DEFAULT_SIZE, "traces": "dense", "environment": "gymnasium"}
                )
    return tasks


def plot(summary: pd.DataFrame, out: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    eq = summary[summary.environment == "equations"]
    for (device, traces), df in eq.groupby(["device", "traces"]):
        df = df.sort_values("n_recurrent")
        ax.plot(
            df.n_recurrent,
            df.steps_per_s,
            marker="o",
            ls="-" if traces == "dense" else "--",
            label=f"{device}, {traces} traces",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("recurrent neurons")
    ax.set_ylabel("environment steps per second (learning included)")
    ax.set_title("Closed loop on CartPole, 10 ms network time per step", fontsize=10)
    ax.legend(fontsize=7)
    save_figure(ax, out / "speed.png")
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = experiment_parser(__doc__.splitlines()[0])
    parser.set_defaults(seeds=1)
    args = parser.parse_args(argv)

    def body():
        check_common_args(args)
        out = Path(args.out)
        plan = QUICK if args.quick else FULL
        rows = parallel_map(functools.partial(measure), tasks_for(args, plan), args.workers, isolate=True)
        out.mkdir(parents=True, exist_ok=True)
        table = pd.DataFrame(rows)
        write_csv_atomic(table, out / "speed.csv")
        keys = ["device", "environment", "n_recurrent", "traces"]
        summary = table.groupby(keys, as_index=False)[["steps_per_s", "build_s", "run_s"]].median()
        write_csv_atomic(summary, out / "summary.csv")
        plot(summary, out)
        default = summary[
            (summary.n_recurrent == DEFAULT_SIZE)
            & (summary.traces == "dense")
            & (summary.environment == "equations")
        ].set_index("device")["steps_per_s"]
        cython, standalone = float(default["cython"]), float(default["cpp_standalone"])
        return {
            "cython_steps_per_s": round(cython),
            "standalone_steps_per_s": round(standalone),
            "speedup": round(standalone / cython, 2),
        }

    return run_main(body)


if __name__ == "__main__":
    sys.exit(main())
