"""The standalone build cache: a second build of the same code copies the binary instead of compiling."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from nmbrl_brian import build_cache
from nmbrl_brian.build_cache import build_key, cache_root, canonical_main, compiler_settings
from nmbrl_brian.devices import reset_device, select_device
from nmbrl_brian.equations.actor_critic import AgentConfig
from nmbrl_brian.equations.eprop_neurons import SpikingNetworkConfig
from nmbrl_brian.equations.population_code import EncodingConfig
from nmbrl_brian.loop import ClosedLoop
from nmbrl_brian.parts import ActorCriticPart, CartPolePart

PERIODS = 20


def test_cache_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("NMBRL_BUILD_CACHE", raising=False)
    assert cache_root() == Path.home() / ".cache" / "nmbrl_brian" / "builds"
    for off in ("", "off", "OFF", " off "):
        monkeypatch.setenv("NMBRL_BUILD_CACHE", off)
        assert cache_root() is None, f"NMBRL_BUILD_CACHE={off!r} should switch the cache off"
    monkeypatch.setenv("NMBRL_BUILD_CACHE", str(tmp_path))
    assert cache_root() == tmp_path


def test_canonical_main_sorts_only_the_clock_lines():
    head = "int main() {\n        _array_g_v[0] = 2.0;\n"
    tail = (
        "        _run_x();\n        net.add(&b_clock, NULL);\n        net.add(&a_clock, NULL);\n"
        "        net.add(&b_clock, _run_random_number_buffer);\n        net.add(&a_clock, _run_random_number_buffer);\n"
        "        net.add(&b_clock, _run_b);\n        net.add(&a_clock, _run_a);\n}\n"
    )
    one = "        _array_b_clock_timestep[0] = 0;\n        _array_b_clock_t[0] = 0.0;\n"
    two = "        _array_a_clock_timestep[0] = 0;\n        _array_a_clock_t[0] = 0.0;\n"
    first, second = head + one + two + tail, head + two + one + tail
    assert canonical_main(first) == canonical_main(second), (
        "clock starts in set order must not change the key"
    )
    canonical = canonical_main(first)
    assert canonical.index("_array_a_clock_timestep") < canonical.index("_array_b_clock_timestep")
    assert canonical.index("add(&a_clock, NULL") < canonical.index("add(&b_clock, NULL")
    assert canonical.index("add(&a_clock, _run_random") < canonical.index("add(&b_clock, _run_random")
    assert canonical.index("add(&b_clock, _run_b") < canonical.index("add(&a_clock, _run_a"), (
        "code objects are added in brian2's order, never sorted"
    )
    assert sorted(canonical.splitlines()) == sorted(first.splitlines()), "no line may be lost or changed"
    assert canonical.startswith(head), "other statements keep their order"
    swapped = "        _array_g_v[0] = 1.0;\n        _array_g_v[0] = 2.0;\n"
    assert canonical_main(swapped) == swapped, "assignments other than clock starts are never reordered"


def test_cuda_monitor_template_is_served_sorted():
    """brian2cuda's spikemonitor.cu takes recorded variables in set order; the patched loader sorts them."""
    from types import SimpleNamespace

    from jinja2 import DictLoader, Environment

    from nmbrl_brian.build_cache import CUDA_MONITOR_SORTING, sort_cuda_monitor_variables

    (loop, _), (first, _) = CUDA_MONITOR_SORTING
    text = first + "size {{ var }};\n{% for varname, var " + loop + "{{ varname }}={{ var }};{% endfor %}\n"
    env = Environment(loader=DictLoader({"spikemonitor.cu": text, "objects.cu": "untouched"}))
    templater = SimpleNamespace(env=env, extension=".cu", templates=None)
    assert sort_cuda_monitor_variables(templater), "the set-ordered template should be patched"
    variables = {"t": 1, "i": 2, "episode_return": 3}
    rendered = env.get_template("spikemonitor.cu").render(record_variables=variables)
    assert rendered.rstrip() == "size 3;\nepisode_return=3;i=2;t=1;", rendered
    assert env.get_template("objects.cu").render() == "untouched"
    assert sort_cuda_monitor_variables(templater), "patching twice should be harmless"
    if importlib.util.find_spec("brian2cuda") is not None:  # the installed template has the pattern
        from brian2cuda.codeobject import CUDAStandaloneCodeObject

        assert sort_cuda_monitor_variables(CUDAStandaloneCodeObject.templater)


def test_key_reads_the_code_not_the_data(tmp_path):
    (tmp_path / "static_arrays").mkdir()
    (tmp_path / "results").mkdir()
    (tmp_path / "code_objects").mkdir()
    (tmp_path / "main.cpp").write_text("int main() {}\n")
    (tmp_path / "code_objects" / "x.h").write_text("#define N 3\n")
    (tmp_path / "makefile").write_text("all: main\n")
    (tmp_path / "static_arrays" / "w").write_bytes(b"\x00" * 8)
    settings = {"device": "cpp_standalone"}
    key = build_key(tmp_path, settings)
    (tmp_path / "static_arrays" / "w").write_bytes(b"\x01" * 8)
    (tmp_path / "results" / "out").write_bytes(b"\x02")
    (tmp_path / "main.o").write_bytes(b"object")
    assert build_key(tmp_path, settings) == key, "data, results and objects are not part of the key"
    (tmp_path / "code_objects" / "x.h").write_text("#define N 4\n")
    assert build_key(tmp_path, settings) != key, "a changed header must change the key"
    (tmp_path / "code_objects" / "x.h").write_text("#define N 3\n")
    (tmp_path / "makefile").write_text("all: main\nCXXFLAGS = -O0\n")
    assert build_key(tmp_path, settings) != key, "a changed makefile must change the key"
    (tmp_path / "makefile").write_text("all: main\n")
    assert build_key(tmp_path, {"device": "cuda_standalone"}) != key, "the settings are part of the key"
    assert build_key(tmp_path, settings) == key


def _network(n_recurrent: int, input_scale: float) -> SpikingNetworkConfig:
    return SpikingNetworkConfig(
        n_recurrent=n_recurrent,
        input_kind="current",
        steps_per_env_step=10,
        tau_out_ms=10.0,
        refractory_ms=0.0,
        input_weight_scale=input_scale,
        recurrent_weight_scale=0.3,
        readout_weight_scale=0.0,
        learning_rate=0.01,
    )


def _run(build_dir: Path, n_recurrent: int = 5, input_scale: float = 0.57) -> dict:
    """Build a small closed loop in ``build_dir``, run it once; its build record and results."""
    reset_device()
    select_device("cpp_standalone", build_dir=build_dir)
    agent = ActorCriticPart(
        4,
        2,
        agent=AgentConfig(kind="spiking_actor_critic", actor_lr=0.1, critic_lr=0.1),
        encoding=EncodingConfig(),
        network=_network(n_recurrent, input_scale),
        seeds=[1],
        periods_per_run=PERIODS,
    )
    env = CartPolePart(period=agent.period, seeds=[3], resets_per_run=PERIODS // 2 + 2)
    loop = ClosedLoop(agent, env, build_dir=build_dir)
    record = loop.run(PERIODS)["cartpole"]
    weights = {k: np.array(loop.value(obj, var)) for k, (obj, var) in agent.weight_variables().items()}
    return {"build": loop.last_build, "action": record.action, "obs": record.obs, "weights": weights}


class Compiled(Exception):
    """Raised by the stand-in compiler: the build reached the compiler."""


@pytest.mark.standalone
@pytest.mark.slow
def test_second_build_is_a_cache_hit_and_runs_the_same(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("NMBRL_BUILD_CACHE", str(cache))
    first = _run(tmp_path / "first")
    key = first["build"].key
    assert not first["build"].cache_hit and first["build"].compile_s > 0
    assert (cache / "cpp_standalone" / key / "main").is_file(), "the compiled binary must be stored"
    assert not list((cache / "cpp_standalone").glob(".*")), "no temporary folder may be left behind"
    recorded = json.loads((tmp_path / "first" / "build.json").read_text())
    assert recorded[-1]["cache_hit"] is False and recorded[-1]["key"] == key

    compiles: list[str] = []

    def no_compiler(device, directory):
        compiles.append(str(directory))
        raise Compiled(directory)

    monkeypatch.setattr(build_cache, "compile_project", no_compiler)
    second = _run(tmp_path / "second")
    assert compiles == [], "a cache hit must not compile"
    assert second["build"].cache_hit and second["build"].key == key and second["build"].compile_s == 0
    assert json.loads((tmp_path / "second" / "build.json").read_text())[-1]["cache_hit"] is True
    np.testing.assert_array_equal(second["action"], first["action"])
    np.testing.assert_array_equal(second["obs"], first["obs"])
    for name, w in first["weights"].items():
        np.testing.assert_array_equal(second["weights"][name], w, err_msg=name)

    # other initial weights are data: the same binary, and the new values are read (not the cached run's)
    scaled = _run(tmp_path / "scaled", input_scale=1.5)
    assert compiles == [] and scaled["build"].cache_hit and scaled["build"].key == key
    assert any(not np.array_equal(scaled["weights"][n], w) for n, w in first["weights"].items()), (
        "other initial weights must give other weights after the run"
    )

    # a bigger network is other code: a miss
    with pytest.raises(Compiled):
        _run(tmp_path / "bigger", n_recurrent=6)
    assert compiles == [str(tmp_path / "bigger")]
    from brian2 import get_device

    assert build_key(tmp_path / "bigger", compiler_settings(get_device())) != key

    # the cache switched off always compiles, even code it holds
    monkeypatch.setenv("NMBRL_BUILD_CACHE", "off")
    with pytest.raises(Compiled):
        _run(tmp_path / "off")
    assert compiles[-1] == str(tmp_path / "off") and len(compiles) == 2
    reset_device()


def test_build_time_is_not_training_wall_time(tmp_path, monkeypatch):
    """A build inside a training chunk (a resumed standalone run's first) is left out of ``wall_s``."""
    from types import SimpleNamespace

    import pandas as pd

    from nmbrl_brian.config import load_config
    from nmbrl_brian.training import actor_critic_trainer
    from nmbrl_brian.training.phases import Schedule
    from nmbrl_brian.training.run import run_training

    clock = [0.0]
    monkeypatch.setattr(actor_critic_trainer, "time", SimpleNamespace(perf_counter=lambda: clock[0]))
    train = Schedule.train

    def train_with_a_build(self, *args, **kwargs):  # 1 s of training and a 100 s build in every chunk
        train(self, *args, **kwargs)
        clock[0] += 101.0
        monkeypatch.setattr(build_cache, "_build_seconds_total", build_cache.total_build_seconds() + 100.0)

    monkeypatch.setattr(Schedule, "train", train_with_a_build)
    config = load_config(
        Path(__file__).resolve().parents[1] / "nmbrl_brian" / "configs" / "cartpole_dense.toml",
        ["total_env_steps=200", "eval_every=100", "eval_episodes=1", "checkpoint_every=100"],
    )
    metrics = pd.read_csv(run_training(config, out=tmp_path) / "metrics.csv")
    current = metrics[metrics["policy"] == "current"]
    assert current["wall_s"].tolist() == [0.0, 1.0, 2.0], "two chunks of 1 s training, builds left out"


@pytest.mark.standalone
@pytest.mark.slow
def test_a_resumed_standalone_run_hits_the_cache_and_continues_exactly(tmp_path, monkeypatch):
    """A second run of a config and its resumed run copy the binary; the resumed run ends as an uninterrupted one."""
    import pandas as pd

    from nmbrl_brian.config import load_config
    from nmbrl_brian.training.run import resume_training, run_training

    monkeypatch.setenv("NMBRL_BUILD_CACHE", str(tmp_path / "cache"))
    small = [
        "device=cpp_standalone",
        "network.n_recurrent=5",
        "eval_every=100",
        "eval_episodes=2",
        "checkpoint_every=100",
        "periods_per_run=100",
    ]
    snn = Path(__file__).resolve().parents[1] / "nmbrl_brian" / "configs" / "cartpole_snn.toml"
    try:
        whole = run_training(load_config(snn, [*small, "total_env_steps=200"]), out=tmp_path / "whole")
        compiled = json.loads((whole / "brian_build" / "build.json").read_text())
        assert [b["cache_hit"] for b in compiled] == [False]

        def no_compiler(device, directory):
            raise Compiled(directory)

        monkeypatch.setattr(build_cache, "compile_project", no_compiler)
        parts = run_training(load_config(snn, [*small, "total_env_steps=100"]), out=tmp_path / "parts")
        resume_training(parts, overrides=["total_env_steps=200"])
    finally:
        reset_device()
    builds = json.loads((parts / "brian_build" / "build.json").read_text())
    assert [b["cache_hit"] for b in builds] == [True, True], "the run and its resumption copy the binary"
    assert {b["key"] for b in builds} == {compiled[0]["key"]}
    a = pd.read_csv(whole / "metrics.csv").drop(columns="wall_s")
    b = pd.read_csv(parts / "metrics.csv").drop(columns="wall_s")
    assert a["env_steps"].max() >= 200 and len(a) >= 3, a
    pd.testing.assert_frame_equal(a, b, obj="metrics of a standalone run resumed after 100 steps")
