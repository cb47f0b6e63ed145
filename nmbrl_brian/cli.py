"""Command line: ``nmbrl run`` (also ``python -m nmbrl_brian run``), ``build``, ``read``, ``config``
and ``sweep``.

Bad input (unknown key, wrong type or value, missing file or optional dependency,
a damaged or foreign checkpoint) prints one line naming the field and what is
allowed, exits with code 2 and writes no results folder. A run whose learning
diverges stops with one line naming the variable and the step (exit code 2). Ctrl-C
prints where the last checkpoint is and how to resume (exit code 130); so does a results
file that cannot be written, e.g. on a full disk (one line naming the file, exit code 1).
"""

from __future__ import annotations

import argparse
import sys

from nmbrl_brian.devices import DEVICES
from nmbrl_brian.errors import (
    CheckpointError,
    ConfigError,
    DeviceError,
    DivergenceError,
    ResultsWriteError,
    RunInterrupted,
    WorkerError,
)

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nmbrl", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="train an agent and write a results folder")
    run.add_argument("--config", metavar="FILE.toml", help="TOML config (default: built-in defaults)")
    run.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one field by dotted path, e.g. --set agent.gamma=0.98 (repeatable)",
    )
    run.add_argument("--seed", type=int, help="the run's seed (overrides the config)")
    run.add_argument("--out", metavar="DIR", help="results root folder (default: results)")
    run.add_argument(
        "--device", help="Brian2 target, one of " + ", ".join(DEVICES) + " (overrides the config)"
    )
    run.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue an interrupted run from its checkpoint with its saved config (only --set "
        "total_env_steps=N, checkpoint_every=N or stop_at_return=X may change it)",
    )
    run.add_argument(
        "--parallel",
        action="store_true",
        help="model-based runs: dream in a second process (the same as --set model_based.parallel=true)",
    )
    run.add_argument(
        "--allow-env-import",
        action="store_true",
        help="accept env_id of the form module:Env, which imports (runs) that module",
    )

    build = sub.add_parser(
        "build", help="write the standalone project of a config's closed loop (compiled once)"
    )
    build.add_argument("--config", metavar="FILE.toml")
    build.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    build.add_argument("--seed", type=int, help="the run's seed (overrides the config)")
    build.add_argument(
        "--device", default="cpp_standalone", help="cpp_standalone (default) or cuda_standalone"
    )
    build.add_argument("--out", required=True, metavar="DIR", help="the project folder to create")

    read = sub.add_parser("read", help="read back what a built project's binary wrote (after `make` there)")
    read.add_argument("folder", metavar="DIR", help="a folder written by `nmbrl build`")

    sweep = sub.add_parser(
        "sweep", help="train a grid of config values x seeds on Dask and merge the runs into one table"
    )
    sweep.add_argument(
        "--grid", required=True, metavar="GRID.toml", help="the grid file (see nmbrl_brian/sweep.py)"
    )
    sweep.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="a running Dask scheduler, e.g. tcp://host:8786 (default: local workers)",
    )
    sweep.add_argument(
        "--workers", type=int, metavar="N", help="local worker processes (default: one per core)"
    )
    sweep.add_argument("--out", metavar="DIR", help="sweep folder (default: results/sweep_<grid file name>)")

    cfg = sub.add_parser("config", help="print the resolved config, or every field with its documentation")
    cfg.add_argument("--config", metavar="FILE.toml")
    cfg.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    cfg.add_argument("--describe", action="store_true", help="list every field, its type, default and doc")
    return p


def _cmd_run(args) -> int:
    from nmbrl_brian.config import load_config, load_config_json
    from nmbrl_brian.training.run import resume_training, run_training

    if args.resume:
        for flag, value in (
            ("--config", args.config),
            ("--seed", args.seed),
            ("--out", args.out),
            ("--device", args.device),
            ("--parallel", True if args.parallel else None),
        ):
            if value is not None:
                raise ConfigError(
                    flag,
                    "no " + flag + " with --resume (a resumed run keeps its config.json and folder)",
                    value,
                )
        run_dir = resume_training(
            args.resume, overrides=args.overrides, allow_env_import=args.allow_env_import
        )
    else:
        overrides = [*args.overrides, *(["model_based.parallel=true"] if args.parallel else [])]
        config = load_config(args.config, overrides, seed=args.seed, device=args.device)
        run_dir = run_training(config, out=args.out or "results", allow_env_import=args.allow_env_import)
    import pandas as pd

    from nmbrl_brian.training.metrics import steps_to_threshold, training_rows

    metrics = pd.read_csv(run_dir / "metrics.csv")
    current = training_rows(metrics)
    last = current.iloc[-1]
    kept = metrics[metrics["policy"] == "kept"] if "policy" in metrics else metrics.iloc[:0]
    threshold = solved_return(load_config_json(run_dir / "config.json").env_id)
    key = f"steps_to_{threshold:g}".replace("-", "minus")  # steps_to_475, steps_to_minus100
    print(f"results: {run_dir}")
    print(
        f"env_steps={int(last.env_steps)} final_return_mean={last.return_mean:.1f} "
        f"best_return_mean={current.return_mean.max():.1f} "
        + (f"kept_policy_return_mean={kept.return_mean.iloc[-1]:.1f} " if len(kept) else "")
        + f"{key}={steps_to_threshold(metrics, threshold):.0f} wall_s={last.wall_s:.1f}"
    )
    return 0


def solved_return(env_id: str) -> float:
    """The return at which gymnasium calls ``env_id`` solved (its spec's ``reward_threshold``:
    CartPole-v1 475, Acrobot-v1 -100), 475 for a task without one."""
    import gymnasium

    try:
        threshold = gymnasium.spec(env_id).reward_threshold
    except gymnasium.error.Error:  # an imported module:Env task, or an unknown id
        threshold = None
    return 475.0 if threshold is None else float(threshold)


def _cmd_build(args) -> int:
    from nmbrl_brian.config import load_config
    from nmbrl_brian.training.standalone_project import build_project

    config = load_config(args.config, args.overrides, seed=args.seed, device=args.device)
    out = build_project(config, args.out)
    print(f"project: {out} (`make` there compiles and runs it; then `nmbrl read {out}`)")
    return 0


def _cmd_read(args) -> int:
    from nmbrl_brian.training.standalone_project import read_project

    summary = read_project(args.folder)
    print(" ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in summary.items()))
    return 0


def _cmd_sweep(args) -> int:
    from pathlib import Path

    from nmbrl_brian.sweep import load_grid, run_sweep

    grid = load_grid(args.grid)
    out = args.out or f"results/sweep_{Path(args.grid).stem}"
    try:
        result = run_sweep(grid, out, scheduler=args.scheduler, workers=args.workers)
    except KeyboardInterrupt:
        print(
            f"nmbrl: sweep interrupted; run the same command again to continue it (table under {out})",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    status = result.table["status"]
    print(f"table: {result.path}")
    print(
        f"runs={len(status)} finished={int((status == 'finished').sum())} failed={int((status == 'failed').sum())} "
        f"skipped={int(result.table['skipped'].sum())}"
    )
    return 1 if (status != "finished").any() else 0


def _cmd_config(args) -> int:
    import json

    from nmbrl_brian.config import describe, load_config

    if args.describe:
        for name, tp, default, doc in describe():
            print(f"{name} ({tp}, default {default!r}): {doc}")
        return 0
    print(json.dumps(load_config(args.config, args.overrides).to_dict(), indent=2))
    return 0


def _resume_hint(path, args) -> str:
    """Where the last checkpoint of the run folder holding ``path`` is, and how to resume it."""
    from pathlib import Path

    from nmbrl_brian.checkpoints import read_checkpoint_meta
    from nmbrl_brian.training.actor_critic_trainer import CHECKPOINT_FILE

    run_dir = Path(path).parent
    if not (run_dir / "config.json").is_file():
        return ""
    checkpoint = run_dir / CHECKPOINT_FILE
    try:
        step = read_checkpoint_meta(checkpoint)["env_steps"]
    except (CheckpointError, OSError, KeyError):
        return "; no checkpoint was written, so there is nothing to resume"
    flag = " --allow-env-import" if getattr(args, "allow_env_import", False) else ""
    return (
        f"; last checkpoint (env step {step}) is {checkpoint}; "
        f"continue with: nmbrl run --resume {run_dir}{flag}"
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``nmbrl`` command; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        commands = {
            "run": _cmd_run,
            "build": _cmd_build,
            "read": _cmd_read,
            "config": _cmd_config,
            "sweep": _cmd_sweep,
        }
        return commands[args.command](args)
    except (ConfigError, DeviceError, CheckpointError, DivergenceError) as exc:
        print(f"nmbrl: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except WorkerError as exc:
        print(f"nmbrl: error: {exc}", file=sys.stderr)
        return 1
    except ResultsWriteError as exc:
        print(f"nmbrl: error: {exc}{_resume_hint(exc.path, args)}", file=sys.stderr)
        return 1
    except RunInterrupted as exc:
        flag = (
            " --allow-env-import"
            if getattr(args, "allow_env_import", False) and exc.checkpoint is not None
            else ""
        )
        print(f"nmbrl: {exc}{flag}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print("nmbrl: interrupted before training started; nothing to resume", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
