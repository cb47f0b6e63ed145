"""Subprocess smoke tests of the experiment scripts (``--quick``) and the analysis tool."""

from __future__ import annotations

import pandas as pd
import pytest
from script_helpers import headline, run_script


def test_baseline_dense_quick_and_resumable(tmp_path):
    out = tmp_path / "dense"
    proc = run_script("experiments/baseline_dense.py", "--quick", "--seeds", "2", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    figures = headline(proc.stdout)
    assert set(figures) == {"steps_to_475_median", "seeds_solved", "wall_s_median"}, f"headline: {figures}"
    assert figures["seeds_solved"].endswith("/2")
    metrics = pd.read_csv(out / "metrics.csv")
    assert sorted(metrics["seed"].unique()) == [0, 1], "metrics.csv should hold both seeds"
    assert (out / "learning_curves.png").is_file() and (out / "summary.csv").is_file()
    runs_before = sorted(p.name for p in (out / "runs").iterdir())
    again = run_script("experiments/baseline_dense.py", "--quick", "--seeds", "2", "--out", str(out))
    assert again.returncode == 0
    assert sorted(p.name for p in (out / "runs").iterdir()) == runs_before, (
        "a re-run should reuse finished seeds"
    )
    assert headline(again.stdout) == figures, "a re-run over finished seeds should report the same figures"

    collected = tmp_path / "all.csv"
    proc = run_script("analysis/collect_runs.py", str(out), "--out", str(collected))
    assert proc.returncode == 0, proc.stderr
    table = pd.read_csv(collected)
    assert {"run", "agent.actor_lr", "return_mean"} <= set(table.columns), f"columns: {list(table.columns)}"
    assert table["run"].nunique() == 2


def test_parallel_workers_give_the_same_results(tmp_path):
    """Seeds trained in two spawned worker processes match seeds trained one after another."""
    serial = tmp_path / "serial"
    proc = run_script("experiments/baseline_dense.py", "--quick", "--seeds", "2", "--out", str(serial))
    assert proc.returncode == 0, proc.stderr[-2000:]
    parallel = tmp_path / "parallel"
    proc = run_script(
        "experiments/baseline_dense.py", "--quick", "--seeds", "2", "--workers", "2", "--out", str(parallel)
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    a = pd.read_csv(serial / "metrics.csv").drop(columns="wall_s")
    b = pd.read_csv(parallel / "metrics.csv").drop(columns="wall_s")
    pd.testing.assert_frame_equal(a, b, obj="metrics with --workers 2 vs 1")
    assert len(list((parallel / "runs").iterdir())) == 2, "each seed should have one run folder"
    bad = run_script("experiments/baseline_dense.py", "--workers", "0", "--out", str(tmp_path / "w"))
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("error: --workers:"), (
        bad.stderr
    )
    assert not (tmp_path / "w").exists(), "bad --workers must not create the output folder"


def test_experiment_rejects_bad_seeds(tmp_path):
    proc = run_script("experiments/baseline_dense.py", "--seeds", "0", "--out", str(tmp_path / "x"))
    assert proc.returncode == 2, "--seeds 0 should exit with code 2"
    assert proc.stderr.strip().splitlines()[-1].startswith("error: --seeds:"), proc.stderr
    assert not (tmp_path / "x").exists(), "bad input must not create the output folder"


@pytest.mark.slow
def test_snn_model_free_quick(tmp_path):
    out = tmp_path / "snn"
    proc = run_script("experiments/snn_model_free.py", "--quick", "--seeds", "1", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = headline(proc.stdout)
    assert {"steps_to_475_median", "seeds_solved", "env_steps_per_s"} <= set(figures), f"headline: {figures}"
    assert float(figures["env_steps_per_s"]) > 0
    summary = pd.read_csv(out / "summary.csv")
    assert set(summary["agent"]) == {"spiking_actor_critic", "dense_actor_critic"}
    energy = pd.read_csv(out / "energy.csv")
    assert (energy["joules"] >= 0).all() and energy["count"].sum() > 0, "energy.csv should count operations"
    assert set(energy["agent"]) == {"spiking_actor_critic", "dense_actor_critic"}, "energy.csv: both agents"
    assert {"real", "evaluation"} <= set(energy.loc[energy.agent == "spiking_actor_critic", "phase"]), (
        f"the spiking agent's phases: {set(energy['phase'])}"
    )
    for name in ("learning_curves.png", "energy_breakdown.png", "return_vs_energy.png"):
        assert (out / name).stat().st_size > 0, f"{name} missing"


@pytest.mark.slow
def test_activity_sparse_quick(tmp_path):
    out = tmp_path / "sparse"
    proc = run_script("experiments/activity_sparse.py", "--quick", "--seeds", "1", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = headline(proc.stdout)
    assert "skipped_eps_1e-6" in figures and "steps_to_475_dense" in figures, f"headline: {figures}"
    sweep = pd.read_csv(out / "sweep.csv")
    assert list(sweep["setting"]) == ["dense", "eps_1e-6", "eps_1e-3", "eps_1e-2"], (
        f"settings: {sweep['setting']}"
    )
    dense = sweep[sweep.setting == "dense"].iloc[0]
    assert dense["skipped"] == 0 and dense["performed"] == dense["total"] > 0, f"dense row: {dense.to_dict()}"
    sparse = sweep[sweep.setting != "dense"]
    assert (sparse["performed"] + sparse["skipped"] == sparse["total"]).all(), "performed + skipped != total"
    assert (sparse["fraction_skipped"] > 0).all(), f"activity-sparse mode skipped nothing: {sparse.to_dict()}"
    fractions = sparse["fraction_skipped"].to_numpy()
    assert (fractions[1:] >= fractions[:-1]).all(), f"a larger eps should skip at least as much: {fractions}"
    assert (out / "activity_sparse.png").stat().st_size > 0, "figure missing"


@pytest.mark.slow
def test_sample_efficiency_quick(tmp_path):
    out = tmp_path / "se"
    only = "dense_model_free,spiking_in_linear_model,spiking_model_based"
    proc = run_script(
        "experiments/sample_efficiency.py", "--quick", "--seeds", "1", "--only", only, "--out", str(out)
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = headline(proc.stdout)
    assert set(figures) == {
        "mbrl_steps_to_475_median",
        "model_free_steps_to_475_median",
        "ratio",
        "seeds_solved",
    }
    assert figures["seeds_solved"].endswith("/1")
    metrics = pd.read_csv(out / "metrics.csv")
    assert set(metrics["variant"]) == set(only.split(",")), f"variants: {set(metrics['variant'])}"
    mb = metrics[(metrics.variant == "spiking_model_based") & (metrics.policy == "current")]
    assert mb["env_steps"].tolist()[:3] == [0, 100, 200], "evaluations every 100 real steps"
    assert (mb["dream_steps"].diff().dropna() > 0).all(), "each cycle dreams"
    assert (out / "sample_efficiency.png").stat().st_size > 0
    bad = run_script("experiments/sample_efficiency.py", "--only", "nope", "--out", str(tmp_path / "x"))
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("error: --only:"), (
        bad.stderr
    )


@pytest.mark.slow
def test_energy_report_quick(tmp_path):
    out = tmp_path / "energy"
    proc = run_script("experiments/energy_report.py", "--quick", "--seeds", "1", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = headline(proc.stdout)
    assert set(figures) == {
        "snn_nj_per_decision_loihi",
        "snn_nj_per_learning_step_loihi",
        "dense_nj_per_decision_45nm",
        "learning_to_475_j_loihi",
        "mbrl_learning_to_475_j_loihi",
        "dense_learning_to_475_j_45nm",
    }, f"headline: {figures}"
    assert list(figures)[:4] == [
        "snn_nj_per_decision_loihi",
        "snn_nj_per_learning_step_loihi",
        "dense_nj_per_decision_45nm",
        "learning_to_475_j_loihi",
    ], "the issue's four figures come first"
    to_475 = pd.read_csv(out / "to_475.csv")
    assert set(to_475["agent"]) == {"spiking", "model_based", "dense"}, set(to_475["agent"])
    assert float(figures["snn_nj_per_decision_loihi"]) > float(figures["dense_nj_per_decision_45nm"]) > 0
    energy = pd.read_csv(out / "energy.csv")
    model_based = set(energy.loc[energy.agent == "model_based", "phase"])
    assert {"real", "world_model", "dream", "evaluation"} <= model_based, f"model-based phases: {model_based}"
    spiking = energy[(energy.agent != "dense") & (energy.phase != "evaluation")]
    assert (spiking["phase_periods"] > 0).all(), "every spiking phase counts its periods (decisions)"
    for name in ("energy_breakdown.png", "return_vs_energy.png", "raster.png"):
        assert (out / name).stat().st_size > 0, f"{name} missing"


@pytest.mark.slow
@pytest.mark.standalone
def test_benchmark_speed_quick(tmp_path):
    out = tmp_path / "bench"
    proc = run_script("experiments/benchmark_speed.py", "--quick", "--out", str(out), timeout=1500)
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = headline(proc.stdout)
    assert set(figures) == {"cython_steps_per_s", "standalone_steps_per_s", "speedup"}, f"headline: {figures}"
    assert float(figures["standalone_steps_per_s"]) > 0 and float(figures["cython_steps_per_s"]) > 0
    speed = pd.read_csv(out / "speed.csv")
    assert {"cython", "cpp_standalone"} <= set(speed["device"]) and (speed["build_s"] > 0).all()
    assert {"dense", "activity_sparse"} == set(speed["traces"])
    assert (out / "speed.png").stat().st_size > 0


@pytest.mark.slow
def test_parallel_speedup_quick(tmp_path):
    out = tmp_path / "ps"
    proc = run_script("experiments/parallel_speedup.py", "--quick", "--seeds", "1", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    figures = headline(proc.stdout)
    expected = {
        "sequential_wall_s_median",
        "parallel_wall_s_median",
        "speedup",
        "sequential_steps_to_475_median",
        "parallel_steps_to_475_median",
    }
    assert set(figures) == expected, f"headline: {figures}"
    summary = pd.read_csv(out / "summary.csv")
    assert sorted(summary["mode"]) == ["parallel", "sequential"]
    assert (summary["wall_s"] > 0).all(), f"training wall times:\n{summary}"
    metrics = pd.read_csv(out / "metrics.csv")
    assert set(metrics["mode"]) == {"parallel", "sequential"}
    assert metrics.groupby("mode")["env_steps"].max().eq(200).all(), "both modes take the 200 real steps"
    assert (out / "parallel_speedup.png").is_file()


@pytest.mark.slow
def test_acrobot_quick(tmp_path):
    out = tmp_path / "acrobot"
    proc = run_script("experiments/acrobot.py", "--quick", "--seeds", "1", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    figures = headline(proc.stdout)
    assert list(figures)[:3] == ["snn_final_return_median", "dense_final_return_median", "snn_seeds_solved"]
    assert figures["snn_seeds_solved"].endswith("/1")
    summary = pd.read_csv(out / "summary.csv")
    assert set(summary["agent"]) == {"spiking_actor_critic", "dense_actor_critic"}
    metrics = pd.read_csv(out / "metrics.csv")
    assert metrics["return_mean"].between(-500, 0).all(), "Acrobot returns lie in [-500, 0]"
    assert set(metrics.loc[metrics.policy == "current", "env_steps"]) == {0, 300, 600}
    assert (out / "learning_curves.png").is_file()
