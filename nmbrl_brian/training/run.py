"""One training run end to end: validate, set up the device, build, train, write results."""

from __future__ import annotations

import logging
from pathlib import Path

from nmbrl_brian.agents.base import BaseAgent
from nmbrl_brian.config import RunConfig, load_config_json
from nmbrl_brian.devices import select_device
from nmbrl_brian.encoding import PopulationEncoder
from nmbrl_brian.envs import EnvironmentWrapper
from nmbrl_brian.errors import ConfigError
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
    if kind == "spiking_actor_critic":
        from nmbrl_brian.agents.spiking_actor_critic import SpikingActorCritic

        return SpikingActorCritic(
            observation_space,
            action_space,
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


def _build_trainer(config: RunConfig, run_dir: Path, extra_callbacks) -> ActorCriticTrainer:
    build_dir = run_dir / "brian_build"
    if config.agent.kind != "dense_actor_critic":
        select_device(config.device, build_dir=build_dir)
    env = EnvironmentWrapper(config.env_id)
    eval_env = EnvironmentWrapper(config.env_id)
    agent = build_agent(config, env.observation_space, env.action_space, build_dir=build_dir)
    callbacks: list[Callback] = [
        ProgressBar(),
        MetricsWriter(run_dir),
        Checkpointer(config.checkpoint_every),
        EnergyReport(run_dir),
        *extra_callbacks,
    ]
    return ActorCriticTrainer(config, agent, env, eval_env, run_dir, callbacks)


def run_training(
    config: RunConfig, out: str | Path = "results", callbacks: tuple[Callback, ...] = ()
) -> Path:
    """Train a fresh run of ``config`` under ``out``; return its results folder.

    The environment and agent are built (and so validated against each other)
    before the results folder is created, so bad input leaves nothing behind.
    """
    # Check the config against the env before anything is written: an unknown env id,
    # an unsupported space or encoding ranges of the wrong length raise ConfigError here.
    probe = EnvironmentWrapper(config.env_id)
    PopulationEncoder(config.encoding, probe.observation_space.shape[0])
    probe.close()
    run_dir = new_run_dir(out, config.run_name_stem)
    try:
        config.to_json(run_dir / "config.json")
        trainer = _build_trainer(config, run_dir, callbacks)
    except BaseException:
        import shutil

        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    trainer.learn()
    return run_dir


def resume_training(run_dir: str | Path, callbacks: tuple[Callback, ...] = ()) -> Path:
    """Continue the run in ``run_dir`` from its checkpoint with its saved ``config.json``."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file() or not (run_dir / CHECKPOINT_FILE).is_file():
        raise ConfigError("--resume", "a run folder holding config.json and checkpoint.pkl", str(run_dir))
    config = load_config_json(run_dir / "config.json")
    trainer = _build_trainer(config, run_dir, callbacks)
    trainer.load_checkpoint()
    trainer.learn()
    return run_dir
