"""Parameter sweeps: grid files, runs on a Dask LocalCluster, the merged table and its analysis."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nmbrl_brian import sweep
from nmbrl_brian.cli import main
from nmbrl_brian.energy import SHIPPED_PROFILES
from nmbrl_brian.errors import ConfigError
from nmbrl_brian.sweep import load_grid, pareto_front, read_table, write_table

ROOT = Path(__file__).resolve().parents[1]
DENSE = ROOT / "nmbrl_brian" / "configs" / "cartpole_dense.toml"

#: 2 x 2 grid x 1 seed of tiny dense runs; env_id NoSuchEnv-v0 passes the config but fails when
#: the run builds its environment: the injected failing runs.
GRID = f"""
config = "{DENSE}"
seeds = 1

[base]
total_env_steps = 600
eval_every = 300
eval_episodes = 2
checkpoint_every = 300

[grid]
agent.actor_lr = [0.01, 0.02]
env_id = ["CartPole-v1", "NoSuchEnv-v0"]
"""


def test_sweep_on_local_cluster_merges_runs_records_failures_and_skips_finished(tmp_path, capsys):
    pytest.importorskip("dask.distributed", reason="nmbrl sweep needs the dask extra (make installs it)")
    grid = tmp_path / "grid.toml"
    grid.write_text(GRID)
    out = tmp_path / "sweep"
    code = main(["sweep", "--grid", str(grid), "--workers", "2", "--out", str(out)])
    printed = capsys.readouterr().out.strip().splitlines()
    assert code == 1, "a sweep with failed runs exits with 1"
    table_path = Path(printed[-2].removeprefix("table: "))
    assert table_path.is_file() and table_path.parent == out, f"the sweep prints its table: {printed}"
    assert printed[-1] == "runs=4 finished=2 failed=2 skipped=0", printed[-1]
    table = read_table(out)
    energy = [f"energy_j_{p}" for p in SHIPPED_PROFILES]
    assert list(table.columns) == ["agent.actor_lr", "env_id", *sweep.RESULT_COLUMNS, *energy], list(
        table.columns
    )
    assert table[["agent.actor_lr", "env_id"]].values.tolist() == [
        [0.01, "CartPole-v1"],
        [0.01, "NoSuchEnv-v0"],
        [0.02, "CartPole-v1"],
        [0.02, "NoSuchEnv-v0"],
    ], "rows in grid order"
    done = table[table.env_id == "CartPole-v1"]
    assert (done["status"] == "finished").all() and (done["env_steps"] == 600).all(), done.to_dict()
    assert done["final_return_mean"].between(1, 500).all() and (done[energy] > 0).all().all()
    assert (done["wall_s"] > 0).all() and (done["error"] == "").all()
    run_dirs = [out / d for d in done["run_dir"]]
    assert all((d / "metrics.csv").is_file() and (d / "energy.csv").is_file() for d in run_dirs), run_dirs
    failed = table[table.env_id == "NoSuchEnv-v0"]
    assert (failed["status"] == "failed").all(), failed.to_dict()
    assert failed["error"].str.contains("ConfigError: env_id").all(), failed["error"].tolist()
    assert failed[energy].isna().all().all(), "a failed run has no energy"

    stamps = [(d / "metrics.csv").stat().st_mtime_ns for d in run_dirs]
    code = main(["sweep", "--grid", str(grid), "--workers", "2", "--out", str(out)])
    assert capsys.readouterr().out.strip().splitlines()[-1] == "runs=4 finished=2 failed=2 skipped=2"
    again = read_table(out)
    assert again.loc[done.index, "skipped"].all() and not again.loc[failed.index, "skipped"].any()
    assert again.loc[done.index, "run_dir"].tolist() == done["run_dir"].tolist(), "finished runs are reused"
    assert [(d / "metrics.csv").stat().st_mtime_ns for d in run_dirs] == stamps, (
        "finished runs are not retrained"
    )
    assert all([p for p in d.parent.iterdir() if p.is_dir()] == [d] for d in run_dirs), "no second run folder"
    assert all((d.parent / "sweep.log").is_file() for d in run_dirs), "each run's output is kept in sweep.log"
    assert (again.loc[failed.index, "status"] == "failed").all(), (
        "failed runs are tried again (and fail again)"
    )


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("seeds = 1\nbogus = 2", "bogus: expected one of config, seeds, base, grid"),
        ("seeds = 0", "seeds: expected an integer N >= 1"),
        ("seeds = [1, 1]", "seeds: expected an integer N >= 1"),
        ("[grid]\nagent.actor_lr = [0.1]", "seeds: expected an integer N >= 1"),
        ("seeds = 1\n[grid]\nagent.actor_lr = []", "grid.agent.actor_lr: expected a non-empty list"),
        ("seeds = 1\n[grid]\nagent.actor_lr = 0.1", "grid.agent.actor_lr: expected a non-empty list"),
        ("seeds = 1\n[grid]\nagent.actor_lr = [0.1, 0.1]", "grid.agent.actor_lr: expected distinct values"),
        ("seeds = 1\n[grid]\nseed = [1, 2]", "grid.seed: expected no seed in [grid]"),
        ("seeds = 1\n[grid]\nagent.bogus = [1]", "agent.bogus: expected a known key"),
        ("seeds = 1\n[grid]\nagent.gamma = [0.9, 2.0]", "agent.gamma: expected"),
        ("seeds = 1\n[base]\ntotal_env_steps = 'many'", "total_env_steps: expected an integer"),
        ("seeds = 1\n[base]\nagent = 3\n[grid]\nagent.gamma = [0.9]", "grid.toml: agent: expected a section"),
        ('seeds = 1\nconfig = "missing.toml"', "config: expected an existing TOML file"),
        ("seeds = [", "--grid: expected a valid TOML file"),
    ],
)
def test_bad_grid_is_a_one_line_error(tmp_path, capsys, text, fragment):
    grid = tmp_path / "grid.toml"
    grid.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_grid(grid)
    message = str(info.value)
    assert fragment in message and "\n" not in message, f"message: {message}"
    out = tmp_path / "sweep"
    assert main(["sweep", "--grid", str(grid), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nmbrl: error:"), err
    assert not out.exists(), "a bad grid must not create the sweep folder"


def test_grid_runs_are_the_product_of_values_and_seeds(tmp_path):
    grid = tmp_path / "grid.toml"
    grid.write_text(
        f'config = "{DENSE}"\nseeds = [3, 5]\n[base]\nagent.gamma = 0.9\n'
        '[grid]\nagent.actor_lr = [0.01, 0.02, 0.03]\n"agent.critic_lr" = [0.1, 0.2]\n'
    )
    points = load_grid(grid).points
    assert len(points) == 3 * 2 * 2
    assert [(p.config.agent.actor_lr, p.config.agent.critic_lr, p.seed) for p in points[:4]] == [
        (0.01, 0.1, 3),
        (0.01, 0.1, 5),
        (0.01, 0.2, 3),
        (0.01, 0.2, 5),
    ], "first field slowest, seeds fastest"
    assert all(p.config.agent.gamma == 0.9 and p.config.agent.kind == "dense_actor_critic" for p in points)
    assert len({p.key for p in points}) == len(points), "every run gets its own folder"


def test_workers_are_checked_before_anything_starts(tmp_path):
    grid = tmp_path / "grid.toml"
    grid.write_text(GRID)
    with pytest.raises(ConfigError, match="--workers: expected no --workers with --scheduler"):
        sweep.run_sweep(grid, tmp_path / "a", scheduler="tcp://127.0.0.1:1", workers=2)
    with pytest.raises(ConfigError, match="--workers: expected an integer >= 1"):
        sweep.run_sweep(grid, tmp_path / "b", workers=0)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_missing_dask_is_a_one_line_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "dask.distributed", None)  # import fails as if not installed
    with (
        pytest.raises(ConfigError, match=r"dask\[distributed\] \(pip install 'nmbrl-brian\[dask\]'\)"),
        sweep.dask_client(),
    ):
        pass  # pragma: no cover


def test_table_is_parquet_or_csv_without_pyarrow(tmp_path, monkeypatch):
    table = pd.DataFrame(
        {
            "agent.kind": ["a", "b"],
            "x": [1, "two"],
            "seed": [0, 1],
            "status": ["finished", "failed"],
            "error": ["", "E"],
        }
    )
    monkeypatch.setattr(sweep, "_parquet_available", lambda: False)
    assert write_table(table, tmp_path) == tmp_path / "sweep.csv"
    assert read_table(tmp_path)["error"].tolist() == ["", "E"], "an empty error reads back as ''"
    monkeypatch.setattr(sweep, "_parquet_available", lambda: True)
    pytest.importorskip("pyarrow")
    assert write_table(table, tmp_path) == tmp_path / "sweep.parquet"
    assert not (tmp_path / "sweep.csv").exists(), "the stale CSV goes"
    assert read_table(tmp_path)["x"].tolist() == ["1", "two"], "a column of mixed types is written as text"


def test_pareto_front_keeps_the_runs_no_other_beats_on_both():
    runs = pd.DataFrame(
        {
            "steps": [10.0, 20.0, 15.0, 30.0, np.nan, 20.0, 40.0],
            "energy": [5.0, 2.0, 6.0, 1.0, 0.5, 2.0, 1.0],
        }
    )
    front = pareto_front(runs, "steps", "energy")
    assert front.index.tolist() == [0, 1, 3], f"front: {front}"


def test_sweep_report_plots_each_parameter_and_the_front(tmp_path):
    energy = {f"energy_j_{p}": 1.0 for p in SHIPPED_PROFILES}
    rows = [
        {"agent.actor_lr": lr, "agent.kind": kind, "seed": seed, "status": "finished", **energy}
        for lr in (0.01, 0.1)
        for kind in ("a", "b")
        for seed in (0, 1)
    ]
    table = pd.DataFrame(rows)
    table["steps_to_475"] = [1000.0, 2000.0, np.nan, 500.0, 3000.0, 800.0, 1000.0, np.nan]
    table["energy_j_loihi"] = [2.0, 1.0, 0.1, 4.0, 0.5, 3.0, 2.0, 0.2]
    table["final_return_mean"] = 100.0
    table.loc[7, "status"] = "failed"
    write_table(table.reindex(columns=[*table.columns, "error"]).fillna({"error": ""}), tmp_path)
    proc = subprocess.run(
        [sys.executable, "analysis/sweep_report.py", str(tmp_path), "--out", str(tmp_path / "figs")],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == (
        "runs=8 finished=7 solved=6 pareto_points=5 min_energy_solved_j=0.5"
    ), proc.stdout
    for name in ("sweep_agent.actor_lr.png", "sweep_agent.kind.png", "pareto_energy_steps.png"):
        assert (tmp_path / "figs" / name).stat().st_size > 0, f"{name} missing"
    front = pd.read_csv(tmp_path / "figs" / "pareto_front.csv")
    assert front[["steps_to_475", "energy_j_loihi"]].values.tolist() == [
        [500.0, 4.0],
        [800.0, 3.0],
        [1000.0, 2.0],  # of the two identical runs, one is kept
        [2000.0, 1.0],
        [3000.0, 0.5],
    ], f"front: {front}"
