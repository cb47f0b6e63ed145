"""Per-epoch training time of the spiking world model on runtime (cython), cpp_standalone and cuda_standalone.

Figure: ``device_speed.png``, the wall time of one training epoch of the spiking world
model (:class:`~nmbrl_brian.world_models.snn_world_model.SNNWorldModel`, 300 LIF
neurons, one 10 ms period per transition) on each Brian2 device: the first epoch, which
includes building the network and generating and compiling the code, beside the median
of the later epochs, which re-run the compiled binary with ``run_args`` (standalone) or
re-run the stored network (runtime). Log scale.
Claim: the same online e-prop training runs on all three devices; the standalone
devices reach the same weights as each other up to floating-point rounding, and after
the one-time build a standalone epoch is much cheaper than a runtime epoch.

Per seed: ``n`` random-policy CartPole-v1 transitions (5,000; 200 with ``--quick``), a
held-out set from the random policy (seed ``10_000 + seed``), and one model per device
with the same config and seed (``periods_per_run = n``, so an epoch is one network run
of ``10 n + 1`` steps). Every ``train_epoch`` is timed; then the one-step NMSE of the
state change on the held-out set is measured and the trained weights are compared with
the cpp_standalone model's.

Writes under ``--out``: ``timing.csv`` (tidy: device, seed, epoch, wall_s,
includes_build, n_transitions, network_steps, online_nmse), ``summary.csv`` (device,
seed, first_epoch_s, later_epoch_s_median, one_step_nmse, max_weight_diff_vs_cpp,
predict_s), ``config.json`` and ``device_speed.png``. Standalone projects go to
``--build-dir`` (default ``<out>/build``), one folder per device and seed. The last
line printed holds the medians over seeds.

``--devices`` defaults to ``runtime,cpp_standalone``, plus ``cuda_standalone`` when
brian2cuda imports and ``nvidia-smi -L`` lists a GPU (never with ``--quick``).

Usage::

    python experiments/device_speed.py --seeds 1 --out results/device_speed
    python experiments/device_speed.py --seeds 1 --devices runtime,cpp_standalone,cuda_standalone --out ...
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from nmbrl_brian.devices import DEVICES, reset_device, select_device
from nmbrl_brian.envs import EnvironmentWrapper
from nmbrl_brian.equations.world_model import WorldModelConfig
from nmbrl_brian.errors import ConfigError, DeviceError
from nmbrl_brian.experiment_tools import check_common_args, experiment_parser, run_main
from nmbrl_brian.plotting import save_figure
from nmbrl_brian.results import write_csv_atomic
from nmbrl_brian.world_models import collect_transitions
from nmbrl_brian.world_models.evaluation import one_step_metrics
from nmbrl_brian.world_models.snn_world_model import SNNWorldModel

ENV_ID = "CartPole-v1"
FULL = {"n_train": 5000, "n_held_out": 2000, "epochs": 3}
QUICK = {"n_train": 200, "n_held_out": 200, "epochs": 2}
#: Short names used in the headline keys.
SHORT = {"runtime": "runtime", "cpp_standalone": "cpp", "cuda_standalone": "cuda"}
TIMING_COLUMNS = [
    "device",
    "seed",
    "epoch",
    "wall_s",
    "includes_build",
    "n_transitions",
    "network_steps",
    "online_nmse",
]
SUMMARY_COLUMNS = [
    "device",
    "seed",
    "first_epoch_s",
    "later_epoch_s_median",
    "one_step_nmse",
    "max_weight_diff_vs_cpp",
    "predict_s",
]


# ----------------------------------------------------------------------------------------
# Devices
# ----------------------------------------------------------------------------------------
def brian2cuda_available() -> bool:
    """True if ``import brian2cuda`` works here."""
    try:
        importlib.import_module("brian2cuda")
    except (ImportError, AttributeError, TypeError, RuntimeError):  # absent, or not matching brian2
        return False
    return True


def gpu_visible() -> bool:
    """True if ``nvidia-smi -L`` runs and lists at least one GPU."""
    if shutil.which("nvidia-smi") is None:
        return False
    try:
        proc = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return proc.returncode == 0 and "GPU " in proc.stdout


def parse_devices(spec: str | None, *, quick: bool) -> list[str]:
    """The devices to time, in order; raise ``ConfigError``/``DeviceError`` naming ``--devices``."""
    if spec is None:
        devices = ["runtime", "cpp_standalone"]
        if not quick and brian2cuda_available() and gpu_visible():
            devices.append("cuda_standalone")
        return devices
    devices = []
    for name in (s.strip() for s in spec.split(",")):
        if name not in DEVICES:
            raise ConfigError("--devices", "a comma-separated list of " + ", ".join(DEVICES), name)
        if name not in devices:
            devices.append(name)
    if not devices:
        raise ConfigError("--devices", "at least one of " + ", ".join(DEVICES), spec)
    if "cuda_standalone" in devices:
        if not brian2cuda_available():
            raise DeviceError(
                "--devices: cuda_standalone needs brian2cuda, which does not import here "
                "(pip install 'nmbrl-brian[cuda]')"
            )
        if not gpu_visible():
            raise DeviceError(
                "--devices: cuda_standalone needs a visible GPU to train (nvidia-smi -L lists none); "
                "without one CUDA code can be compiled (devices.configure_cuda_without_gpu) but not run"
            )
    return devices


# ----------------------------------------------------------------------------------------
# One device, one seed
# ----------------------------------------------------------------------------------------
def train_on_device(device: str, seed: int, sizes: dict, train, held_out, build_dir: Path) -> dict:
    """Train one model on ``device``; return its per-epoch timings, NMSE, weights and predict time."""
    config = WorldModelConfig(epochs=sizes["epochs"], seed=seed, periods_per_run=len(train))
    steps = len(train) * config.network.steps_per_env_step + 1
    select_device(device, None if device == "runtime" else build_dir / f"{device}_seed{seed}")
    try:
        model = SNNWorldModel.for_env(ENV_ID, config=config)
        rows = []
        for epoch in range(config.epochs):
            start = time.perf_counter()
            log = model.train_epoch(train)
            wall = time.perf_counter() - start
            rows.append(
                {
                    "device": device,
                    "seed": seed,
                    "epoch": epoch,
                    "wall_s": wall,
                    "includes_build": epoch == 0,
                    "n_transitions": len(train),
                    "network_steps": steps,
                    "online_nmse": log["online_nmse"],
                }
            )
            print(
                f"  {device} seed {seed} epoch {epoch}: {wall:.2f} s, online_nmse={log['online_nmse']:.4f}",
                flush=True,
            )
        start = time.perf_counter()
        metrics = one_step_metrics(model, held_out, name=device)
        predict_s = time.perf_counter() - start
        nmse = float(metrics.query("metric == 'nmse' and dim == 'mean'")["value"].iloc[0])
        print(f"  {device} seed {seed}: one-step NMSE {nmse:.4f} (predict {predict_s:.2f} s)", flush=True)
        weights = {k: np.array(v, dtype=float, copy=True) for k, v in model.weights.items()}
    finally:
        reset_device()
    return {"rows": rows, "nmse": nmse, "weights": weights, "predict_s": predict_s}


def max_weight_diff(a: dict, b: dict) -> float:
    """Largest absolute difference over all weight arrays of two models with the same connectivity."""
    return max(float(np.max(np.abs(a[k] - b[k]), initial=0.0)) for k in a)


def summarise(device_results: dict, seed: int) -> list[dict]:
    """Summary rows of one seed (weight differences against cpp_standalone, NaN without it)."""
    ref = device_results.get("cpp_standalone")
    rows = []
    for device, res in device_results.items():
        walls = [r["wall_s"] for r in res["rows"]]
        rows.append(
            {
                "device": device,
                "seed": seed,
                "first_epoch_s": walls[0],
                "later_epoch_s_median": float(np.median(walls[1:])) if len(walls) > 1 else float("nan"),
                "one_step_nmse": res["nmse"],
                "max_weight_diff_vs_cpp": (
                    max_weight_diff(res["weights"], ref["weights"]) if ref is not None else float("nan")
                ),
                "predict_s": res["predict_s"],
            }
        )
    return rows


# ----------------------------------------------------------------------------------------
# Figure
# ----------------------------------------------------------------------------------------
def plot_device_speed(summary: pd.DataFrame, *, axes=None, title: str | None = None, **kwds):
    """Bars per device: first epoch (with build) and later epochs (median over seeds), seeds as dots."""
    import matplotlib.pyplot as plt

    ax = axes if axes is not None else plt.subplots(figsize=(7, 4))[1]
    devices = list(dict.fromkeys(summary["device"]))
    x = np.arange(len(devices))
    width = 0.38
    for offset, column, label in (
        (-width / 2, "first_epoch_s", "first epoch (build + compile + run)"),
        (width / 2, "later_epoch_s_median", "later epochs (median)"),
    ):
        med = [summary.loc[summary.device == d, column].median() for d in devices]
        bars = ax.bar(x + offset, med, width, label=label, **kwds)
        for xi, d in zip(x, devices):
            vals = summary.loc[summary.device == d, column].to_numpy()
            ax.plot(np.full(len(vals), xi + offset), vals, "k.", ms=4)
        for bar, v in zip(bars, med):
            if np.isfinite(v):
                ax.annotate(
                    f"{v:.3g} s",
                    (bar.get_x() + bar.get_width() / 2, v),
                    ha="center",
                    va="bottom",
                    fontsize=8,
                )
    ax.set_xticks(x, devices)
    ax.set_yscale("log")
    ax.set_ylabel("wall time per training epoch (s, log scale)")
    ax.set_title(title or "spiking world model, one epoch = one network run", fontsize=10)
    ax.legend(fontsize=8)
    return ax


# ----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = experiment_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--devices",
        default=None,
        help="comma-separated devices from runtime,cpp_standalone,cuda_standalone "
        "(default: runtime,cpp_standalone, plus cuda_standalone when brian2cuda imports and a GPU is "
        "visible, except with --quick)",
    )
    parser.add_argument(
        "--build-dir", default=None, help="folder of the standalone projects (default <out>/build)"
    )
    args = parser.parse_args(argv)

    def body():
        check_common_args(args)
        if args.workers != 1:
            raise ConfigError("--workers", "1 (timings are measured one run at a time)", args.workers)
        devices = parse_devices(args.devices, quick=args.quick)
        sizes = QUICK if args.quick else FULL
        out = Path(args.out)
        build_dir = Path(args.build_dir) if args.build_dir else out / "build"
        out.mkdir(parents=True, exist_ok=True)
        print(f"devices: {', '.join(devices)}; sizes: {sizes}", flush=True)
        timing, summary = [], []
        for seed in range(args.seeds):
            env = EnvironmentWrapper(ENV_ID)
            train = collect_transitions(env, None, sizes["n_train"], seed=seed)
            held_out = collect_transitions(env, None, sizes["n_held_out"], seed=10_000 + seed)
            results = {}
            for device in devices:
                results[device] = train_on_device(device, seed, sizes, train, held_out, build_dir)
                timing.extend(results[device]["rows"])
            summary.extend(summarise(results, seed))
            # Written after every seed, so an interrupted run keeps what it measured.
            timing_df = pd.DataFrame(timing, columns=TIMING_COLUMNS)
            summary_df = pd.DataFrame(summary, columns=SUMMARY_COLUMNS)
            write_csv_atomic(timing_df, out / "timing.csv")
            write_csv_atomic(summary_df, out / "summary.csv")
        (out / "config.json").write_text(
            json.dumps(
                {
                    "world_model": dataclasses.asdict(
                        WorldModelConfig(epochs=sizes["epochs"], seed=0, periods_per_run=sizes["n_train"])
                    ),
                    "sizes": sizes,
                    "devices": devices,
                    "env_id": ENV_ID,
                    "seeds": args.seeds,
                    "brian2": importlib.import_module("brian2").__version__,
                },
                indent=2,
                default=str,
            )
            + "\n"
        )
        title = f"spiking world model: one epoch = one run over {sizes['n_train']} transitions"
        save_figure(plot_device_speed(summary_df, title=title), out / "device_speed.png")
        headline = {}
        for device in devices:
            sel = summary_df[summary_df.device == device]
            headline[f"{SHORT[device]}_epoch_s"] = float(sel["later_epoch_s_median"].median())
        for device in devices:
            sel = summary_df[summary_df.device == device]
            headline[f"{SHORT[device]}_first_epoch_s"] = float(sel["first_epoch_s"].median())
        for device in devices:
            sel = summary_df[summary_df.device == device]
            headline[f"{SHORT[device]}_nmse"] = float(sel["one_step_nmse"].median())
        for device in devices:
            if device != "cpp_standalone" and "cpp_standalone" in devices:
                sel = summary_df[summary_df.device == device]
                headline[f"{SHORT[device]}_max_weight_diff"] = float(sel["max_weight_diff_vs_cpp"].max())
        return headline

    return run_main(body)


if __name__ == "__main__":
    sys.exit(main())
