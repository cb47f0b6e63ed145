"""Parameter sweeps: config values x seeds, trained on Dask, merged into one pandas table.

``nmbrl sweep --grid grid.toml`` trains the cartesian product of the grid's values times its
seeds, on a Dask ``LocalCluster`` of worker processes on this machine, or on a running Dask
scheduler given by address, so the same command scales from a laptop to a cluster (the
workers must import ``nmbrl_brian`` and share ``--out`` with this machine).

Grid file (TOML)::

    config = "../nmbrl_brian/configs/cartpole_dense.toml"  # optional base config, relative to this file
    seeds = 5                   # seeds 0..4; or a list, e.g. [0, 3, 7]

    [base]                      # optional: fields set for every run, as in a config file
    total_env_steps = 50000
    agent.gamma = 0.98

    [grid]                      # dotted config field = list of values; runs = product x seeds
    agent.actor_lr = [0.005, 0.01, 0.02]
    network.sparse_eps = [1e-6, 1e-3]

Every run trains (or resumes) in its own results folder under ``OUT/runs/<point>/`` through
:func:`~nmbrl_brian.training.run.train_or_resume`, with its output in ``sweep.log`` there.
A run that fails is recorded with its error and does not stop the others; a run already
finished (same config) is not trained again, so re-running the command continues a sweep and
retries its failed runs. The runs are merged into ``OUT/sweep.parquet`` (``sweep.csv`` when
pyarrow is absent), one row per run: the grid's fields, ``seed``, ``status`` (``finished``,
``failed`` or ``pending``), steps to 475, returns, training energy per profile
(``energy_j_<profile>``), wall time, the error, whether the run was skipped as finished, and
its folder.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import itertools
import json
import math
import time
import tomllib
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from nmbrl_brian.config import RunConfig, from_dict, set_nested
from nmbrl_brian.errors import ConfigError

#: Keys of a grid file.
GRID_KEYS = ("config", "seeds", "base", "grid")
#: Columns of the sweep table after the grid's fields, in order (then ``energy_j_<profile>``).
RESULT_COLUMNS = (
    "seed",
    "status",
    "steps_to_475",
    "final_return_mean",
    "best_return_mean",
    "kept_return_mean",
    "env_steps",
    "wall_s",
    "error",
    "skipped",
    "run_dir",
)
#: Prefix of the columns of training energy (joules, every phase but evaluation) per profile.
ENERGY_PREFIX = "energy_j_"
#: File name (without suffix) of the sweep table under ``--out``.
TABLE_STEM = "sweep"


@dataclass(frozen=True)
class SweepPoint:
    """One run of a sweep: the grid's values and a seed, resolved into a config."""

    params: tuple[tuple[str, Any], ...]
    """``(dotted field, value)`` in grid order."""
    seed: int
    """The run's seed."""
    config: RunConfig
    """The run's resolved config."""

    @property
    def key(self) -> str:
        """Folder name of the point under ``OUT/runs``: a digest of its values, and its seed."""
        text = json.dumps([[k, v] for k, v in self.params], sort_keys=True, default=str)
        return f"{hashlib.sha1(text.encode()).hexdigest()[:10]}__seed{self.seed}"


@dataclass(frozen=True)
class Grid:
    """A validated grid file: its fields and values, its seeds and every run's config."""

    path: Path
    """The grid file."""
    axes: tuple[tuple[str, tuple[Any, ...]], ...]
    """``(dotted field, values)`` in file order."""
    seeds: tuple[int, ...]
    """The seeds of every combination."""
    points: tuple[SweepPoint, ...]
    """Every run: the product of the values (first field slowest), each with every seed."""


@dataclass(frozen=True)
class SweepResult:
    """What :func:`run_sweep` returns."""

    table: pd.DataFrame
    """One row per run (see the module docstring)."""
    path: Path
    """Where the table was written."""


# --------------------------------------------------------------------------------------
# The grid file, with one-line errors
# --------------------------------------------------------------------------------------


def _read_toml(path: Path, field: str) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(field, "an existing TOML file", str(path))
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(field, "a valid TOML file", str(path), note=str(exc)) from None


def _merge(into: dict[str, Any], extra: dict[str, Any]) -> None:
    """Deep-merge the tables of ``extra`` into ``into`` (values of ``extra`` win)."""
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = copy.deepcopy(value)


def _axes(table: dict[str, Any], field: str, prefix: str = "") -> list[tuple[str, tuple[Any, ...]]]:
    axes = []
    for key, values in table.items():
        name = f"{prefix}{key}"
        if isinstance(values, dict):
            axes.extend(_axes(values, field, f"{name}."))
            continue
        if name == "seed":
            raise ConfigError(f"{field}.seed", "no seed in [grid] (list the seeds with seeds = ...)")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{field}.{name}", "a non-empty list of values", values)
        texts = [json.dumps(v, sort_keys=True, default=str) for v in values]
        if len(set(texts)) < len(texts):
            raise ConfigError(f"{field}.{name}", "distinct values", values)
        axes.append((name, tuple(values)))
    return axes


def _seeds(value: Any, field: str) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return tuple(range(value))
    ok = (
        isinstance(value, list)
        and value
        and all(isinstance(s, int) and not isinstance(s, bool) for s in value)
    )
    if not ok or min(value) < 0 or len(set(value)) < len(value):
        raise ConfigError(
            field, "an integer N >= 1 (seeds 0..N-1) or a list of distinct integers >= 0", value
        )
    return tuple(value)


def load_grid(path: str | Path) -> Grid:
    """Read and validate a grid file, resolving the config of every run.

    Raises
    ------
    ConfigError
        One line naming the grid file and the key: a missing or malformed file, an unknown key,
        bad seeds, a grid entry that is not a non-empty list of distinct values, ``seed`` in the
        grid, or a value the config rejects (unknown field, wrong type, out of range).
    """
    path = Path(path)
    data = _read_toml(path, "--grid")
    label = str(path)
    for key in data:
        if key not in GRID_KEYS:
            raise ConfigError(f"{label}: {key}", "one of " + ", ".join(GRID_KEYS), note="unknown key")
    base: dict[str, Any] = {}
    if "config" in data:
        if not isinstance(data["config"], str):
            raise ConfigError(
                f"{label}: config", "a path to a TOML config (relative to the grid file)", data["config"]
            )
        base = _read_toml(path.parent / data["config"], f"{label}: config")
    if not isinstance(data.get("base", {}), dict):
        raise ConfigError(f"{label}: base", "a table of config fields", data["base"])
    _merge(base, data.get("base", {}))
    if "seeds" not in data:
        raise ConfigError(
            f"{label}: seeds", "an integer N >= 1 (seeds 0..N-1) or a list of seeds", note="missing"
        )
    seeds = _seeds(data["seeds"], f"{label}: seeds")
    if not isinstance(data.get("grid", {}), dict):
        raise ConfigError(f"{label}: grid", "a table of dotted config fields = lists of values", data["grid"])
    axes = tuple(_axes(data.get("grid", {}), f"{label}: grid"))
    points = []
    for values in itertools.product(*(v for _, v in axes)):
        params = tuple(zip((name for name, _ in axes), values))
        for seed in seeds:
            run = copy.deepcopy(base)
            try:
                for name, value in params:
                    set_nested(run, name.split("."), copy.deepcopy(value))
                run["seed"] = seed
                config = from_dict(RunConfig, run)
            except ConfigError as exc:
                where = ", ".join(f"{k}={v!r}" for k, v in params) or "the base config"
                note = "; ".join(n for n in (exc.note, f"in the run with {where}") if n)
                raise ConfigError(f"{label}: {exc.field}", exc.allowed, exc.got, note=note) from None
            points.append(SweepPoint(params, seed, config))
    return Grid(path, axes, seeds, tuple(points))


# --------------------------------------------------------------------------------------
# One run (a Dask task) and its row
# --------------------------------------------------------------------------------------


def summarise_run(run_dir: Path, out: Path) -> dict[str, Any]:
    """The sweep-table fields of a finished run folder (returns, steps to 475, energy, wall time)."""
    from nmbrl_brian.energy import training_joules
    from nmbrl_brian.training.metrics import summarise_seeds

    summary = summarise_seeds(pd.read_csv(run_dir / "metrics.csv")).iloc[0]
    row: dict[str, Any] = {
        "status": "finished",
        "steps_to_475": float(summary["steps_to_threshold"]),
        **{k: float(summary[k]) for k in ("final_return_mean", "best_return_mean", "kept_return_mean")},
        "env_steps": int(summary["env_steps"]),
        "wall_s": float(summary["wall_s"]),
        "error": "",
        "run_dir": str(run_dir.relative_to(out)),
    }
    if (run_dir / "energy.csv").is_file():
        joules = training_joules(pd.read_csv(run_dir / "energy.csv"))
        row.update({f"{ENERGY_PREFIX}{profile}": float(j) for profile, j in joules.items()})
    return row


def _failure(exc: BaseException, wall_s: float) -> dict[str, Any]:
    return {
        "status": "failed",
        "error": f"{type(exc).__name__}: {' '.join(str(exc).split())}",
        "wall_s": wall_s,
    }


def run_point(point: SweepPoint, out: str) -> dict[str, Any]:
    """Train (or resume) one run of a sweep under ``out/runs/<point.key>``; never raises.

    This is the task a Dask worker runs. The run's printed output goes to ``sweep.log`` in
    its folder (so no progress bars of its own). Returns its row of the sweep table
    (:func:`summarise_run`), or ``status = "failed"`` with the error on any exception.
    """
    from nmbrl_brian.devices import reset_device
    from nmbrl_brian.training.run import train_or_resume

    root = Path(out) / "runs" / point.key
    root.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with (
        open(root / "sweep.log", "a") as log,
        contextlib.redirect_stdout(log),
        contextlib.redirect_stderr(log),
    ):
        try:
            reset_device()  # a worker runs many tasks: start each in runtime mode
            run_dir = train_or_resume(point.config, root)
            return {**summarise_run(run_dir, Path(out)), "skipped": False}
        except Exception as exc:  # noqa: BLE001 - any failure of a run is recorded, not raised
            traceback.print_exc(file=log)
            return {**_failure(exc, time.perf_counter() - start), "skipped": False}


# --------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------


def sweep_table(grid: Grid, rows: dict[int, dict[str, Any]]) -> pd.DataFrame:
    """One row per run of ``grid`` (``rows`` by point index; missing ones are ``pending``)."""
    records = []
    for i, point in enumerate(grid.points):
        values = {
            k: json.dumps(v, default=str) if isinstance(v, (list, dict)) else v for k, v in point.params
        }
        records.append({**values, "seed": point.seed, "status": "pending", **rows.get(i, {})})
    table = pd.DataFrame(records)
    energy = sorted({c for c in table.columns if c.startswith(ENERGY_PREFIX)}, key=list(table.columns).index)
    columns = [name for name, _ in grid.axes] + list(RESULT_COLUMNS) + energy
    table = table.reindex(columns=columns)
    table["error"] = table["error"].fillna("")
    table["run_dir"] = table["run_dir"].fillna("")
    table["skipped"] = table["skipped"].fillna(False).astype(bool)
    return table


def parameter_columns(table: pd.DataFrame) -> list[str]:
    """The swept fields of a sweep table: the columns that are neither results nor energy."""
    return [c for c in table.columns if c not in RESULT_COLUMNS and not c.startswith(ENERGY_PREFIX)]


def _parquet_available() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def write_table(table: pd.DataFrame, out: str | Path) -> Path:
    """Write the sweep table as ``out/sweep.parquet``, or ``out/sweep.csv`` without pyarrow; return the path.

    Written atomically; the table of the other format, if any, is removed. Columns whose values
    mix Python types (e.g. a grid of numbers and strings) are written as strings in parquet.
    """
    from nmbrl_brian.results import atomic_write, write_csv_atomic

    out = Path(out)
    parquet, csv = out / f"{TABLE_STEM}.parquet", out / f"{TABLE_STEM}.csv"
    if not _parquet_available():
        write_csv_atomic(table, csv)
        parquet.unlink(missing_ok=True)
        return csv
    table = table.copy()
    for column in table.columns[table.dtypes == object]:
        if len({type(v) for v in table[column] if v is not None}) > 1:
            table[column] = table[column].astype(str)
    atomic_write(parquet, lambda f: table.to_parquet(f, index=False))
    csv.unlink(missing_ok=True)
    return parquet


def read_table(path: str | Path) -> pd.DataFrame:
    """A sweep table: ``path`` is the table itself or the sweep's ``--out`` folder (parquet first)."""
    path = Path(path)
    if path.is_dir():
        for suffix in (".parquet", ".csv"):
            if (path / f"{TABLE_STEM}{suffix}").is_file():
                path = path / f"{TABLE_STEM}{suffix}"
                break
    if not path.is_file():
        raise ConfigError(
            "table",
            f"a sweep folder holding {TABLE_STEM}.parquet or {TABLE_STEM}.csv, or the table",
            str(path),
        )
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    table = pd.read_csv(path, keep_default_na=False, na_values=[""])
    table["error"] = table["error"].fillna("").astype(str)
    return table


def pareto_front(table: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """The rows not dominated when both ``x`` and ``y`` are to be small (rows with NaN left out).

    A row is on the front when no other row has ``x`` and ``y`` both at most its own and one of
    them smaller; of identical rows one is kept. Sorted by ``x``.
    """
    rows = table.dropna(subset=[x, y]).sort_values([x, y], kind="stable")
    best = math.inf
    keep = []
    for index, value in rows[y].items():
        if value < best:
            keep.append(index)
            best = value
    return rows.loc[keep]


# --------------------------------------------------------------------------------------
# Running a sweep on Dask
# --------------------------------------------------------------------------------------


def _import_brian2_plugin() -> Any:
    """A Dask worker plugin that imports Brian2 when a worker starts.

    Dask runs tasks in a thread of the worker process, and importing Brian2 installs a SIGINT
    handler, which only the main thread may do; a plugin's ``setup`` runs in the main thread.
    """
    from dask.distributed import WorkerPlugin

    class ImportBrian2(WorkerPlugin):
        def setup(self, worker: Any) -> None:
            import brian2  # noqa: F401

    return ImportBrian2()


@contextlib.contextmanager
def dask_client(scheduler: str | None = None, workers: int | None = None) -> Iterator[Any]:
    """A ``dask.distributed.Client``: of a running scheduler at ``scheduler``, or of a fresh
    ``LocalCluster`` with ``workers`` single-threaded worker processes (default: one per core).

    Raises
    ------
    ConfigError
        If dask[distributed] is not installed, or no scheduler answers at ``scheduler``.
    """
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise ConfigError(
            "nmbrl sweep", "the optional dependency dask[distributed] (pip install 'nmbrl-brian[dask]')"
        ) from None
    if scheduler is not None:
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise ConfigError(
                "--scheduler",
                "the address of a running Dask scheduler, e.g. tcp://host:8786",
                scheduler,
                note=" ".join(str(exc).split()),
            ) from None
        with client:
            client.register_plugin(_import_brian2_plugin(), name="nmbrl-import-brian2")
            yield client
        return
    with (
        LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        client.register_plugin(_import_brian2_plugin(), name="nmbrl-import-brian2")
        yield client


def run_sweep(
    grid: Grid | str | Path, out: str | Path, *, scheduler: str | None = None, workers: int | None = None
) -> SweepResult:
    """Train every run of ``grid`` not finished yet on Dask and merge all runs into one table.

    Parameters
    ----------
    grid : Grid, str or Path
        A grid (:func:`load_grid`) or its file.
    out : str or Path
        Sweep folder: runs go under ``out/runs/``, the table is ``out/sweep.parquet`` (or .csv).
    scheduler : str, optional
        Address of a running Dask scheduler (e.g. ``tcp://host:8786``); its workers must import
        ``nmbrl_brian`` and see ``out``. Default: a ``LocalCluster`` on this machine.
    workers : int, optional
        Worker processes of the ``LocalCluster`` (default: one per core); not with ``scheduler``.

    Returns
    -------
    SweepResult
        The table (one row per run, in grid order) and its path. The table is rewritten as
        each run ends, so an interrupted sweep leaves the runs done so far.

    Raises
    ------
    ConfigError
        On a bad grid, ``out`` naming a file, ``workers < 1``, ``workers`` with ``scheduler``,
        missing dask or an unreachable scheduler. A failing run raises nothing: its row says
        ``failed`` with the error.
    """
    from nmbrl_brian.training.callbacks import progress_enabled
    from nmbrl_brian.training.run import find_run, run_finished

    grid = grid if isinstance(grid, Grid) else load_grid(grid)
    if workers is not None and scheduler is not None:
        raise ConfigError(
            "--workers", "no --workers with --scheduler (the cluster has its own workers)", workers
        )
    if workers is not None and workers < 1:
        raise ConfigError("--workers", "an integer >= 1", workers)
    out = Path(out).resolve()
    if out.exists() and not out.is_dir():
        raise ConfigError("--out", "a folder for the sweep (this path is an existing file)", str(out))
    rows: dict[int, dict[str, Any]] = {}
    for i, point in enumerate(grid.points):
        run_dir = find_run(point.config, out / "runs" / point.key)
        if run_dir is not None and run_finished(run_dir, point.config):
            rows[i] = {**summarise_run(run_dir, out), "skipped": True}
    todo = [i for i in range(len(grid.points)) if i not in rows]
    if not todo:
        out.mkdir(parents=True, exist_ok=True)
        table = sweep_table(grid, rows)
        return SweepResult(table, write_table(table, out))
    from tqdm.auto import tqdm

    with dask_client(scheduler, workers) as client:
        from dask.distributed import as_completed

        out.mkdir(parents=True, exist_ok=True)
        path = write_table(sweep_table(grid, rows), out)
        futures = {client.submit(run_point, grid.points[i], str(out), pure=False): i for i in todo}
        bar = tqdm(
            total=len(grid.points),
            initial=len(rows),
            unit="run",
            desc="sweep",
            disable=not progress_enabled(),
        )
        failed = 0
        with bar:
            for future in as_completed(futures):
                i = futures[future]
                try:
                    rows[i] = future.result()
                except Exception as exc:  # noqa: BLE001 - the worker died (e.g. killed), not the run
                    rows[i] = {**_failure(exc, math.nan), "skipped": False}
                failed += rows[i]["status"] == "failed"
                bar.update(1)
                bar.set_postfix(failed=failed)
                path = write_table(sweep_table(grid, rows), out)
    return SweepResult(sweep_table(grid, rows), path)
