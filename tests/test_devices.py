"""Device selection in one place, and the standalone network-operation guard."""

from __future__ import annotations

import importlib.util

import brian2
import pytest

from nmbrl_brian.devices import check_no_network_operations, reset_device, select_device
from nmbrl_brian.errors import DeviceError


def test_runtime_picks_a_codegen_target():
    sel = select_device("runtime")
    assert sel.codegen_target in ("cython", "numpy")
    assert brian2.prefs.codegen.target == sel.codegen_target, "prefs.codegen.target was not set"
    assert not sel.is_standalone


def test_unknown_device():
    with pytest.raises(DeviceError, match=r"^device: expected one of runtime"):
        select_device("tpu")


def test_standalone_needs_build_dir():
    with pytest.raises(DeviceError, match="build folder"):
        select_device("cpp_standalone")


@pytest.mark.skipif(importlib.util.find_spec("brian2cuda") is not None, reason="brian2cuda is installed")
def test_cuda_without_extra_is_a_clear_error(tmp_path):
    with pytest.raises(DeviceError, match=r"optional extra 'cuda'"):
        select_device("cuda_standalone", tmp_path / "build")


def test_network_operation_refused_in_standalone(tmp_path):
    sel = select_device("cpp_standalone", tmp_path / "build")
    assert sel.build_dir == tmp_path / "build"
    group = brian2.NeuronGroup(1, "v : 1", name="guard_group")
    op = brian2.NetworkOperation(lambda: None, dt=1 * brian2.ms, name="env_bridge")
    net = brian2.Network(group, op)
    with pytest.raises(DeviceError, match="env_bridge"):
        check_no_network_operations(net)
    reset_device()
    check_no_network_operations(net)  # runtime: allowed


def test_cuda_clock_template_is_served_fixed():
    """brian2cuda 1.0b1's synapses.cu reads defaultclock; the patched loader serves the fixed text."""
    from types import SimpleNamespace

    from jinja2 import DictLoader, Environment

    from nmbrl_brian.devices import CUDA_CLOCK_BUG, CUDA_CLOCK_FIX, patch_cuda_clock_template

    text = "before\n    " + CUDA_CLOCK_BUG + "\n    {\n    }\nafter {{ owner }}\n"
    env = Environment(loader=DictLoader({"synapses.cu": text, "objects.cu": "untouched"}))
    templater = SimpleNamespace(env=env, extension=".cu", templates=None)
    assert patch_cuda_clock_template(templater), "the buggy template should be patched"
    served = templater.templates.get_template("synapses").template_source
    assert CUDA_CLOCK_FIX in served and CUDA_CLOCK_BUG not in served, f"served template:\n{served}"
    assert env.get_template("objects.cu").render() == "untouched", (
        "other templates must come through unchanged"
    )
    assert patch_cuda_clock_template(templater), "patching twice should be harmless"
    clean = SimpleNamespace(env=Environment(loader=DictLoader({"synapses.cu": "fine"})), extension=".cu")
    assert not patch_cuda_clock_template(clean), "a template without the bug should be left alone"


@pytest.mark.standalone
def test_a_binary_error_on_its_error_stream_fails_the_run(tmp_path, monkeypatch):
    """A standalone binary that cannot read a run_args file says so and exits 0; the run must fail."""
    from brian2 import Network, NeuronGroup, get_device, ms

    from nmbrl_brian.devices import run_standalone_binary

    select_device("cpp_standalone", tmp_path / "build")
    group = NeuronGroup(3, "v : 1\nu : 1", name="probe")
    group.u = [7.0, 8.0, 9.0]  # initial values the binary loads from static_arrays/
    net = Network(group)
    net.run(1 * ms, namespace={})
    device = get_device()
    device.build(directory=str(tmp_path / "build"), compile=True, run=False, with_output=False)

    run_standalone_binary(device, tmp_path / "build", {group.v: [1.0, 2.0, 3.0]})
    assert list(group.v[:]) == [1.0, 2.0, 3.0], "a good run_args run did not set v"

    def missing_file(key, value):  # the binary is told to read a file that is not there
        return f"{key.group_name}.{key.name}", "static_arrays/no_such_file.dat", None, None

    monkeypatch.setattr(device, "_prepare_variableview_run_arg", missing_file)
    with pytest.raises(DeviceError, match=r"^device: the standalone binary in .* failed: Error reading"):
        run_standalone_binary(device, tmp_path / "build", {group.v: [4.0, 5.0, 6.0]})
    monkeypatch.undo()

    # errors on the binary's standard output (results/stdout.txt) fail the run too
    for static in (tmp_path / "build" / "static_arrays").glob("*probe_u*"):
        static.unlink()
    with pytest.raises(DeviceError, match=r"failed: Error opening static array"):
        run_standalone_binary(device, tmp_path / "build", {group.v: [1.0, 2.0, 3.0]})
