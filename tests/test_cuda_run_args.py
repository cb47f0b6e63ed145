"""A cuda_standalone binary opens the run_args files under the names brian2 writes them.

brian2cuda 1.0b1 lowercases every ``run_args`` value in ``set_variable_by_name``
(``templates/objects.cu``), file names included, so the arrays of ``I_syn`` and ``L`` were
written as ``static_arrays/init_<group>_I_syn_<md5>.dat`` and looked for as
``..._i_syn_...``: on a GPU every re-run printed "file size -1" and kept the old values.
:func:`nmbrl_brian.devices.patch_cuda_run_args_template` serves the template without the
lowercasing. No GPU and no CUDA compile are needed here: the project is only generated, and
the C++ lines that turn the value into a file name are compiled with the host compiler and
run on the names the Python side produces.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess

import numpy as np
import pytest

from nmbrl_brian.devices import reset_device, select_device

pytestmark = [
    pytest.mark.standalone,
    pytest.mark.skipif(
        importlib.util.find_spec("brian2cuda") is None,
        reason="brian2cuda is not installed (the 'cuda' extra needs Python >= 3.12)",
    ),
]

SIGNATURE = "void brian::set_variable_by_name(std::string name, std::string s_value) {"
HARNESS = """
#include <algorithm>
#include <cctype>
#include <iostream>
#include <string>
std::string value_as_read(std::string name, std::string s_value) {
    size_t var_size;
    size_t data_size;
%s
    return s_value;
}
int main(int argc, char **argv) {
    for (int k = 1; k < argc; k++) std::cout << value_as_read("x", argv[k]) << std::endl;
    return 0;
}
"""


def _generate_project(directory, monkeypatch):
    """Generate (not compile) a cuda_standalone project with mixed-case variable names."""
    import brian2
    import brian2cuda.device

    select_device("cuda_standalone", build_dir=directory)
    if shutil.which("nvcc") is None:  # the makefile names nvcc; nothing here compiles with it
        monkeypatch.setattr(brian2cuda.device, "get_nvcc_path", lambda: "nvcc")
    group = brian2.NeuronGroup(
        5, "I_syn : 1\nL : 1\nv : 1", name="probe_recurrent", clock=brian2.Clock(1 * brian2.ms)
    )
    net = brian2.Network(group)
    net.run(1 * brian2.ms, namespace={})
    device = brian2.get_device()
    device.build(directory=str(directory), compile=False, run=False, with_output=False)
    return device, group


def _value_as_read(objects_cu: str, values: list[str], tmp_path) -> list[str]:
    """Compile the generated value handling of ``set_variable_by_name`` and run it on ``values``."""
    compiler = shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        pytest.skip("no host C++ compiler")
    start = objects_cu.index(SIGNATURE) + len(SIGNATURE)
    end = objects_cu.index("// non-dynamic arrays", start)
    body = objects_cu[start:end].replace("size_t var_size;", "").replace("size_t data_size;", "")
    source = tmp_path / "harness.cpp"
    source.write_text(HARNESS % body)
    binary = tmp_path / "harness"
    subprocess.run([compiler, "-std=c++17", "-o", str(binary), str(source)], check=True, timeout=120)
    out = subprocess.run([str(binary), *values], check=True, capture_output=True, text=True, timeout=30)
    return out.stdout.splitlines()


def test_run_args_files_are_read_under_the_names_they_are_written(tmp_path, monkeypatch):
    try:
        device, group = _generate_project(tmp_path / "cuda", monkeypatch)
        objects_cu = (tmp_path / "cuda" / "objects.cu").read_text()
        written = {}
        for name in ("I_syn", "L", "v"):
            key = getattr(group, name)
            arg, value, file_name, _ = device._prepare_variableview_run_arg(key, np.arange(5.0))
            assert file_name is not None and value.endswith(file_name), (arg, value, file_name)
            assert f'if (name == "{arg}")' in objects_cu, f"the binary has no branch for {arg}"
            written[arg] = value
    finally:
        reset_device()
    assert any(value != value.lower() for value in written.values()), "the probe needs mixed-case names"
    read = _value_as_read(objects_cu, list(written.values()), tmp_path)
    assert read == list(written.values()), (
        f"the binary would open {read}, but brian2 writes {list(written.values())}"
    )
    # booleans and numbers still come through as brian2's own binary takes them
    assert _value_as_read(objects_cu, ["True", "true", "False", "false", "-1.5e-05", "3"], tmp_path) == [
        "1",
        "1",
        "0",
        "0",
        "-1.5e-05",
        "3",
    ]


def test_the_installed_objects_template_is_served_without_lowercasing():
    """The fix must keep matching the installed brian2cuda: either it patches, or there is nothing to patch."""
    from brian2cuda.codeobject import CUDAStandaloneCodeObject

    from nmbrl_brian.devices import patch_cuda_templates

    templater = CUDAStandaloneCodeObject.templater
    applied = patch_cuda_templates(templater)
    served = templater.env.loader.get_source(templater.env, "objects.cu")[0]
    body = served[served.index("set_variable_by_name(std::string name") :]
    body = body[: body.index("// non-dynamic arrays")]
    assert "tolower" not in body, f"objects.cu still lowercases run_args values: {body}"
    assert (
        applied["synapses"]
        or "defaultclock.timestep" not in templater.env.loader.get_source(templater.env, "synapses.cu")[0]
    )
