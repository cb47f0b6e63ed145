"""The closed loop generates CUDA code for cuda_standalone (brian2cuda), and compiles it on request.

No GPU is needed to generate or compile (the project is built for compute capability 9.0,
H100/H200); running it needs one, which the test machines do not have. The nvcc compile of even
this small loop takes about 7 minutes on two cores, a quarter of the whole suite, so ``make test``
generates the project and checks it, and compiles it only with ``NMBRL_CUDA_COMPILE=1``
(``NMBRL_CUDA_COMPILE=1 .venv/bin/python -m pytest tests/test_cuda_build.py``).
"""

from __future__ import annotations

import importlib.util
import os
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


def test_closed_loop_generates_and_on_request_compiles_for_cuda(tmp_path, monkeypatch):
    compile_too = os.environ.get("NMBRL_CUDA_COMPILE") == "1"
    compiled = []
    if not compile_too:
        from nmbrl_brian import build_cache

        monkeypatch.setattr(
            build_cache, "compile_project", lambda device, directory: compiled.append(directory)
        )
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
    sources = {p.name for p in (tmp_path / "cuda").rglob("*.cu")}
    assert "main.cu" in sources and any(name.startswith("agent_syn_out") for name in sources), sorted(sources)
    if compile_too:
        assert (tmp_path / "cuda" / "main").is_file(), "nvcc should have linked the binary"
    else:
        assert [str(d) for d in compiled] == [str(tmp_path / "cuda")]  # the one compile, skipped
    names = {entry["name"] for entry in manifest["arrays"]}
    assert {"agent_syn_out.w", "agent_head.action", "cartpole_env.x"} <= names
    reset_device()
