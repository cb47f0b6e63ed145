"""One training run end to end: validate, set up the device, build, train, write results."""

from __future__ import annotations

import dataclasses
import logging
import sys
from pathlib import Path

import pandas as pd

from nmbrl_brian.agents.base import BaseAgent
from nmbrl_brian.checkpoints import read_checkpoint_meta
from nmbrl_brian.config import RESUME_OVERRIDES, RunConfig, apply_resume_overrides, load_config_json
from nmbrl_brian.devices import select_device
from nmbrl_brian.encoding import PopulationEncoder
from nmbrl_brian.envs import EnvironmentWrapper
from nmbrl_brian.errors import CheckpointError, ConfigError, RunInterrupted
from nmbrl_brian.results import new_run_dir
from nmbrl_brian.training.actor_critic_trainer import CHECKPOINT_FILE, ActorCriticTrainer
from nmbrl_brian.training.callbacks import Callback, Checkpointer, EnergyReport, MetricsWriter, ProgressBar

log = logging.getLogger(__name__)


def build_agent(config: RunConfig, observation_space, action_space, build_dir=None) -> BaseAgent:
    """Build the agent named by ``config.agent.kind`` for the given spaces (``build_dir``: standalone folder)."""
    kind = config.agent.kind
    if kind == "dense_actor_critic":
        from nmbrl_brian.agents.dense_actor_critic import DenseActorCritic

        return DenseActorCritic(
            observation_space,
            action_space,
            agent=config.agent,
            encoding=config.encoding,
            dense=config.dense,
            seed=config.seed,
        )
    if kind in ("spiking_actor_critic", "spiking_model_based"):
        from nmbrl_brian.agents.model_based import ModelBasedSpikingAgent
        from nmbrl_brian.agents.spiking_actor_critic import SpikingActorCritic

        extra = {}
        if kind == "spiking_model_based":
            extra = {
                "model_based": config.model_based,
                "world_model": dataclasses.replace(config.world_model, seed=config.seed),
                "workspace": None if build_dir is None else Path(build_dir).parent,
                "run_config": config.to_dict(),
            }
        return (ModelBasedSpikingAgent if extra else SpikingActorCritic)(
            observation_space,
            action_space,
            **extra,
            agent=config.agent,
            encoding=config.encoding,
            network=config.network,
            seed=config.seed,
            environment=config.closed_loop_environment,
            env_id=config.env_id,
            periods_per_run=config.periods_per_run,
            build_dir=build_dir,
        )
    raise ConfigError("agent.kind", "a known agent kind", kind)  # pragma: no cover - validated earlier


def _build_trainer(
    config: RunConfig, run_dir: Path, extra_callbacks, allow_env_import: bool = False
) -> ActorCriticTrainer:
    build_dir = run_dir / "brian_build"
    if config.agent.kind != "dense_actor_critic":
        select_device(config.device, build_dir=build_dir)
    env = EnvironmentWrapper(config.env_id, allow_import=allow_env_import)
    eval_env = EnvironmentWrapper(config.env_id, allow_import=allow_env_import)
    agent = build_agent(config, env.observation_space, env.action_space, build_dir=build_dir)
    callbacks: list[Callback] = [
        ProgressBar(),
        MetricsWriter(run_dir),
        Checkpointer(config.checkpoint_every),
        EnergyReport(run_dir),
        *extra_callbacks,
    ]
    return ActorCriticTrainer(config, agent, env, eval_env, run_dir, callbacks)


def _learn(trainer: ActorCriticTrainer) -> None:
    """Train; a Ctrl-C becomes :class:`RunInterrupted`, which says where the checkpoint is.

    The checkpoint's step is read from the file itself: a Ctrl-C may land after a new checkpoint
    was renamed into place but before the trainer noted it.
    """
    try:
        trainer.learn()
    except KeyboardInterrupt:
        path, step = trainer.checkpoint_path, trainer.checkpoint_step
        on_disk = trainer.run_dir / CHECKPOINT_FILE
        try:
            step, path = read_checkpoint_meta(on_disk)["env_steps"], on_disk
        except (CheckpointError, OSError, KeyError):
            pass  # no readable checkpoint there: report what the trainer knows
        raise RunInterrupted(trainer.run_dir, trainer.env_steps, path, step) from None


def run_training(
    config: RunConfig,
    out: str | Path = "results",
    callbacks: tuple[Callback, ...] = (),
    *,
    allow_env_import: bool = False,
) -> Path:
    """Train a fresh run of ``config`` under ``out``; return its results folder.

    The environment and agent are built (and so validated against each other)
    before the results folder is created, so bad input leaves nothing behind.
    ``allow_env_import`` lets ``env_id`` be a ``module:Env`` id (imports ``module``).

    Raises
    ------
    ConfigError
        On bad input (nothing is written).
    DivergenceError
        If learning diverged; the folder keeps the last good checkpoint.
    RunInterrupted
        On Ctrl-C; the folder keeps the last checkpoint.
    """
    # Check the config against the env before anything is written: an unknown env id,
    # an unsupported space or encoding ranges of the wrong length raise ConfigError here.
    probe = EnvironmentWrapper(config.env_id, allow_import=allow_env_import)
    PopulationEncoder(config.encoding, probe.observation_space.shape[0])
    probe.close()
    run_dir = new_run_dir(out, config.run_name_stem)
    try:
        config.to_json(run_dir / "config.json")
        trainer = _build_trainer(config, run_dir, callbacks, allow_env_import)
    except BaseException:
        import shutil

        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    _learn(trainer)
    return run_dir


def resume_training(
    run_dir: str | Path,
    callbacks: tuple[Callback, ...] = (),
    *,
    overrides: list[str] | tuple[str, ...] = (),
    allow_env_import: bool = False,
) -> Path:
    """Continue the run in ``run_dir`` from its checkpoint with its saved ``config.json``.

    ``overrides`` (``--set`` items) may change only :data:`~nmbrl_brian.config.RESUME_OVERRIDES`;
    a change is printed to stderr and written to ``config.json`` once the checkpoint has loaded.

    Raises
    ------
    ConfigError, CheckpointError
        On a missing, damaged or foreign run folder or checkpoint, or a refused
        override (one line; nothing is written).
    """
    run_dir = Path(run_dir)
    checkpoint = run_dir / CHECKPOINT_FILE
    if not (run_dir / "config.json").is_file():
        raise ConfigError("--resume", f"a run folder holding config.json and {CHECKPOINT_FILE}", str(run_dir))
    if not checkpoint.is_file():
        if (run_dir / "checkpoint.pkl").is_file():
            raise CheckpointError(
                run_dir / "checkpoint.pkl",
                "is a pickle from an earlier nmbrl; pickles can run code, so it is not loaded (start the run again)",
            )
        raise ConfigError("--resume", f"a run folder holding config.json and {CHECKPOINT_FILE}", str(run_dir))
    saved = load_config_json(run_dir / "config.json")
    config = apply_resume_overrides(saved, overrides)
    trainer = _build_trainer(config, run_dir, callbacks, allow_env_import)
    trainer.load_checkpoint(checkpoint)
    if config.total_env_steps < trainer.env_steps:
        raise ConfigError(
            "total_env_steps",
            f"an integer >= {trainer.env_steps} (steps this run has taken)",
            config.total_env_steps,
        )
    if config != saved:
        changes = ", ".join(
            f"{key}={getattr(config, key)} (was {getattr(saved, key)})"
            for key in RESUME_OVERRIDES
            if getattr(config, key) != getattr(saved, key)
        )
        print(f"nmbrl: resuming {run_dir} with {changes}; config.json updated", file=sys.stderr)
        config.to_json(run_dir / "config.json")
    _learn(trainer)
    return run_dir


def run_finished(run_dir: Path, config: RunConfig) -> bool:
    """Whether ``run_dir`` holds a finished run of ``config`` (metrics up to its last step, and its figure)."""
    metrics = run_dir / "metrics.csv"
    if not metrics.is_file() or not (run_dir / "learning_curve.png").is_file():
        return False
    table = pd.read_csv(metrics)
    if int(table["env_steps"].max()) >= config.total_env_steps:
        return True
    current = table[table["policy"] != "kept"] if "policy" in table else table
    return bool(len(current)) and float(current["return_mean"].iloc[-1]) >= config.stop_at_return


def find_run(config: RunConfig, runs_root: Path) -> Path | None:
    """The newest run folder under ``runs_root`` whose ``config.json`` equals ``config`` (None if none)."""
    previous = sorted(runs_root.glob(f"{config.run_name_stem}__*")) if runs_root.is_dir() else []
    previous = [
        p for p in previous if (p / "config.json").is_file() and load_config_json(p / "config.json") == config
    ]
    return previous[-1] if previous else None


def train_or_resume(config: RunConfig, runs_root: Path) -> Path:
    """Return the finished run of ``config`` under ``runs_root``, resuming or starting it as needed.

    A previous run counts when its ``config.json`` equals ``config``; the newest one is used
    (:func:`find_run`).
    """
    run_dir = find_run(config, runs_root)
    if run_dir is not None and run_finished(run_dir, config):
        return run_dir
    if run_dir is not None and (run_dir / CHECKPOINT_FILE).is_file():
        return resume_training(run_dir)
    return run_training(config, out=runs_root)
