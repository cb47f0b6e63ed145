"""Concurrent mode (``model_based.parallel``): the dreaming process and the snapshots it exchanges.

The run's process acts on the real environment with the dreamer's latest weights and learns
the model (the :class:`~nmbrl_brian.training.phases.Real` and
:class:`~nmbrl_brian.training.phases.LearnModel` phases); the dreamer process
(:func:`dreamer_main`) runs the :class:`~nmbrl_brian.training.phases.Dream` phase in the latest
published model without pause. Snapshots are versioned and written atomically
(:mod:`nmbrl_brian.training.snapshots`); the dreamer logs which model version each of its
snapshots dreamed in (``dreamer_log.csv``). Ctrl-C or a crashed dreamer stops both; the run's
last checkpoint and the latest snapshots resume it.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np

from nmbrl_brian.errors import WorkerError
from nmbrl_brian.training import snapshots
from nmbrl_brian.training.phases import episode_starts


class DreamerLink:
    """The run's side of concurrent mode: publish models, take the dreamer's weights, own its process.

    The version counters (``agent_version``, ``model_version``, ``dreamed_model_version``) and
    ``dream_steps`` stay on the agent (they are in its checkpoint and ``metrics.csv``).
    """

    def __init__(self, agent):
        self.agent = agent
        self.process = None
        self._stop = None

    @property
    def snapshots(self) -> Path:
        """Where the two processes exchange snapshots (``<run folder>/snapshots``)."""
        if self.agent.workspace is None:
            raise ValueError("model_based.parallel: the agent needs a run folder (workspace) for its snapshots")
        return self.agent.workspace / "snapshots"

    def publish_model(self, model_values: dict) -> None:
        """Publish the model (as loop values by state key) and the real start states; start the dreamer."""
        agent = self.agent
        tree = {
            "values": {agent.loop.state_key(obj, var): np.asarray(v) for (obj, var), v in model_values.items()},
            "start_states": np.asarray(agent.real_transitions.obs),
            "episode_starts": np.asarray(episode_starts(agent.real_transitions)),
            "world_model": agent.world_model.state_dict() if agent.world_model is not None else None,
        }
        agent.model_version = snapshots.publish(
            self.snapshots, "model", tree, meta={"real_steps": len(agent.real_transitions)}
        )
        self._ensure_process()

    def latest_weights(self) -> dict:
        """Values loading the dreamer's latest agent weights.

        After the first cycle this waits for a snapshot newer than the last one used (the
        dreamer has dreamed a chunk since), so real steps always come from a policy that
        learned in a model of the data so far; meanwhile the dreamer and this process's
        model learning run side by side.
        """
        agent = self.agent
        while True:
            self.check()
            snap = snapshots.latest(self.snapshots, "agent")
            if agent.model_version == 0 or (snap is not None and snap[0] > agent.agent_version):
                break
            time.sleep(0.1)
        if snap is None:
            return {}
        agent.agent_version, tree = snap
        agent.dream_steps = int(tree["dream_steps"])
        agent.dreamed_model_version = int(tree["model_version"])
        return {agent.part.weight_variables()[k]: np.asarray(v) for k, v in tree["weights"].items()}

    def _ensure_process(self) -> None:
        if self.process is not None:
            return
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        self._stop = context.Event()
        self.process = context.Process(
            target=dreamer_main,
            args=(self.agent.run_config, str(self.agent.workspace), self._stop),
            name="nmbrl-dreamer",
            daemon=True,
        )
        self.process.start()

    def check(self) -> None:
        """Raise :class:`~nmbrl_brian.errors.WorkerError` if the dreamer stopped with an error."""
        if self.process is not None and not self.process.is_alive() and self.process.exitcode != 0:
            code = self.process.exitcode
            self.process = None
            raise WorkerError(
                f"dreamer: the dreaming process stopped with exit code {code} "
                f"(see {self.agent.workspace / 'dreamer.log'})"
            )

    def close(self) -> None:
        """Stop the dreamer, waiting for its current chunk."""
        if self.process is None:
            return
        self._stop.set()
        self.process.join(timeout=120)
        if self.process.is_alive():  # pragma: no cover - a hung dreamer
            self.process.terminate()
            self.process.join()
        self.process = None


def dreamer_main(run_config: dict, workspace: str, stop) -> None:
    """The dreaming process of concurrent mode: dream in the latest model, publish the agent.

    It builds the same agent as the run (same config and seed, its own Brian2 build
    folder), starts from the latest agent snapshot if there is one (a resumed run), then
    until ``stop`` is set: loads the newest model snapshot, dreams ``dream_steps`` steps
    from its real start states (the :func:`~nmbrl_brian.training.phases.dream` phase), and
    publishes the agent's weights with the dreamed steps so far and the model version it
    dreamed in (a row of ``dreamer_log.csv`` each time).
    """
    import dataclasses
    import logging
    import sys

    from nmbrl_brian.config import RunConfig, from_dict
    from nmbrl_brian.devices import select_device
    from nmbrl_brian.envs import EnvironmentWrapper
    from nmbrl_brian.training.phases import dream_cycle
    from nmbrl_brian.training.run import build_agent

    folder = Path(workspace)
    logging.basicConfig(filename=folder / "dreamer.log", level=logging.WARNING)
    sys.stderr = open(folder / "dreamer.log", "a")  # noqa: SIM115 - the process's own error stream
    config = from_dict(RunConfig, run_config)
    config = dataclasses.replace(config, model_based=dataclasses.replace(config.model_based, parallel=False))
    build_dir = folder / "brian_build_dreamer"
    select_device(config.device, build_dir=build_dir)
    env = EnvironmentWrapper(config.env_id)
    agent = build_agent(config, env.observation_space, env.action_space, build_dir=build_dir)
    box = folder / "snapshots"
    previous = snapshots.latest(box, "agent")
    values: dict = {}
    if previous is not None:
        agent.dream_steps = int(previous[1]["dream_steps"])
        values = {agent.part.weight_variables()[k]: np.asarray(v) for k, v in previous[1]["weights"].items()}
    seen, model_values = 0, None
    log_path = folder / "dreamer_log.csv"
    start = time.perf_counter()
    while not stop.is_set():
        snap = snapshots.latest(box, "model")
        if snap is None:
            time.sleep(0.2)
            continue
        if snap[0] != seen:
            seen, tree = snap
            model_values = {agent.loop.resolve(k): np.asarray(v) for k, v in tree["values"].items()}
            starts = np.asarray(tree["start_states"])
            eval_starts = np.asarray(tree.get("episode_starts", starts))
        dream_cycle(agent, model_values, start_states=starts, eval_starts=eval_starts, first_values=values)
        values = {}
        weights = {
            k: np.array(agent.loop.value(obj, var)) for k, (obj, var) in agent.part.weight_variables().items()
        }
        version = snapshots.publish(
            box, "agent", {"weights": weights, "dream_steps": agent.dream_steps, "model_version": seen}
        )
        new_file = not log_path.exists()
        with open(log_path, "a", newline="") as f:
            writer = csv.writer(f)
            if new_file:
                writer.writerow(["agent_version", "model_version", "dream_steps", "wall_s"])
            writer.writerow([version, seen, agent.dream_steps, round(time.perf_counter() - start, 3)])
