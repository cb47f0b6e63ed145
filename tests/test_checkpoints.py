"""Data-only checkpoints: round trips, refused code payloads, damaged files, atomic writes, replay."""

from __future__ import annotations

import io
import json
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from nmbrl_brian.checkpoints import (
    FORMAT,
    FORMAT_VERSION,
    HEADER,
    read_checkpoint,
    read_checkpoint_meta,
    write_checkpoint,
)
from nmbrl_brian.config import load_config
from nmbrl_brian.envs import EnvironmentWrapper
from nmbrl_brian.envs.env_loop import EnvLoop
from nmbrl_brian.errors import CheckpointError
from nmbrl_brian.training.actor_critic_trainer import CHECKPOINT_FILE
from nmbrl_brian.training.run import resume_training, run_training

ROOT = Path(__file__).resolve().parents[1]
DENSE = ROOT / "nmbrl_brian" / "configs" / "cartpole_dense.toml"
TINY = ["total_env_steps=600", "eval_every=300", "eval_episodes=2", "checkpoint_every=300"]


def _same(a, b, where="tree"):
    """Equal values of equal types, recursively (arrays: same dtype, shape and bits)."""
    assert type(a) is type(b), f"{where}: type {type(b).__name__} came back for {type(a).__name__}"
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, (
            f"{where}: {b.dtype}{b.shape} for {a.dtype}{a.shape}"
        )
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, dict):
        assert list(a) == list(b), f"{where}: keys {list(b)} for {list(a)}"
        for k in a:
            _same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{where}: length {len(b)} for {len(a)}"
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b), f"{where}: {b} for nan"
    else:
        assert a == b, f"{where}: {b!r} for {a!r}"


def test_nested_data_round_trips_with_types(tmp_path):
    rng = np.random.default_rng(0)
    tree = {
        # the shape of SNNWorldModel.state_dict(): weights, tuples of arrays, a log of dicts
        "weights": {"w_in": rng.normal(size=(7, 3)), "b_out": np.zeros(2, dtype=np.float32)},
        "delta_scaler": (np.arange(4.0), np.ones(4)),
        "obs_low": (-2.4, -3.0, -0.21, -3.5),
        "training_log": [{"epoch": 0, "nmse": 0.25, "note": None}],
        # RNG states: big Python ints, the legacy MT19937 tuple, NumPy scalars
        "rng": np.random.default_rng(3).bit_generator.state,
        "legacy_rng": np.random.RandomState(5).get_state(),
        "scalars": [np.float64(1.5), np.int64(-3), np.bool_(True), np.float32(0.25)],
        "floats": [float("nan"), float("inf"), -float("inf"), 1e-310, 0.1 + 0.2],
        "ints_as_keys": {1: "a", (2, 3): [True, False]},
        "empty": {"list": [], "tuple": (), "dict": {}, "array": np.zeros((0, 3), dtype=np.int16)},
        "strings": np.array(["ab", "cde"]),
        "zero_d": np.array(2.5),
        "blob": b"\x00\x01raw",
        "tag_lookalike": {"__array__": "a0"},  # a user key that looks like an encoding tag
    }
    path = write_checkpoint(tmp_path / "c.npz", tree, kind="test", meta={"env_steps": 7})
    _same(tree, read_checkpoint(path, kind="test"))
    assert read_checkpoint_meta(path) == {"env_steps": 7}, "meta should be readable on its own"


@pytest.mark.parametrize(
    "value, what",
    [(np.array([object()], dtype=object), "object"), ({"x": Path("p")}, "PosixPath"), ({1.5, 2.5}, "set")],
)
def test_unsupported_values_are_refused_and_nothing_is_written(tmp_path, value, what):
    with pytest.raises(TypeError, match=what):
        write_checkpoint(tmp_path / "c.npz", {"state": value}, kind="test")
    assert list(tmp_path.iterdir()) == [], "a refused checkpoint must leave no file (nor a temporary one)"


def test_interrupted_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = write_checkpoint(tmp_path / "c.npz", {"step": 1}, kind="test")

    def half_written(f, **arrays):
        f.write(b"PK\x03\x04 partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", half_written)
    with pytest.raises(KeyboardInterrupt):
        write_checkpoint(path, {"step": 2}, kind="test")
    monkeypatch.undo()
    assert read_checkpoint(path) == {"step": 1}, "the previous checkpoint should survive an interrupted write"
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"], "the temporary file should be removed"


def _npz(members: dict[str, np.ndarray], allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, array in members.items():
            with z.open(name + ".npy", "w") as f:
                np.lib.format.write_array(f, array, allow_pickle=allow_pickle)
    return buf.getvalue()


def _header(**changes) -> np.ndarray:
    header = {"format": FORMAT, "version": FORMAT_VERSION, "kind": "test", "meta": {}, "tree": 1}
    header.update(changes)
    return np.array(json.dumps(header))


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"", "not an nmbrl checkpoint"),
        (b"just some text\n", "not an nmbrl checkpoint"),
        (pickle.dumps({"agent": 1}), "not an nmbrl checkpoint"),
        (_npz({"a0": np.zeros(3)}), "no header"),
        (_npz({HEADER: np.array(json.dumps({"format": "other"}))}), "unknown header"),
        (_npz({HEADER: _header(version=FORMAT_VERSION + 1)}), f"version {FORMAT_VERSION + 1}"),
        (_npz({HEADER: _header(kind="agent")}), "expected 'test'"),
        (_npz({HEADER: _header(tree={"__array__": "a7"})}), "missing array"),
        (_npz({HEADER: _header(tree={"__code__": "x"})}), "unknown tree node"),
        (_npz({HEADER: np.array('{"format": "nmbrl-checkpoint", "version": NaN}')}), "NaN"),
        (_npz({HEADER: np.zeros(3)}), "not text"),
    ],
)
def test_damaged_or_foreign_files_give_one_line(tmp_path, content, reason):
    path = tmp_path / "c.npz"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(path, kind="test")
    msg = str(info.value)
    assert reason in msg and str(path) in msg, f"expected {reason!r} and the path in {msg!r}"
    assert "\n" not in msg, f"the error should be one line: {msg!r}"


# ------------------------------------------------------------------------------------------
# Code payloads: a checkpoint handed over by someone else must not run anything


class _Payload:
    """Unpickling this touches ``marker``: the stand-in for arbitrary code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _run_folder(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    load_config(DENSE, TINY).to_json(run / "config.json")
    return run


def _resume(run: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "nmbrl_brian", "run", "--resume", str(run), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=run.parent, check=False)


def _pickle_as_checkpoint(run: Path, marker: Path) -> None:
    (run / CHECKPOINT_FILE).write_bytes(pickle.dumps({"agent": _Payload(marker)}))


def _object_array_in_npz(run: Path, marker: Path) -> None:
    payload = np.array([_Payload(marker)], dtype=object)
    tree = {"__dict__": {"agent": {"__array__": "a0"}}}
    data = _npz({HEADER: _header(kind="actor_critic_run", tree=tree), "a0": payload}, allow_pickle=True)
    (run / CHECKPOINT_FILE).write_bytes(data)


def _legacy_pickle_only(run: Path, marker: Path) -> None:
    (run / "checkpoint.pkl").write_bytes(pickle.dumps({"loop": _Payload(marker)}))


@pytest.mark.parametrize("plant", [_pickle_as_checkpoint, _object_array_in_npz, _legacy_pickle_only])
def test_checkpoint_with_a_code_payload_is_refused_and_does_not_run(tmp_path, plant):
    run = _run_folder(tmp_path)
    marker = tmp_path / "payload_ran"
    plant(run, marker)
    pickle.loads(pickle.dumps(_Payload(tmp_path / "control")))  # the payload does run when unpickled
    assert (tmp_path / "control").exists(), "test setup: the payload should work under pickle"
    before = sorted(p.name for p in run.iterdir())
    proc = _resume(run)
    err = proc.stderr.strip()
    assert proc.returncode == 2, f"a payload checkpoint should exit 2, got {proc.returncode}: {err}"
    assert len(err.splitlines()) == 1 and "checkpoint" in err, (
        f"expected one line about the checkpoint: {err!r}"
    )
    assert not marker.exists(), "the payload in the checkpoint ran"
    assert sorted(p.name for p in run.iterdir()) == before, (
        "a refused resume must not write into the run folder"
    )


def test_truncated_checkpoint_exits_2_with_one_line(tmp_path):
    run = run_training(load_config(DENSE, TINY), out=tmp_path / "out")
    path = run / CHECKPOINT_FILE
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    metrics = (run / "metrics.csv").read_bytes()
    proc = _resume(run)
    err = proc.stderr.strip()
    assert proc.returncode == 2, f"a truncated checkpoint should exit 2, got {proc.returncode}: {err}"
    assert len(err.splitlines()) == 1, f"expected one line, got {err!r}"
    assert str(path) in err and "truncated" in err, f"the line should name the file and the problem: {err!r}"
    assert (run / "metrics.csv").read_bytes() == metrics, "a failed resume must not touch metrics.csv"


def test_checkpoint_of_another_config_is_refused(tmp_path):
    a = run_training(load_config(DENSE, TINY, seed=1), out=tmp_path / "a")
    b = run_training(load_config(DENSE, TINY, seed=2), out=tmp_path / "b")
    (b / CHECKPOINT_FILE).write_bytes((a / CHECKPOINT_FILE).read_bytes())
    with pytest.raises(CheckpointError, match=r"another config \(seed differs"):
        resume_training(b)


def test_agent_save_refuses_other_kinds(tmp_path):
    from nmbrl_brian.training.run import build_agent

    run = run_training(load_config(DENSE, TINY), out=tmp_path / "out")
    env = EnvironmentWrapper()
    agent = build_agent(load_config(DENSE, TINY), env.observation_space, env.action_space)
    with pytest.raises(CheckpointError, match="holds a 'actor_critic_run' checkpoint, expected 'agent'"):
        agent.load(run / CHECKPOINT_FILE)


# ------------------------------------------------------------------------------------------
# The environment loop as data: reset seed + actions replayed


def _steps(loop: EnvLoop, actions) -> list[np.ndarray]:
    return [loop.step(a).next_obs for a in actions]


def test_env_loop_state_replays_the_current_episode():
    rng = np.random.default_rng(0)
    loop = EnvLoop(EnvironmentWrapper("CartPole-v1"), seed=4)
    _steps(loop, rng.integers(2, size=137))
    assert loop.episode_length > 0, "test setup: the state should be mid-episode"
    state = loop.state_dict()
    restored = EnvLoop(EnvironmentWrapper("CartPole-v1"), seed=4)
    restored.load_state_dict(state)
    for key in ("env_steps", "episodes", "episode_return", "episode_length", "at_episode_start"):
        assert getattr(restored, key) == getattr(loop, key), f"{key} not restored"
    later = rng.integers(2, size=300)  # crosses episode ends and the time limit bookkeeping
    for x, y in zip(_steps(loop, later), _steps(restored, later)):
        np.testing.assert_array_equal(x, y, err_msg="the restored loop should continue identically")

    state["obs"] = state["obs"] + 1.0
    with pytest.raises(ValueError, match="did not reproduce the saved observation"):
        EnvLoop(EnvironmentWrapper("CartPole-v1"), seed=4).load_state_dict(state)
