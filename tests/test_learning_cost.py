"""``experiments/learning_cost.py``: the quick run end to end, and its to-475 bookkeeping on made-up runs."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pandas as pd
import pytest
import script_helpers

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "experiments" / "learning_cost.py"
KEYS = [
    "mbrl_steps_to_475_median",
    "mbrl_mj_to_475_loihi_median",
    "mbrl_wall_s_to_475_median",
    "snn_nj_per_decision_loihi",
    "dense_mj_to_475_loihi_median",
    "seeds_solved",
    "seeds_final_475",
]


def load_script():
    return script_helpers.load_script(SCRIPT)


def run_script(*args: str, timeout: int = 600):
    return script_helpers.run_script(SCRIPT, *args, timeout=timeout)


def test_learning_cost_quick(tmp_path):
    from nmbrl_brian.energy import load_profiles

    out = tmp_path / "cost"
    proc = run_script("--quick", "--seeds", "1", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    figures = dict(item.split("=", 1) for item in lines[-1].split())
    assert list(figures) == KEYS, f"headline: {lines[-1]}"
    for key in KEYS[:5]:
        float(figures[key])  # a number or nan
    assert figures["seeds_solved"].endswith("/1") and figures["seeds_final_475"].endswith("/1")
    assert math.isfinite(float(figures["snn_nj_per_decision_loihi"])), (
        "the spiking agent's decisions cost energy"
    )
    assert float(figures["snn_nj_per_decision_loihi"]) > 0
    assert any(line.split()[:2] == ["model_based", "0"] for line in lines[:-1]), "a per-seed table is printed"

    profiles = set(load_profiles())
    per_seed = pd.read_csv(out / "per_seed.csv")
    assert list(per_seed.columns[:7]) == [
        "agent",
        "seed",
        "profile",
        "joules_to_475",
        "steps_to_475",
        "wall_s_to_475",
        "final_return",
    ]
    assert len(per_seed) == 3 * len(profiles)
    for agent, rows in per_seed.groupby("agent"):
        assert set(rows["profile"]) == profiles and list(rows["seed"].unique()) == [0], agent
    assert set(per_seed["agent"]) == {"model_based", "spiking", "dense"}
    final_steps = per_seed.groupby("agent")["final_env_steps"].first().to_dict()
    assert final_steps == {"dense": 300, "model_based": 200, "spiking": 300}, "each run goes its whole budget"
    summary = pd.read_csv(out / "summary.csv")
    assert {
        "agent",
        "profile",
        "seeds_solved",
        "seeds_final_475",
        "steps_to_475_median",
        "joules_to_475_median",
        "wall_s_to_475_median",
    } <= set(summary.columns)
    assert len(summary) == 3 * len(profiles) and (summary["seeds"] == 1).all()
    per_decision = pd.read_csv(out / "per_decision.csv")
    assert list(per_decision.columns) == ["agent", "profile", "nj_per_decision", "nj_per_learning_step"]
    assert set(per_decision["agent"]) == {"spiking", "model_based"}
    assert (per_decision["nj_per_decision"] > 0).all()
    assert (per_decision["nj_per_learning_step"] > per_decision["nj_per_decision"]).all(), (
        "learning adds weight updates to a decision's cost"
    )
    for figure in ("return_vs_joules.png", "return_vs_wall_s.png"):
        assert (out / figure).stat().st_size > 0


def test_to_475_bookkeeping_on_made_up_runs():
    """Steps, joules and seconds are read at the FIRST evaluation >= 475; the final return is the last
    training evaluation (not the kept policy's); an unsolved seed gives NaN and counts as infinite."""
    script = load_script()
    metrics = pd.DataFrame(
        {
            "env_steps": [0, 100, 200, 300, 300, 0, 100],
            "return_mean": [10.0, 480.0, 300.0, 500.0, 20.0, 10.0, 100.0],
            "wall_s": [0.0, 5.0, 9.0, 12.0, 12.0, 0.0, 4.0],
            "seed": [0, 0, 0, 0, 0, 1, 1],
            "policy": ["current"] * 4 + ["kept"] + ["current"] * 2,
        }
    )
    curves = pd.DataFrame(
        {
            "agent": "model_based",
            "seed": [0, 0, 0, 0, 1, 1],
            "env_steps": [0, 100, 200, 300, 0, 100],
            "profile": "loihi",
            "joules": [0.0, 0.002, 0.004, 0.006, 0.0, 0.001],
        }
    )
    per_seed = script.per_seed_table({"model_based": metrics}, curves, ["loihi"])
    first = per_seed[per_seed.seed == 0].iloc[0]
    assert (first.steps_to_475, first.joules_to_475, first.wall_s_to_475) == (100, 0.002, 5.0)
    assert first.final_return == 500.0 and first.final_env_steps == 300
    second = per_seed[per_seed.seed == 1].iloc[0]
    assert math.isnan(second.steps_to_475) and math.isnan(second.joules_to_475)
    summary = script.summary_table(per_seed).iloc[0]
    assert (summary.seeds_solved, summary.seeds_final_475) == (1, 1)
    assert math.isnan(summary.steps_to_475_median), "one of two seeds solved: the median is not finite"
    assert summary.joules_to_475_median == 0.002


def test_never_stops_at_475_and_budgets():
    """Every run keeps training after 475 (a solved seed must stay solved to count at the end)."""
    from nmbrl_brian.config import load_config

    script = load_script()
    budgets = {"model_based": 1500, "spiking": 40_000, "dense": 20_000}
    for agent, (path, overrides) in script.plan(False, None).items():
        config = load_config(path, overrides)
        assert config.stop_at_return == math.inf, agent
        assert config.total_env_steps == budgets[agent], agent
    assert load_config(*script.plan(False, None)["spiking"]).device == "cpp_standalone"
    # the make run job as configured (compiled); --quick runs it in runtime mode, without a compile
    assert load_config(*script.plan(False, None)["model_based"]).device == "cpp_standalone"
    assert load_config(*script.plan(True, None)["model_based"]).device == "runtime"


def test_with_peers_without_stable_baselines3(tmp_path):
    if importlib.util.find_spec("stable_baselines3") is not None:
        pytest.skip("stable-baselines3 is installed")
    proc = run_script("--quick", "--seeds", "1", "--with-peers", "--out", str(tmp_path / "x"), timeout=120)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "--with-peers" in proc.stderr
    assert not (tmp_path / "x" / "model_based").exists(), "the missing extra is reported before any training"


def test_dense_evaluations_are_taken_out_of_its_training_energy():
    """The dense twin counts its greedy evaluations in its one phase: at 1 J per decision and 10 J per
    training step, evaluations of means 5, 20, 50 over 2 episodes leave 0, 1000 and 2000 J of training."""
    script = load_script()
    metrics = pd.DataFrame({"env_steps": [0, 100, 200], "return_mean": [5.0, 20.0, 50.0]})
    eval_j = [10.0, 50.0, 150.0]  # 2 episodes x cumulative means (5, 25, 75) x 1 J
    curve = pd.DataFrame(
        {
            "env_steps": [0, 100, 200] * 2,
            "profile": ["a"] * 3 + ["b"] * 3,
            "joules": [e + t for e, t in zip(eval_j, [0.0, 1000.0, 2000.0])]
            + [3 * (e + t) for e, t in zip(eval_j, [0.0, 1000.0, 2000.0])],
        }
    )
    out = script.without_evaluations(curve, metrics, episodes=2)
    assert out["joules"].tolist() == pytest.approx([0.0, 1000.0, 2000.0, 0.0, 3000.0, 6000.0])
    # before training the energy is 0 exactly, not a rounding residue (a log axis would draw it)
    # (with these values j - (j / d) * d is 1.7e-21, not 0)
    awkward = pd.DataFrame({"env_steps": [0, 100], "profile": ["a", "a"], "joules": [1.23456789e-05, 1.0]})
    first = pd.DataFrame({"env_steps": [0, 100], "return_mean": [96.5, 100.0]})
    assert script.without_evaluations(awkward, first, episodes=2)["joules"].iloc[0] == 0.0
