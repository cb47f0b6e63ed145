"""The closed loop under cpp_standalone: one build, re-run with run_args; the same numbers as runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nmbrl_brian.devices import reset_device, select_device
from nmbrl_brian.equations.actor_critic import AgentConfig
from nmbrl_brian.equations.eprop_neurons import SpikingNetworkConfig
from nmbrl_brian.equations.population_code import EncodingConfig
from nmbrl_brian.loop import ClosedLoop
from nmbrl_brian.parts import ActorCriticPart, CartPolePart

pytestmark = [pytest.mark.standalone, pytest.mark.slow]

CONFIG = Path(__file__).resolve().parents[1] / "nmbrl_brian" / "configs" / "cartpole_snn.toml"

NETWORK = SpikingNetworkConfig(
    n_recurrent=30,
    input_kind="current",
    steps_per_env_step=10,
    tau_out_ms=10.0,
    refractory_ms=0.0,
    input_weight_scale=0.57,
    recurrent_weight_scale=0.3,
    readout_weight_scale=0.0,
    learning_rate=0.01,
)
AGENT = AgentConfig(kind="spiking_actor_critic", actor_lr=0.1, critic_lr=0.1)


def build_loop(device: str, build_dir, periods_per_run: int) -> tuple[ActorCriticPart, ClosedLoop]:
    reset_device()
    select_device(device, build_dir=build_dir)
    agent = ActorCriticPart(
        4,
        2,
        agent=AGENT,
        encoding=EncodingConfig(),
        network=NETWORK,
        seeds=[1],
        periods_per_run=periods_per_run,
    )
    env = CartPolePart(period=agent.period, seeds=[3], resets_per_run=periods_per_run // 2 + 2)
    return agent, ClosedLoop(agent, env, build_dir=build_dir)


def weights(agent: ActorCriticPart, loop: ClosedLoop) -> dict[str, np.ndarray]:
    return {k: np.array(loop.value(obj, var)) for k, (obj, var) in agent.weight_variables().items()}


def test_rerun_with_run_args_equals_one_long_run_and_runtime(tmp_path):
    # Two executions of one build of 150 periods ...
    agent, loop = build_loop("cpp_standalone", tmp_path / "chunks", 150)
    first = loop.run(150)["cartpole"]
    second = loop.run(150)["cartpole"]
    assert len(loop.timings["build"]) == 1, "the project must be built once"
    chunked = weights(agent, loop)
    steps = first.steps + second.steps
    returns = np.concatenate([first.episode_return, second.episode_return])
    # ... equal one execution of a build of 300 periods ...
    agent, loop = build_loop("cpp_standalone", tmp_path / "long", 300)
    long = loop.run(300)["cartpole"]
    assert long.steps == steps and np.array_equal(long.episode_return, returns)
    for name, w in weights(agent, loop).items():
        np.testing.assert_array_equal(chunked[name], w, err_msg=f"{name}: re-run chunks vs one long run")
    # Kept weights written between runs (keep_best_in_dream) land in the state the next run starts from.
    obj, var = agent.weight_variables()["w_out"]
    loop.write({(obj, var): 0.25})
    np.testing.assert_array_equal(loop.value(obj, var), np.full_like(chunked["w_out"], 0.25))
    # ... and the same 300 periods in runtime mode (cython), up to compiler rounding.
    agent, loop = build_loop("runtime", None, 300)
    runtime = loop.run(300)["cartpole"]
    assert runtime.steps == steps and np.array_equal(
        runtime.action, np.concatenate([first.action, second.action])
    )
    for name, w in weights(agent, loop).items():
        np.testing.assert_allclose(
            chunked[name], w, rtol=0, atol=1e-9, err_msg=f"{name}: standalone vs runtime"
        )
    reset_device()


def test_nmbrl_build_make_and_read(tmp_path):
    """`nmbrl build` writes a project that `make` alone compiles and runs, and `nmbrl read` reads back."""
    import subprocess
    import sys

    out = tmp_path / "project"
    nmbrl = [sys.executable, "-m", "nmbrl_brian"]
    small = ["--set", "network.n_recurrent=30", "--set", "periods_per_run=300"]
    proc = subprocess.run(
        [*nmbrl, "build", "--config", str(CONFIG), *small, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (out / "README.md").is_file() and (out / "nmbrl_build.json").is_file()
    made = subprocess.run(["make"], cwd=out, capture_output=True, text=True, timeout=900)
    assert made.returncode == 0, made.stderr[-2000:]
    proc = subprocess.run([*nmbrl, "read", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = dict(item.split("=") for item in proc.stdout.split())
    assert int(summary["env_steps"]) > 250, (
        "300 periods take about as many steps (one period per episode end)"
    )
    assert int(summary["episodes"]) >= 1
    episodes = np.loadtxt(out / "episodes.csv", delimiter=",", skiprows=1, ndmin=2)
    assert len(episodes) == int(summary["episodes"]) and np.all(episodes[:, 1] == episodes[:, 2])
    weights = np.load(out / "weights.npz")
    assert weights["w_out"].shape == (30 * 3,) and np.any(weights["w_out"] != 0), (
        "the readouts should have learned"
    )


def test_nmbrl_build_refuses_bad_input(tmp_path):
    import subprocess
    import sys

    nmbrl = [sys.executable, "-m", "nmbrl_brian", "build", "--config", str(CONFIG)]
    proc = subprocess.run(
        [*nmbrl, "--device", "runtime", "--out", str(tmp_path / "x")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "--device: expected cpp_standalone or cuda_standalone" in proc.stderr
    assert not (tmp_path / "x").exists()
    (tmp_path / "taken").mkdir()
    proc = subprocess.run(
        [*nmbrl, "--out", str(tmp_path / "taken")], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 2 and "--out: expected a folder that does not exist yet" in proc.stderr, (
        proc.stderr
    )
