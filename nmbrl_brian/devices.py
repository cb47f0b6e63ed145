"""Choosing the Brian2 target, in one place.

Three devices are supported:

``runtime``
    Brian2 runtime mode with cython code generation, falling back to numpy with a
    warning when no working compiler is found. Network operations (Python callbacks
    such as the gymnasium coupling) work here.
``cpp_standalone``
    The whole simulation is generated as a C++ project in its own build folder and
    compiled. Network operations are silently dropped by Brian2, so
    :func:`check_no_network_operations` refuses them with a clear error.
``cuda_standalone``
    The same through brian2cuda (the optional extra ``cuda``). Code can be generated
    and compiled without a GPU (:func:`configure_cuda_without_gpu`), but runs only
    where a GPU exists.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

from nmbrl_brian.errors import DeviceError

DEVICES = ("runtime", "cpp_standalone", "cuda_standalone")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeviceSelection:
    """What :func:`select_device` set up."""

    name: str
    """One of :data:`DEVICES`."""
    codegen_target: str | None
    """``"cython"`` or ``"numpy"`` in runtime mode, None for standalone devices."""
    build_dir: Path | None
    """The standalone project folder, None in runtime mode."""

    @property
    def is_standalone(self) -> bool:
        """True for cpp_standalone and cuda_standalone."""
        return self.name != "runtime"


def runtime_codegen_target() -> str:
    """Return ``"cython"`` if cython code can be compiled here, else warn and return ``"numpy"``."""
    try:
        from brian2.codegen.runtime.cython_rt import CythonCodeObject

        if CythonCodeObject.is_available():
            return "cython"
    except Exception as exc:  # pragma: no cover - depends on the machine
        log.debug("cython unavailable: %s", exc)
    warnings.warn(
        "device=runtime: no working cython compiler found; falling back to the (slower) numpy target",
        RuntimeWarning,
        stacklevel=2,
    )
    return "numpy"


def select_device(name: str, build_dir: str | Path | None = None) -> DeviceSelection:
    """Activate the Brian2 device ``name`` for the networks built after this call.

    Parameters
    ----------
    name : str
        One of :data:`DEVICES`.
    build_dir : str or Path, optional
        Folder of the generated standalone project (required for standalone devices,
        one per run so runs never overwrite each other's builds).

    Returns
    -------
    DeviceSelection
        The device, code-generation target and build folder in use.

    Raises
    ------
    DeviceError
        If ``name`` is unknown, a build folder is missing, or the optional
        dependency of the device is not installed.
    """
    import brian2

    if name not in DEVICES:
        raise DeviceError(f"device: expected one of {', '.join(DEVICES)}, got {name!r}")
    reset_device()  # a standalone project of an earlier run in this process is forgotten
    if name == "runtime":
        brian2.set_device("runtime")
        target = runtime_codegen_target()
        brian2.prefs.codegen.target = target
        return DeviceSelection(name, target, None)
    if build_dir is None:
        raise DeviceError(f"device: {name} needs a build folder (build_dir)")
    build_dir = Path(build_dir)
    if name == "cuda_standalone":
        try:
            codeobject = importlib.import_module("brian2cuda.codeobject")
        except ImportError as exc:
            raise DeviceError(
                "device: cuda_standalone needs the optional extra 'cuda' "
                "(pip install 'nmbrl-brian[cuda]', which installs brian2cuda)"
            ) from exc
        force_cuda_cxx17()
        patch_cuda_templates(codeobject.CUDAStandaloneCodeObject.templater)
        from nmbrl_brian.build_cache import sort_cuda_monitor_variables

        sort_cuda_monitor_variables(codeobject.CUDAStandaloneCodeObject.templater)  # same code, same key
        configure_curand()
        if not gpu_visible():  # compile for an H100/H200 here; running needs a GPU
            log.info("cuda_standalone: no GPU visible; projects compile but cannot run here")
            configure_cuda_without_gpu()
    brian2.set_device(name, directory=str(build_dir), build_on_run=False)
    return DeviceSelection(name, None, build_dir)


def reset_device() -> None:
    """Return to runtime mode, discarding any standalone project state (e.g. between tests).

    The discarded objects are collected at once: brian2 names a new object ``name_1`` while an
    old ``name`` is alive, which would change the next project's code (and miss the build cache).
    """
    import gc

    import brian2

    dev = brian2.get_device()
    if hasattr(dev, "reinit"):
        dev.reinit()
    brian2.set_device("runtime")
    gc.collect()


def active_device_is_standalone() -> bool:
    """True if the active Brian2 device generates a standalone project."""
    import brian2
    from brian2.devices.cpp_standalone.device import CPPStandaloneDevice

    return isinstance(brian2.get_device(), CPPStandaloneDevice)


def check_no_network_operations(net) -> None:
    """Refuse a network with ``network_operation`` objects on a standalone device.

    Brian2 drops network operations from standalone projects without a word, which
    would silently disconnect an environment from its agent. Call this before
    building or running any network that may be compiled standalone.

    Parameters
    ----------
    net : brian2.Network
        The network to check.

    Raises
    ------
    DeviceError
        If the active device is standalone and ``net`` holds a network operation.
    """
    from brian2 import NetworkOperation

    if not active_device_is_standalone():
        return
    ops = [obj.name for obj in net.objects if isinstance(obj, NetworkOperation)]
    if ops:
        import brian2

        raise DeviceError(
            f"device: network operations ({', '.join(ops)}) cannot run on "
            f"{type(brian2.get_device()).__name__}; use device=runtime, or an environment written "
            "as Brian2 equations for standalone builds"
        )


def force_cuda_cxx17() -> None:
    """Compile brian2cuda projects as C++17: CUDA 13's Thrust rejects the ``-std=c++11`` brian2cuda writes.

    nvcc takes the last ``-std`` it is given, so ``-std=c++17`` is appended to the nvcc
    flags; the host compiler's ``-std=`` is replaced. The host flags are
    ``prefs.codegen.cpp.extra_compile_args_gcc``, shared with cython and cpp_standalone,
    which compile as C++17 too from then on in this process.
    """
    import brian2

    prefs = brian2.prefs
    nvcc = [f for f in prefs.devices.cuda_standalone.cuda_backend.extra_compile_args_nvcc if "std=" not in f]
    prefs.devices.cuda_standalone.cuda_backend.extra_compile_args_nvcc = nvcc + ["-std=c++17"]
    gcc = [f for f in prefs.codegen.cpp.extra_compile_args_gcc if "std=" not in f]
    prefs.codegen.cpp.extra_compile_args_gcc = gcc + ["-std=c++17"]


#: brian2cuda 1.0b1, ``templates/synapses.cu``: a synaptic pathway with a scalar delay reads
#: ``defaultclock``, which is undefined when the network runs on clocks of its own (ours do).
CUDA_CLOCK_BUG = "if (defaultclock.timestep[0] >= {{pathway.name}}_delay)"
#: The same test on the clock of the synapses, as the rest of that template does.
CUDA_CLOCK_FIX = "if ({{owner.clock.name}}.timestep[0] >= {{pathway.name}}_delay)"

#: brian2cuda 1.0b1, ``templates/objects.cu`` (``set_variable_by_name``, lines 92-95): every
#: ``run_args`` value is lowercased before it is used, also a file name. brian2 writes the file
#: as ``static_arrays/init_<group>_<variable>_<md5>.dat`` with the variable's own case, so for
#: ``I_syn`` or ``L`` the binary opens a name that does not exist ("file size -1"), prints an
#: error, keeps the old values and exits 0. brian2 fixed its own copy in brian2 PR #1533.
CUDA_LOWERCASE_BUG = (
    "\tstd::for_each(s_value.begin(), s_value.end(), [](char& c) // modify in-place\n"
    "    {\n"
    "        c = std::tolower(static_cast<unsigned char>(c));\n"
    "    });\n"
    '    if (s_value == "true")\n'
    '        s_value = "1";\n'
    '    else if (s_value == "false")\n'
    '        s_value = "0";\n'
)
#: brian2's own test (``cpp_standalone/templates/objects.cpp``): booleans in either case, the
#: value itself (a number or a file name) untouched.
CUDA_LOWERCASE_FIX = (
    "    // nmbrl_brian: no lowercasing, s_value may be a file name (brian2 PR #1533)\n"
    '    if (s_value == "true" || s_value == "True")\n'
    '        s_value = "1";\n'
    '    else if (s_value == "false" || s_value == "False")\n'
    '        s_value = "0";\n'
)

#: Every brian2cuda template fix: template name (without extension), the buggy text, the fix.
CUDA_TEMPLATE_FIXES = (
    ("synapses", CUDA_CLOCK_BUG, CUDA_CLOCK_FIX),
    ("objects", CUDA_LOWERCASE_BUG, CUDA_LOWERCASE_FIX),
)


def patch_cuda_template(templater, template: str, bug: str, fix: str) -> bool:
    """Serve brian2cuda's template ``template`` with ``fix`` in place of ``bug``.

    The installed file is left alone: ``templater`` (a ``brian2.codegen.templates.Templater``,
    e.g. ``CUDAStandaloneCodeObject.templater``) gets a loader that serves the fixed
    template first and falls back to the loader it had for everything else.

    Parameters
    ----------
    templater : brian2.codegen.templates.Templater
        The templater to patch (anything with ``env`` and ``extension``).
    template : str
        Template name without extension, e.g. ``"synapses"``.
    bug, fix : str
        The exact text to replace, and its replacement.

    Returns
    -------
    bool
        True if the template had the bug and is now served fixed (or already was).
    """
    from brian2.codegen.templates import LazyTemplateLoader
    from jinja2 import ChoiceLoader, FunctionLoader, TemplateNotFound

    env = templater.env
    name = template + templater.extension
    done = getattr(env, "nmbrl_fixed", set())
    if (name, bug) in done:
        return True
    try:
        source = env.loader.get_source(env, name)[0]
    except TemplateNotFound:
        return False
    if bug not in source:
        return False
    fixed = source.replace(bug, fix)
    env.loader = ChoiceLoader([FunctionLoader(lambda n: fixed if n == name else None), env.loader])
    if env.cache is not None:
        env.cache.clear()
    templater.templates = LazyTemplateLoader(env, templater.extension)
    env.nmbrl_fixed = done | {(name, bug)}
    return True


def patch_cuda_clock_template(templater) -> bool:
    """Serve brian2cuda's ``synapses.cu`` with :data:`CUDA_CLOCK_FIX` in place of :data:`CUDA_CLOCK_BUG`.

    See :func:`patch_cuda_template`.
    """
    return patch_cuda_template(templater, "synapses", CUDA_CLOCK_BUG, CUDA_CLOCK_FIX)


def patch_cuda_run_args_template(templater) -> bool:
    """Serve brian2cuda's ``objects.cu`` with :data:`CUDA_LOWERCASE_FIX` in place of :data:`CUDA_LOWERCASE_BUG`.

    See :func:`patch_cuda_template`.
    """
    return patch_cuda_template(templater, "objects", CUDA_LOWERCASE_BUG, CUDA_LOWERCASE_FIX)


def patch_cuda_templates(templater) -> dict[str, bool]:
    """Apply every fix of :data:`CUDA_TEMPLATE_FIXES`; return, per template, whether it is served fixed.

    A template whose text differs from the one the fix was written for (another brian2cuda
    version) is left alone and logged.
    """
    applied = {}
    for template, bug, fix in CUDA_TEMPLATE_FIXES:
        applied[template] = patch_cuda_template(templater, template, bug, fix)
        if not applied[template]:
            log.info("cuda_standalone: brian2cuda's %s template has no known bug to patch", template)
    return applied


def configure_cuda_without_gpu(compute_capability: float = 9.0, cuda_runtime_version: float = 13.0) -> None:
    """Set brian2cuda preferences so CUDA code compiles on a machine without a GPU.

    Follows the recipe in ``BRIAN2_NOTES.md``: skip GPU detection, fix the compute
    capability and runtime version, and force C++17 (CUDA 13's Thrust rejects the
    ``-std=c++11`` brian2cuda writes). ``-march=native`` is dropped so the binary can
    run on another machine.
    """
    import brian2

    prefs = brian2.prefs
    prefs.devices.cuda_standalone.cuda_backend.detect_gpus = False
    prefs.devices.cuda_standalone.cuda_backend.gpu_id = 0
    prefs.devices.cuda_standalone.cuda_backend.compute_capability = compute_capability
    prefs.devices.cuda_standalone.cuda_backend.cuda_runtime_version = cuda_runtime_version
    force_cuda_cxx17()
    prefs.codegen.cpp.extra_compile_args_gcc = [
        f for f in prefs.codegen.cpp.extra_compile_args_gcc if f != "-march=native"
    ]


def gpu_visible() -> bool:
    """True if ``nvidia-smi -L`` lists a GPU."""
    import shutil
    import subprocess

    if shutil.which("nvidia-smi") is None:
        return False
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):  # pragma: no cover - depends on the machine
        return False
    return "GPU" in listing


#: What a standalone binary writes to its error stream when it did not do what it was asked:
#: brian2's and brian2cuda's file readers print "Error reading '<file>': ..." or "Could not read"
#: and carry on with exit code 0; CUDA checks print "CUDA_CHECK_ERROR"; C++ aborts "terminate called".
BINARY_ERROR_MARKERS = ("error", "could not", "terminate called", "abort")
#: How the same binaries start the errors they print on their *standard output* (which brian2 saves
#: as ``results/stdout.txt``), again with exit code 0: "Error opening static array ...", "Error
#: writing output file for ..." (the results read back would be stale), "Error: tried to create synapse".
BINARY_STDOUT_ERROR_PREFIX = "Error"


def run_standalone_binary(device, directory, run_args: dict | None = None) -> None:
    """``device.run`` that fails when the binary fails, also when it only says so on its error stream.

    A standalone binary that cannot read a ``run_args`` file prints an error and still exits
    with 0 (it then simulates from whatever the array held), so a run would go on silently
    with wrong values. The binary's error stream is captured at the file-descriptor level
    (the binary is a child process) and any line holding one of :data:`BINARY_ERROR_MARKERS`
    fails the run, as does a non-zero exit code, and so does a line of its standard output
    (``results/stdout.txt``) that starts with :data:`BINARY_STDOUT_ERROR_PREFIX`.

    Raises
    ------
    DeviceError
        One line: the project folder and the binary's first error line.
    """
    import os
    import sys
    import tempfile

    with tempfile.TemporaryFile() as captured:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(captured.fileno(), 2)
        failed: str | None = None
        try:
            device.run(directory=str(directory), with_output=False, run_args=run_args or {})
        except RuntimeError as exc:  # brian2: a non-zero exit code ("Project run failed ...")
            failed = str(exc).splitlines()[0] if str(exc) else "the binary exited with an error"
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        captured.seek(0)
        text = captured.read().decode(errors="replace")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if any(m in line.lower() for m in BINARY_ERROR_MARKERS)]
    stdout = Path(getattr(device, "results_dir", None) or Path(directory) / "results") / "stdout.txt"
    if stdout.is_file():
        said = stdout.read_text(errors="replace").splitlines()
        errors += [line.strip() for line in said if line.strip().startswith(BINARY_STDOUT_ERROR_PREFIX)]
    if errors or failed:
        first = errors[0] if errors else failed
        raise DeviceError(f"device: the standalone binary in {directory} failed: {first}")
    if text:
        sys.stderr.write(text)  # anything else it said (warnings) still reaches the user


def configure_curand(cache_dir: str | Path | None = None) -> Path | None:
    """Point brian2cuda's compiler at the cuRAND of the ``nvidia-curand`` wheel (extra ``cuda``).

    A CUDA toolkit without cuRAND (as on the development machines) cannot link brian2cuda
    projects; the wheel ships ``libcurand.so.<major>`` and ``curand.h``. This adds their
    folders to ``prefs.codegen.cpp`` include, library and runtime-library dirs, with a
    ``libcurand.so`` link (the linker looks for that name) in ``cache_dir``.

    Returns
    -------
    Path or None
        The wheel's library folder, or None if the wheel is not installed (then the
        toolkit's own cuRAND, if any, is used).
    """
    import brian2

    try:
        spec = importlib.util.find_spec("nvidia.curand")
    except ModuleNotFoundError:
        spec = None
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations)))
    libs = sorted((root / "lib").glob("libcurand.so*"))
    if not libs:  # pragma: no cover - a broken wheel
        return None
    link_dir = Path(cache_dir) if cache_dir is not None else Path.home() / ".cache" / "nmbrl_brian" / "curand"
    link_dir.mkdir(parents=True, exist_ok=True)
    link = link_dir / "libcurand.so"
    if not link.exists():
        link.symlink_to(libs[0])
    prefs = brian2.prefs.codegen.cpp
    for name, folder in (
        ("include_dirs", root / "include"),
        ("library_dirs", link_dir),
        ("runtime_library_dirs", root / "lib"),
    ):
        current = list(prefs[name])
        if str(folder) not in current:
            prefs[name] = current + [str(folder)]
    return root / "lib"
