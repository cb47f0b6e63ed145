"""The closed loop generates and compiles for cuda_standalone (brian2cuda) wherever nvcc is present.

No GPU is needed to compile (the project is built for compute capability 9.0, H100/H200);
running it needs one, which the test machines do not have. The CUDA compile of the whole
loop takes a few minutes on two cores.
"""

from __future__ import annotations

import importlib.util
import shutil

import pytest

from nmbrl_brian.devices import reset_device, select_device
from nmbrl_brian.equations.actor_critic import AgentConfig
from nmbrl_brian.equations.eprop_neurons import SpikingNetworkConfig
from nmbrl_brian.equations.population_code import EncodingConfig
from nmbrl_brian.loop import ClosedLoop
from nmbrl_brian.parts import ActorCriticPart, CartPolePart

pytestmark = [
    pytest.mark.slow,
    pytest.mark.standalone,
    pytest.mark.skipif(shutil.which("nvcc") is None, reason="no nvcc here: CUDA code cannot be compiled"),
    pytest.mark.skipif(
        importlib.util.find_spec("brian2cuda") is None,
        reason="brian2cuda is not installed (the 'cuda' extra needs Python >= 3.12)",
    ),
]


def test_closed_loop_compiles_for_cuda(tmp_path):
    reset_device()
    select_device("cuda_standalone", build_dir=tmp_path / "cuda")
    network = SpikingNetworkConfig(
        n_recurrent=20,
        input_kind="current",
        steps_per_env_step=10,
        refractory_ms=0.0,
        readout_weight_scale=0.0,
    )
    agent = ActorCriticPart(
        4,
        2,
        agent=AgentConfig(kind="spiking_actor_critic"),
        encoding=EncodingConfig(),
        network=network,
        seeds=[0],
        periods_per_run=20,
    )
    env = CartPolePart(period=agent.period, seeds=[0], resets_per_run=12)
    loop = ClosedLoop(agent, env, build_dir=tmp_path / "cuda")
    manifest = loop.build()
    assert (tmp_path / "cuda" / "main").is_file(), "nvcc should have linked the binary"
    names = {entry["name"] for entry in manifest["arrays"]}
    assert {"agent_syn_out.w", "agent_head.action", "cartpole_env.x"} <= names
    reset_device()
