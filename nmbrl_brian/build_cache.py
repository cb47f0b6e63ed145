"""A cache of compiled standalone binaries, keyed by the generated code and the compiler settings.

Every run of ``cpp_standalone`` or ``cuda_standalone`` generates its project in a folder of its
own (``run_dir/brian_build``). Compiling it takes 10-50 s (C++) or minutes (CUDA); the second run
of a config, a resumed run or a sweep's next point generates the same code again. So the project
is generated without compiling, and a key is computed: a SHA-256 over

- every source file of the project folder that the makefile compiles or includes (``*.cpp``,
  ``*.c``, ``*.h``, ``*.hpp``, ``*.cu``, ``*.cuh``, ``makefile``, ``win_makefile``), by relative
  path and content; not ``static_arrays/`` (initial values, connectivity and weights are data the
  binary reads at start) and not ``results/``;
- the compiler settings: the device, Brian2's ``codegen.cpp``, ``devices.cpp_standalone`` and
  ``devices.cuda_standalone`` preferences, the Brian2 and brian2cuda versions, the compiler's
  ``--version`` line (``$CXX``, else ``g++``; ``nvcc`` for CUDA), the machine and, when
  ``-march=native`` is among the flags, the processor model.

If ``<cache root>/<device>/<key>/main`` exists the binary is copied into the project folder and
nothing is compiled; else the project is compiled and its ``main`` stored under the key (written
to a temporary folder beside it and renamed into place, so a half-written entry is never read).
The static arrays are written to the project folder by every build, hit or miss.

The cache root is the environment variable ``NMBRL_BUILD_CACHE``, by default
``~/.cache/nmbrl_brian/builds``; an empty value or ``off`` switches the cache off. The folder may
be deleted at any time (the next build compiles again).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

#: Environment variable naming the cache root ('' or 'off': no cache).
CACHE_ENV = "NMBRL_BUILD_CACHE"
#: The cache root when :data:`CACHE_ENV` is not set.
DEFAULT_CACHE_ROOT = Path("~/.cache/nmbrl_brian/builds")
#: File suffixes (and names) of the project that are compiled or included.
SOURCE_SUFFIXES = (".cpp", ".c", ".h", ".hpp", ".cu", ".cuh")
SOURCE_NAMES = ("makefile", "Makefile", "win_makefile")
#: Project sub-folders that hold data, not code.
DATA_FOLDERS = ("static_arrays", "results")
#: Name of the compiled program (brian2 and brian2cuda makefiles, ``PROGRAM = main``).
BINARY = "main"
#: Preference prefixes that decide how the project is compiled.
PREF_PREFIXES = ("codegen.cpp.", "devices.cpp_standalone.", "devices.cuda_standalone.")

_build_seconds_total = 0.0


@dataclass(frozen=True)
class BuildRecord:
    """One standalone build: how long it took and whether the binary came from the cache."""

    build_s: float
    """Seconds from code generation to a runnable binary (generation, then compile or copy)."""
    generate_s: float
    """Seconds generating the project (Brian2's code generation and ``device.build(compile=False)``)."""
    compile_s: float
    """Seconds compiling (0 on a cache hit)."""
    cache_hit: bool
    """Whether the binary was copied from the cache."""
    key: str | None
    """The cache key (None when the cache is off)."""
    device: str
    """``cpp_standalone`` or ``cuda_standalone``."""

    def message(self) -> str:
        """The one line logged for this build."""
        if self.cache_hit:
            return f"standalone build: cache hit {self.key[:12]} ({self.build_s:.1f} s)"
        if self.key is None:
            return f"standalone build: compiled in {self.compile_s:.1f} s (build cache off)"
        return f"standalone build: compiled in {self.compile_s:.1f} s, cached as {self.key[:12]}"


def cache_root() -> Path | None:
    """The cache root from :data:`CACHE_ENV` (None when switched off)."""
    value = os.environ.get(CACHE_ENV)
    if value is None:
        return DEFAULT_CACHE_ROOT.expanduser()
    if value.strip().lower() in ("", "off"):
        return None
    return Path(value).expanduser()


def device_name(device) -> str:
    """``cuda_standalone`` for a brian2cuda device, else ``cpp_standalone``."""
    return "cuda_standalone" if type(device).__name__ == "CUDAStandaloneDevice" else "cpp_standalone"


def source_files(directory: str | Path) -> list[Path]:
    """The project's compiled or included files, relative to ``directory``, sorted."""
    directory = Path(directory)
    found = []
    for path in directory.rglob("*"):
        rel = path.relative_to(directory)
        if rel.parts[0] in DATA_FOLDERS or not path.is_file():
            continue
        if path.suffix.lower() in SOURCE_SUFFIXES or path.name in SOURCE_NAMES:
            found.append(rel)
    return sorted(found, key=lambda p: p.as_posix())


@functools.cache
def _version_line(program: str) -> str:
    try:
        out = subprocess.run([program, "--version"], check=False, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return f"{program}: not found"
    lines = (out.stdout or out.stderr).strip().splitlines()
    return f"{program}: {lines[-1] if program == 'nvcc' and lines else (lines[0] if lines else '')}"


@functools.cache
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def compiler_settings(device) -> dict:
    """What besides the source decides the binary: device, preferences, versions, compiler, machine."""
    import brian2

    prefs = {key: repr(brian2.prefs[key]) for key in sorted(brian2.prefs) if key.startswith(PREF_PREFIXES)}
    name = device_name(device)
    settings = {
        "device": name,
        "prefs": prefs,
        "brian2": brian2.__version__,
        "python": sys.implementation.cache_tag,
        "machine": platform.machine(),
        "compiler": _version_line(os.environ.get("CXX", "g++")),
    }
    if name == "cuda_standalone":
        import brian2cuda

        settings["brian2cuda"] = getattr(brian2cuda, "__version__", "unknown")
        settings["nvcc"] = _version_line("nvcc")
    if "-march=native" in " ".join(prefs.values()):
        settings["cpu"] = _cpu_model()
    return settings


def build_key(directory: str | Path, settings: dict) -> str:
    """SHA-256 (hex) of the project's source files (path and content) and ``settings``."""
    directory = Path(directory)
    digest = hashlib.sha256()
    digest.update(json.dumps(settings, sort_keys=True).encode())
    for rel in source_files(directory):
        content = (directory / rel).read_bytes()
        digest.update(f"\0{rel.as_posix()}\0{len(content)}\0".encode())
        digest.update(content)
    return digest.hexdigest()


#: A clock's start, as brian2 writes it into ``main``: timestep and time set to constants.
_CLOCK_START = re.compile(
    r"^\s*_array_(\w+)_timestep\[0\] = [-+0-9.eE]+;\n\s*_array_\1_t\[0\] = [-+0-9.eE]+;\n"
)
#: A clock added to a network without code (brian2: ``net.add(&clock, NULL);``) or with
#: brian2cuda's random number buffer (the same argument-less call for every clock).
_CLOCK_ADD = re.compile(r"^\s*\w+\.add\(&\w+, (NULL|_run_random_number_buffer)\);\n")


def canonical_main(text: str) -> str:
    """``text`` (``main.cpp`` or ``main.cu``) with brian2's set-ordered clock lines sorted.

    brian2 sets the clocks' start values and adds code-less clocks to the network while
    iterating over a Python set of clocks, so their order changes from process to process and
    the same network would never hit the cache. Each run of consecutive clock starts (a
    constant timestep and time of one clock) and each run of consecutive ``add(&clock, NULL)``
    (or brian2cuda's ``add(&clock, _run_random_number_buffer)``) lines is sorted; the statements
    are independent, so the program does not change.
    """
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    i = 0
    while i < len(lines):
        for pattern, size in ((_CLOCK_START, 2), (_CLOCK_ADD, 1)):
            group = []
            while i + size <= len(lines) and pattern.match("".join(lines[i : i + size])):
                group.append("".join(lines[i : i + size]))
                i += size
            if group:
                out.extend(sorted(group))
                break
        else:
            out.append(lines[i])
            i += 1
    return "".join(out)


def canonicalise_project(directory: str | Path) -> None:
    """Rewrite the project's ``main.cpp`` / ``main.cu`` by :func:`canonical_main` (if it changes)."""
    for name in ("main.cpp", "main.cu"):
        path = Path(directory) / name
        if path.is_file():
            text = path.read_text()
            canonical = canonical_main(text)
            if canonical != text:
                path.write_text(canonical)


#: brian2cuda 1.0b1, ``templates/spikemonitor.cu``: recorded variables taken in the order of a
#: set of names (Python's string hashing, other in every process; brian2's template sorts them),
#: and the same taken sorted by name (the first one's size: they all have the monitor's size).
CUDA_MONITOR_SORTING = (
    ("in record_variables.items() %}", "in record_variables | dictsort %}"),
    (
        "{% set var = record_variables.values() | first %}",
        "{% set var = (record_variables | dictsort | first)[1] %}",
    ),
)


def sort_cuda_monitor_variables(templater) -> bool:
    """Serve brian2cuda's ``spikemonitor.cu`` with its recorded variables sorted by name.

    Without it the monitors' code changes from process to process and a cuda_standalone
    build never hits the cache. Every loop of the template is sorted alike, so kernel
    parameters and arguments still match. ``templater`` as for
    :func:`nmbrl_brian.devices.patch_cuda_clock_template`; the installed file is left alone.

    Returns
    -------
    bool
        True if the template iterated in set order and is now served sorted (or already was).
    """
    from brian2.codegen.templates import LazyTemplateLoader
    from jinja2 import ChoiceLoader, FunctionLoader, TemplateNotFound

    env = templater.env
    if getattr(env, "nmbrl_monitor_order", False):
        return True
    name = "spikemonitor" + templater.extension
    try:
        source = env.loader.get_source(env, name)[0]
    except TemplateNotFound:
        return False
    if CUDA_MONITOR_SORTING[0][0] not in source:
        return False
    fixed = source
    for unordered, ordered in CUDA_MONITOR_SORTING:
        fixed = fixed.replace(unordered, ordered)
    env.loader = ChoiceLoader([FunctionLoader(lambda n: fixed if n == name else None), env.loader])
    if env.cache is not None:
        env.cache.clear()
    templater.templates = LazyTemplateLoader(env, templater.extension)
    env.nmbrl_monitor_order = True
    return True


def compile_project(device, directory: str | Path) -> None:
    """Compile the generated project in ``directory`` as ``device.build(compile=True)`` would."""
    from brian2.codegen.cpp_prefs import get_compiler_and_args

    compiler, _ = get_compiler_and_args()
    device.compile_source(str(directory), compiler, False, False)


def _fetch(entry: Path, directory: Path) -> bool:
    """Copy the cached binary into the project folder; False if the entry has none (or it cannot be read)."""
    binary = entry / BINARY
    if not binary.is_file():
        return False
    partial = directory / f".{BINARY}.partial"
    try:
        shutil.copy2(binary, partial)
        os.replace(partial, directory / BINARY)
    except OSError as exc:  # an unreadable entry costs a compile, not the run
        partial.unlink(missing_ok=True)
        print(f"nmbrl: standalone build: cached binary not used ({exc})", file=sys.stderr)
        return False
    return True


def _store(entry: Path, directory: Path, record: dict) -> None:
    """Put the project's binary under ``entry`` atomically (temporary folder, then rename)."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{entry.name[:12]}-", dir=entry.parent))
    try:
        shutil.copy2(directory / BINARY, staging / BINARY)
        (staging / "build.json").write_text(json.dumps(record, indent=1) + "\n")
        try:
            os.rename(staging, entry)
        except OSError:  # another process stored the same key first: keep theirs
            if not (entry / BINARY).is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def build_project(device, directory: str | Path, generate_s: float = 0.0) -> BuildRecord:
    """Generate the project in ``directory`` and make its binary, from the cache when it holds it.

    Parameters
    ----------
    device : brian2.devices.cpp_standalone.CPPStandaloneDevice
        The active standalone device, its network already run (code objects queued).
    directory : str or Path
        The project folder.
    generate_s : float, optional
        Seconds already spent generating (Brian2's ``network.run``), added to the record.

    Returns
    -------
    BuildRecord
        Also appended to ``directory/build.json`` and added to :func:`total_build_seconds`.
    """
    global _build_seconds_total
    directory = Path(directory)
    start = time.perf_counter()
    device.build(directory=str(directory), compile=False, run=False, with_output=False)
    canonicalise_project(directory)
    generated = time.perf_counter()
    root = cache_root()
    key = entry = None
    hit = False
    if root is not None:
        key = build_key(directory, compiler_settings(device))
        entry = root / device_name(device) / key
        hit = _fetch(entry, directory)
    compile_s = 0.0
    if not hit:
        compiling = time.perf_counter()
        compile_project(device, directory)
        compile_s = time.perf_counter() - compiling
    done = time.perf_counter()
    record = BuildRecord(
        build_s=generate_s + done - start,
        generate_s=generate_s + generated - start,
        compile_s=compile_s,
        cache_hit=hit,
        key=key,
        device=device_name(device),
    )
    if entry is not None and not hit:
        try:
            _store(entry, directory, {**asdict(record), "project": str(directory.resolve())})
        except OSError as exc:  # a cache that cannot be written costs the next compile, not this run
            print(f"nmbrl: standalone build: not cached ({exc})", file=sys.stderr)
    _build_seconds_total += record.build_s
    _append_record(directory / "build.json", record)
    print(f"nmbrl: {record.message()}", file=sys.stderr)
    return record


def _append_record(path: Path, record: BuildRecord) -> None:
    try:
        records = json.loads(path.read_text()) if path.is_file() else []
    except (OSError, ValueError):
        records = []
    records = records if isinstance(records, list) else []
    records.append({k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(record).items()})
    path.write_text(json.dumps(records, indent=1) + "\n")


def total_build_seconds() -> float:
    """Seconds this process has spent on standalone builds (to keep them out of training wall time)."""
    return _build_seconds_total
