"""The closed loop: parts (an agent, an environment, learners...) joined into one Brian2 network, and run.

:class:`ClosedLoop` is the only code that creates the ``brian2.Network`` of a loop and
calls ``run``, ``store``/``restore``, ``device.build`` and ``device.run(run_args=...)``.
Parts (:mod:`nmbrl_brian.parts`) only bundle Brian2 objects; the loop wires an agent
part to an environment part (linked variables both ways), if it has them, and runs
*periods*, one environment step each. A loop may also hold no agent and no environment,
only other parts (e.g. the world model's learner, :class:`SNNWorldModel`'s own runner).

Runtime and standalone differ only in how a run starts and how its results come back:

runtime (cython or numpy)
    The state lives in the Brian2 objects. ``run(n)`` writes the run's values and table
    contents into them and calls ``Network.run`` (split into runs of at most
    ``periods_per_run`` periods, the size of the tables).
cpp_standalone / cuda_standalone
    The project is generated and compiled once, with a fixed duration of
    ``periods_per_run`` periods; the loop keeps the whole state (every writeable
    variable of every group) as NumPy arrays and re-runs the binary with
    ``device.run(run_args=...)``: state, run values and table contents in, final state
    and monitor records out. A run of ``n`` periods therefore takes
    ``ceil(n / periods_per_run)`` executions.

Either way a run returns what the environment's monitors saw: every transition
``(s, a, r, s', terminated, truncated)`` and every finished episode, and what the other
parts record per period (their ``recorded`` monitors, e.g. the world model's predictions). Because tables are
indexed by counters kept in the state (periods and resets so far), a run cut into
pieces computes the same as one long run.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nmbrl_brian.devices import (
    active_device_is_standalone,
    check_no_network_operations,
    run_standalone_binary,
)
from nmbrl_brian.errors import DeviceError
from nmbrl_brian.parts.agent import ActorCriticPart
from nmbrl_brian.parts.base import EnvironmentPart


@dataclass
class RunRecord:
    """What one call of :meth:`ClosedLoop.run` produced."""

    periods: int = 0
    """Environment periods simulated."""
    copy: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    """Copy of each transition."""
    obs: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    """Observation before each transition, shape ``(N, obs_dim)``."""
    action: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    """Action of each transition."""
    reward: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """Reward of each transition."""
    next_obs: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    """Observation after each transition."""
    terminated: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    """The transition reached a terminal state."""
    truncated: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    """The transition hit the time limit."""
    episode_copy: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    """Copy of each finished episode."""
    episode_return: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """Return of each finished episode, in the order they finished."""
    episode_length: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    """Length of each finished episode."""
    wall_s: float = 0.0
    """Wall-clock time of the run(s), including standalone process start and file transfer."""
    samples: dict = field(default_factory=dict)
    """A part's per-period records: ``{name: array (samples, n)}`` of each of its ``recorded``
    state monitors (in standalone mode every execution's ``periods_per_run`` samples)."""

    @property
    def steps(self) -> int:
        """Environment steps taken."""
        return len(self.reward)

    def extend(self, other: RunRecord) -> None:
        """Append ``other``'s periods, transitions and episodes."""
        self.periods += other.periods
        self.wall_s += other.wall_s
        for name in (
            "copy",
            "action",
            "reward",
            "terminated",
            "truncated",
            "episode_copy",
            "episode_return",
            "episode_length",
        ):
            setattr(self, name, np.concatenate([getattr(self, name), getattr(other, name)]))
        for name in ("obs", "next_obs"):
            mine, theirs = getattr(self, name), getattr(other, name)
            setattr(self, name, theirs.copy() if mine.size == 0 else np.concatenate([mine, theirs]))
        for name, theirs in other.samples.items():
            mine = self.samples.get(name)
            self.samples[name] = theirs.copy() if mine is None else np.concatenate([mine, theirs])


def _state_variables(objects) -> list[tuple[Any, str]]:
    """Every writeable, non-constant state variable owned by the groups among ``objects``.

    A variable linked to one of the group's own (``s_0 = linked_var(group, "obs", index=...)``) is
    a second name for it and is skipped: standalone ``run_args`` can set only the original.
    """
    from brian2 import NeuronGroup, Synapses
    from brian2.core.variables import ArrayVariable

    out = []
    for obj in objects:
        if not isinstance(obj, (NeuronGroup, Synapses)):
            continue
        for name, var in obj.variables.items():
            if (
                isinstance(var, ArrayVariable)
                and var.owner is not None
                and var.owner.name == obj.name
                and var.name == name
                and not var.read_only
                and not var.constant
                and not name.startswith("_")
                and name not in ("t", "dt", "t_in_timesteps", "N", "i", "j", "lastupdate", "delay")
            ):
                out.append((obj, name))
    return out


class ClosedLoop:
    """Parts in one network: an agent part and an environment part, other parts, or both.

    Parameters
    ----------
    agent : ActorCriticPart, optional
        The agent (its head offers ``command`` and ``action``); give it with ``env``.
    env : EnvironmentPart, optional
        The environment (CartPole equations, gymnasium, a dream...); give it with ``agent``.
    others, parts : sequence of Part
        More parts (e.g. the world model's learner); ``ClosedLoop(parts=[learner])`` is a
        loop of the learner alone.
    name : str
        Name of the network.
    build_dir : str or Path, optional
        Standalone project folder (default: the folder given to
        :func:`nmbrl_brian.devices.select_device`).

    Attributes
    ----------
    periods_per_run : int
        Rows of the parts' tables, the length of one standalone execution: the agent's
        uniforms table, else the ``periods_per_run`` the parts declare (they must agree).
    last_build : BuildRecord or None
        Standalone: the build's time and whether its binary came from the build cache
        (:mod:`nmbrl_brian.build_cache`); also in ``build.json`` of the project folder.

    Raises
    ------
    DeviceError
        If a part holds a network operation and the device is standalone.
    ValueError
        If only one of ``agent`` and ``env`` is given, there are no parts, or the parts
        disagree on the period or on ``periods_per_run``.
    """

    def __init__(
        self,
        agent: ActorCriticPart | None = None,
        env: EnvironmentPart | None = None,
        *,
        others: Sequence = (),
        parts: Sequence = (),
        name: str = "closed_loop",
        build_dir=None,
    ):
        from brian2 import Network

        if (agent is None) != (env is None):
            raise ValueError("agent, env: give both (an agent acting in an environment) or neither")
        extra = [*others, *parts]
        #: The environments with monitors (behind a switch: both of its environments).
        self.environments: list[EnvironmentPart] = []
        if agent is not None:
            if agent.period != env.period:
                raise ValueError(f"env: expected the agent's period {agent.period}, got {env.period}")
            agent.connect_environment(env)
            self.environments = list(getattr(env, "environments", [env]))
            inner = [e for e in self.environments if e is not env]
            self.parts = [agent, env, *inner, *extra]
        else:
            self.parts = extra
        if not self.parts:
            raise ValueError("parts: a loop needs at least one part")
        self.agent, self.env = agent, env
        self.period = self.parts[0].period
        for part in self.parts:
            if part.period != self.period:
                raise ValueError(
                    f"{part.prefix}: expected the loop's period {self.period}, got {part.period}"
                )
        self.periods_per_run = self._periods_per_run()
        self.network = Network(*[obj for part in self.parts for obj in part.objects], name=name)
        check_no_network_operations(self.network)
        self.standalone = active_device_is_standalone()
        self.build_dir = Path(build_dir) if build_dir is not None else None
        self.variables = _state_variables(self.network.objects)
        self._state: dict[str, np.ndarray] | None = None  # standalone: the state between runs
        self._stored: dict[str, dict[str, np.ndarray] | None] = {}
        self._built = False
        self._read: dict[str, int] = {}  # runtime: monitor events read so far
        self._stored_reads: dict[str, dict[str, int]] = {}
        self.timings: dict[str, list[float]] = {"build": [], "run": []}
        self.last_build = None  # standalone: the BuildRecord of the build (cache hit or compile)

    @property
    def built(self) -> bool:
        """Whether the standalone project has been generated and compiled."""
        return self._built

    def _periods_per_run(self) -> int:
        """The agent's uniforms rows, else what the parts declare (``periods_per_run``); all must agree."""
        declared = {
            part.prefix: int(part.periods_per_run) for part in self.parts if hasattr(part, "periods_per_run")
        }
        if self.agent is not None:
            rows = int(self.agent.uniforms.values.shape[0])
        elif declared:
            rows = next(iter(declared.values()))
        else:
            raise ValueError("parts: no part declares periods_per_run (the rows of its tables)")
        for prefix, value in declared.items():
            if value != rows:
                raise ValueError(f"{prefix}: expected periods_per_run = {rows} (the loop's), got {value}")
        return rows

    # ----------------------------------------------------------------------------------
    # State
    @staticmethod
    def state_key(obj, name: str) -> str:
        """The key of ``obj.name`` in :meth:`state` (``"group.variable"``)."""
        return f"{obj.name}.{name}"

    @property
    def has_state(self) -> bool:
        """Whether :meth:`state` can be read: always in runtime mode, under a standalone device
        once a run has ended or a state was loaded."""
        return not self.standalone or self._state is not None

    def resolve(self, key: str) -> tuple[Any, str]:
        """The ``(group, variable)`` of a state key ``"group.variable"`` (as in :meth:`state`)."""
        for obj, name in self.variables:
            if self.state_key(obj, name) == key:
                return obj, name
        raise KeyError(f"state: no variable {key!r} in this loop")

    def value(self, obj, name: str) -> np.ndarray:
        """The current value of ``obj.name`` (before the first standalone run: its default, 0)."""
        if not self.standalone:
            return np.array(obj.variables[name].get_value())
        if self._state is None:
            return np.zeros(obj.variables[name].size, dtype=obj.variables[name].dtype)
        return self._state[self.state_key(obj, name)]

    def state(self) -> dict[str, np.ndarray]:
        """Copies of every state variable (``"group.variable"`` -> array), e.g. for a checkpoint."""
        if self.standalone:
            if self._state is None:
                raise RuntimeError("the standalone loop has no state before its first run")
            return {k: v.copy() for k, v in self._state.items()}
        return {
            self.state_key(obj, name): np.array(obj.variables[name].get_value())
            for obj, name in self.variables
        }

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Write a state returned by :meth:`state` (same parts and sizes)."""
        expected = {self.state_key(obj, name): (obj, name) for obj, name in self.variables}
        missing = set(expected) - set(state)
        if missing:
            raise ValueError(f"state: missing {sorted(missing)[:5]} (not a state of this loop)")
        for key, (obj, name) in expected.items():
            size = obj.variables[name].size
            if self.standalone and self._state is None and getattr(obj.variables[name], "dynamic", False):
                continue  # synapse count known after the binary's first run; it refuses a wrong-sized file
            if np.shape(state[key]) not in ((size,), ()) and not (size == 1 and np.size(state[key]) == 1):
                raise ValueError(
                    f"state: {key} has shape {np.shape(state[key])}, expected ({size},) "
                    "(a state of a loop with the same connectivity: same seeds and sizes)"
                )
        if self.standalone:
            self._state = {k: np.array(state[k]) for k in expected}
            return
        for key, (obj, name) in expected.items():
            obj.variables[name].set_value(np.asarray(state[key]))

    def write(self, values: dict) -> None:
        """Write ``{(group, variable): array}`` into the loop's state now (e.g. kept weights).

        The same values as a run's ``values`` argument, but they stay for every later run
        rather than being written at the start of one.
        """
        if self.standalone and self._state is None:
            raise RuntimeError("write: the standalone loop has no state before its first run")
        for (obj, name), value in values.items():
            var = obj.variables[name]
            array = np.broadcast_to(np.asarray(value, dtype=var.dtype), (var.size,)).copy()
            if self.standalone:
                self._state[self.state_key(obj, name)] = array
            else:
                var.set_value(array)

    def store(self, name: str = "default") -> None:
        """Remember the current state (runtime: ``Network.store``, monitors included)."""
        if self.standalone:
            self._stored[name] = (
                None if self._state is None else {k: v.copy() for k, v in self._state.items()}
            )
        else:
            self.network.store(name)
            self._stored_reads[name] = dict(self._read)

    def restore(self, name: str = "default") -> None:
        """Go back to a state remembered by :meth:`store` (and to the monitor records read by then)."""
        if self.standalone:
            saved = self._stored[name]
            self._state = None if saved is None else {k: v.copy() for k, v in saved.items()}
        else:
            self.network.restore(name)
            self._read = dict(self._stored_reads[name])

    # ----------------------------------------------------------------------------------
    # Running
    def run(self, periods: int, values: dict | None = None, active=None) -> dict[str, RunRecord]:
        """Simulate ``periods`` environment periods (standalone: whole runs of ``periods_per_run``).

        Parameters
        ----------
        periods : int
            Periods to simulate (at least 1).
        values : dict, optional
            ``{(group, variable): array}`` written before the first period (e.g. the
            head's learning and exploration flags).
        active : iterable of parts, optional
            Only these parts compute (runtime mode; a standalone build always runs all of
            its parts, idle ones holding). Default: all.

        Returns
        -------
        dict of str to RunRecord
            Per environment part (by prefix): its transitions and finished episodes; per
            part with ``recorded`` monitors (by prefix): their new samples
            (:attr:`RunRecord.samples`). Empty for a loop without either.
        """
        if periods < 1:
            raise ValueError(f"periods: expected an integer >= 1, got {periods}")
        if not self.standalone:
            keep = set(map(id, self.parts if active is None else active))
            for part in self.parts:
                for obj in part.objects:
                    obj.active = id(part) in keep
        records = {
            e.prefix: RunRecord(obs=np.zeros((0, e.obs_dim)), next_obs=np.zeros((0, e.obs_dim)))
            for e in self.environments
        }
        recording = [part for part in self.parts if getattr(part, "recorded", None)]
        records.update({part.prefix: RunRecord() for part in recording})
        pending = dict(values or {})
        remaining = periods
        while remaining > 0:
            n = self.periods_per_run if self.standalone else min(remaining, self.periods_per_run)
            start = time.perf_counter()
            if self.standalone:
                self._standalone_run(pending)
            else:
                self._runtime_run(n, pending)
            wall_s = time.perf_counter() - start
            self.timings["run"].append(wall_s)
            for env in self.environments:
                part = self._collect(env)
                part.periods, part.wall_s = n, wall_s
                records[env.prefix].extend(part)
            for part in recording:
                samples = {name: self._samples(mon, var) for name, (mon, var) in part.recorded.items()}
                records[part.prefix].extend(RunRecord(periods=n, wall_s=wall_s, samples=samples))
            pending = {}
            remaining -= n
        return records

    def _run_inputs(self, values: dict) -> tuple[dict, dict]:
        """Values (run values of the parts, then ``values``) and table contents of the next run."""
        merged: dict = {}
        for part in self.parts:
            merged.update(part.run_values())
        merged.update(values)

        def starting(obj, name: str) -> np.ndarray:  # the tables see the run's start, values included
            return np.asarray(merged[(obj, name)]) if (obj, name) in merged else self.value(obj, name)

        tables: dict = {}
        for part in self.parts:
            tables.update(part.tables(starting, self.periods_per_run))
        return merged, tables

    def _runtime_run(self, n: int, values: dict) -> None:
        merged, tables = self._run_inputs(values)
        for (obj, name), value in merged.items():
            obj.variables[name].set_value(np.asarray(value))
        for table, content in tables.items():
            table.values[:] = content
        gc.collect()
        gc.freeze()  # Network.run's own gc.collect() calls then skip the long-lived objects
        self.network.run(n * self.period, namespace={})

    def build(self, directory=None, *, values: dict | None = None) -> dict:
        """Generate and compile the standalone project without running it.

        ``values`` (e.g. the head's mode) and the parts' first tables become the
        project's initial values, so running the binary as it is simulates the first
        ``periods_per_run`` periods from scratch. Returns a manifest of the result files
        (state variables and monitors): name, file, dtype and size, for reading the
        results back without Brian2 (:func:`read_standalone_results`).
        """
        if not self.standalone:
            raise ValueError("build: needs a standalone device (cpp_standalone or cuda_standalone)")
        from brian2 import get_device

        if directory is not None:
            self.build_dir = Path(directory)
        merged, tables = self._run_inputs(dict(values or {}))
        for (obj, name), value in merged.items():
            obj.variables[name].set_value(np.asarray(value))
        for table, content in tables.items():
            table.values[:] = content
        self._compile()
        device = get_device()
        entries = []
        monitors = [m for e in self.environments for m in (e.transitions, e.observed, e.episodes)]
        recorded = [(m, name) for m in monitors for name in ("i", *m.record_variables)]
        for obj, name in [*self.variables, *recorded]:
            var = obj.variables[name]
            entries.append(
                {
                    "name": self.state_key(obj, name),
                    "file": device.get_array_filename(var),
                    "dtype": np.dtype(var.dtype).str,
                    "dynamic": bool(getattr(var, "dynamic", False)),
                    "size": None if getattr(var, "dynamic", False) else int(var.size),
                }
            )
        return {"periods_per_run": self.periods_per_run, "period_s": float(self.period), "arrays": entries}

    def _compile(self) -> None:
        from brian2 import get_device

        from nmbrl_brian.build_cache import build_project

        start = time.perf_counter()
        self.network.run(self.periods_per_run * self.period, namespace={})
        self.last_build = build_project(get_device(), self._build_dir(), time.perf_counter() - start)
        self.timings["build"].append(time.perf_counter() - start)
        self._built = True

    def _standalone_run(self, values: dict) -> None:
        """One execution of the compiled project (generated and compiled on the first call).

        The state, the run's values and its tables go in as ``run_args``; before the first
        run (or after restoring that moment) there is no state yet and the binary starts
        from the initial values compiled into it.
        """
        from brian2 import Quantity, get_device

        device = get_device()
        if not self._built:
            self._compile()
        if type(device).__name__ == "CUDAStandaloneDevice":
            from nmbrl_brian.devices import gpu_visible

            if not gpu_visible():
                raise DeviceError(
                    "device: cuda_standalone found no GPU to run on (nvidia-smi -L lists none); the project "
                    f"is compiled in {self._build_dir()} (`nmbrl build --device cuda_standalone` compiles without one)"
                )
        merged, tables = self._run_inputs(values)
        run_values = {}
        if self._state is not None:
            run_values = {(obj, name): self._state[self.state_key(obj, name)] for obj, name in self.variables}
        run_values.update({key: np.asarray(value) for key, value in merged.items()})
        run_args = {
            getattr(obj, name): Quantity(value, dim=obj.variables[name].dim)  # raw arrays get their unit back
            for (obj, name), value in run_values.items()
        }
        for table, content in tables.items():
            run_args[table] = np.ascontiguousarray(content, dtype=float)
        run_standalone_binary(device, self._build_dir(), run_args)  # an error it reports fails the run
        self._delete_run_args(device)
        self._state = {
            self.state_key(obj, name): np.array(obj.variables[name].get_value())
            for obj, name in self.variables
        }

    def _build_dir(self) -> Path:
        if self.build_dir is None:
            from brian2 import get_device

            directory = getattr(get_device(), "build_options", {}).get("directory")
            if directory is None:
                raise ValueError(
                    "build_dir: give a standalone build folder (or select_device(..., build_dir))"
                )
            self.build_dir = Path(directory)
        return self.build_dir

    @staticmethod
    def _delete_run_args(device) -> None:
        """Remove the arrays this run wrote for ``run_args`` (every run writes new ones)."""
        static = Path(device.project_dir) / "static_arrays"
        for name in device.run_args_arrays:
            (static / name).unlink(missing_ok=True)
            (static / (name + ".lock")).unlink(missing_ok=True)
        device.run_args_arrays.clear()

    # ----------------------------------------------------------------------------------
    # Monitors
    def _new(self, monitor, names: list[str]) -> dict[str, np.ndarray]:
        """Events of ``monitor`` since the last read (standalone monitors restart every run), in
        time and then neuron order: brian2cuda records a step's events in the order its threads
        claimed them (``atomicAdd`` in ``threshold.cu``), not by neuron as brian2 does."""
        first = 0 if self.standalone else self._read.get(monitor.name, 0)
        data = {"i": np.asarray(monitor.i[:])[first:]}
        for name in names:
            data[name] = np.asarray(getattr(monitor, name)[:])[first:]
        if not self.standalone:
            self._read[monitor.name] = first + len(data["i"])
        order = np.lexsort((data["i"], np.asarray(monitor.t_[:])[first:]))
        return {name: values[order] for name, values in data.items()}

    def _samples(self, monitor, name: str) -> np.ndarray:
        """Samples of ``monitor``'s variable ``name`` since the last read, shape ``(samples, n)``."""
        values = np.asarray(getattr(monitor, name)).T  # (samples, recorded indices)
        first = 0 if self.standalone else self._read.get(monitor.name, 0)
        if not self.standalone:
            self._read[monitor.name] = len(values)
        return values[first:].copy()

    def _collect(self, env: EnvironmentPart) -> RunRecord:
        tr = self._new(env.transitions, ["action", "reward", "terminated", "truncated"])
        ob = self._new(env.observed, ["obs_prev", "obs"])
        ep = self._new(env.episodes, ["episode_return", "episode_steps"])
        d = env.obs_dim
        n = len(tr["i"])
        # Observation events come in blocks of d per transition, in neuron order within a period.
        obs_prev = ob["obs_prev"].reshape(n, d) if n else np.zeros((0, d))
        obs = ob["obs"].reshape(n, d) if n else np.zeros((0, d))
        return RunRecord(
            copy=tr["i"].astype(int),
            obs=obs_prev,
            action=tr["action"].astype(int),
            reward=tr["reward"].astype(float),
            next_obs=obs,
            terminated=tr["terminated"].astype(bool),
            truncated=tr["truncated"].astype(bool),
            episode_copy=ep["i"].astype(int),
            episode_return=ep["episode_return"].astype(float),
            episode_length=ep["episode_steps"].astype(int),
        )


def read_standalone_results(directory, manifest: dict) -> dict[str, np.ndarray]:
    """The arrays a standalone run of a built loop wrote to ``directory/results``, by name.

    Parameters
    ----------
    directory : str or Path
        The project folder (holding ``results/`` after the binary ran).
    manifest : dict
        What :meth:`ClosedLoop.build` returned.
    """
    results = Path(directory) / "results"
    out = {}
    for entry in manifest["arrays"]:
        path = results / entry["file"]
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no result (has the binary run? `make` in {directory})")
        data = np.fromfile(path, dtype=np.dtype(entry["dtype"]))
        if entry["size"] is not None and data.size != entry["size"]:
            raise ValueError(f"{path}: expected {entry['size']} values, found {data.size}")
        out[entry["name"]] = data
    return out
