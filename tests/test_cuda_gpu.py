"""The closed loop re-run with run_args on a GPU (cuda_standalone); skipped where no GPU is visible.

This is the check that needs a GPU: the binary must read every run_args file (an "Error
reading" on its error stream fails the run, see ``run_standalone_binary``), and two
executions of one build must continue each other like one long run. brian2cuda sums with
``atomicAdd`` in a run-dependent order, so values agree up to rounding, not bit for bit.
"""

from __future__ import annotations

import importlib.util
import shutil

import numpy as np
import pytest

from nmbrl_brian.devices import gpu_visible, reset_device, select_device
from nmbrl_brian.equations.actor_critic import AgentConfig
from nmbrl_brian.equations.eprop_neurons import SpikingNetworkConfig
from nmbrl_brian.equations.population_code import EncodingConfig
from nmbrl_brian.loop import ClosedLoop
from nmbrl_brian.parts import ActorCriticPart, CartPolePart

pytestmark = [
    pytest.mark.slow,
    pytest.mark.standalone,
    pytest.mark.skipif(importlib.util.find_spec("brian2cuda") is None, reason="brian2cuda is not installed"),
    pytest.mark.skipif(shutil.which("nvcc") is None, reason="no nvcc here"),
    pytest.mark.skipif(not gpu_visible(), reason="no GPU visible (nvidia-smi -L)"),
]


def build_loop(device: str, build_dir, periods_per_run: int) -> tuple[ActorCriticPart, ClosedLoop]:
    reset_device()
    select_device(device, build_dir=build_dir)
    network = SpikingNetworkConfig(
        n_recurrent=30, input_kind="current", steps_per_env_step=10, refractory_ms=0.0, learning_rate=0.01
    )
    agent = ActorCriticPart(
        4,
        2,
        agent=AgentConfig(kind="spiking_actor_critic", actor_lr=0.1, critic_lr=0.1),
        encoding=EncodingConfig(),
        network=network,
        seeds=list(range(1, 11)),  # 10 copies: 40 observation neurons, more than one warp per step
        periods_per_run=periods_per_run,
    )
    env = CartPolePart(
        period=agent.period, n_copies=10, seeds=list(range(11, 21)), resets_per_run=periods_per_run // 2 + 2
    )
    return agent, ClosedLoop(agent, env, build_dir=build_dir)


def weights(agent: ActorCriticPart, loop: ClosedLoop) -> dict[str, np.ndarray]:
    return {k: np.array(loop.value(obj, var)) for k, (obj, var) in agent.weight_variables().items()}


def test_cuda_rerun_with_run_args_continues_like_one_long_run(tmp_path):
    agent, loop = build_loop("cuda_standalone", tmp_path / "chunks", 100)
    first = loop.run(100)["cartpole"]
    second = loop.run(100)["cartpole"]  # fails with DeviceError if a run_args file is not read
    chunked = weights(agent, loop)
    agent, loop = build_loop("cuda_standalone", tmp_path / "long", 200)
    long = loop.run(200)["cartpole"]
    assert long.steps == first.steps + second.steps
    np.testing.assert_array_equal(long.copy, np.concatenate([first.copy, second.copy]))
    for name, values in weights(agent, loop).items():
        np.testing.assert_allclose(chunked[name], values, rtol=1e-6, atol=1e-9, err_msg=name)
    _, loop = build_loop("cpp_standalone", tmp_path / "cpp", 200)
    cpp = loop.run(200)["cartpole"]
    np.testing.assert_array_equal(cpp.copy, long.copy, err_msg="transitions in another (copy) order")
    np.testing.assert_allclose(cpp.next_obs, long.next_obs, rtol=1e-5, atol=1e-6)
    reset_device()
