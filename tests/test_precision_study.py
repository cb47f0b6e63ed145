"""``experiments/precision_study.py``: the quick run end to end, its bad input, and its smallest solving width."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import script_helpers

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "experiments" / "precision_study.py"
KEYS = [
    "fixed8_mbrl_steps_to_475_median",
    "float_mbrl_steps_to_475_median",
    "fixed8_seeds_solved",
    "fixed8_wm_nmse_1000",
    "min_weight_bits_solving",
]


def load_script():
    return script_helpers.load_script(SCRIPT)


def run_script(*args: str, timeout: int = 900):
    return script_helpers.run_script(SCRIPT, *args, timeout=timeout)


def test_precision_study_quick(tmp_path):
    out = tmp_path / "prec"
    proc = run_script("--quick", "--seeds", "1", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    last = proc.stdout.strip().splitlines()[-1]
    figures = dict(item.split("=", 1) for item in last.split())
    assert list(figures) == KEYS, f"headline: {last}"
    for key in (
        "fixed8_mbrl_steps_to_475_median",
        "float_mbrl_steps_to_475_median",
        "min_weight_bits_solving",
    ):
        float(figures[key])  # a number or nan
    assert figures["fixed8_seeds_solved"] in ("0/1", "1/1")
    nmse = float(figures["fixed8_wm_nmse_1000"])
    assert math.isfinite(nmse) and nmse > 0, "the world model is trained and scored"

    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["variant"]) == ["w4", "w8", "float"]
    assert summary.loc[summary.variant == "w4", "weight_bits"].item() == 4
    assert (summary["wm_nmse_median"] > 0).all()
    per_seed = pd.read_csv(out / "per_seed.csv")
    assert len(per_seed) == 3 * 3, "three variants x (mbrl, model_free, wm) x one seed"
    assert set(per_seed["part"]) == {"mbrl", "model_free", "wm"}
    agents = per_seed[per_seed.part != "wm"]
    solved = agents.dropna(subset=["steps_to_475"])
    assert solved["loihi_j_to_475"].notna().all(), "a solved run is priced"
    assert (out / "precision.png").stat().st_size > 0
    # each fixed-point run is really fixed-point, in the agent and (model-based) in the world model
    from nmbrl_brian.config import load_config_json

    run = next((out / "mbrl" / "w4" / "runs").iterdir())
    config = load_config_json(run / "config.json")
    assert (config.network.numerics, config.network.weight_bits) == ("fixed", 4)
    assert (config.world_model.network.numerics, config.world_model.network.weight_bits) == ("fixed", 4)
    run = next((out / "model_free" / "float" / "runs").iterdir())
    assert load_config_json(run / "config.json").network.numerics == "float"


@pytest.mark.parametrize(
    "bad", [["--weight-bits", "0"], ["--only", "nope"], ["--trace-bits", "6"], ["--seeds", "0"]]
)
def test_bad_input_exits_2_before_any_output(tmp_path, bad):
    out = tmp_path / "x"
    proc = run_script("--quick", "--out", str(out), *bad, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(proc.stderr.strip().splitlines()) == 1 and bad[0] in proc.stderr
    assert not out.exists()


def test_min_weight_bits_solving_needs_four_of_five():
    script = load_script()
    summary = pd.DataFrame(
        {
            "variant": ["w4", "w6", "w8", "w8_t8", "float"],
            "weight_bits": [4, 6, 8, 8, None],
            "mbrl_seeds_solved": [3, 4, 5, 5, 5],
        }
    )
    assert script.min_weight_bits_solving(summary, 5) == 6
    assert script.min_weight_bits_solving(summary.assign(mbrl_seeds_solved=[3, 3, 3, 5, 5]), 5) != 8, (
        "a trace variant does not count as a weight width"
    )
    assert math.isnan(script.min_weight_bits_solving(summary.assign(mbrl_seeds_solved=[3, 3, 3, 5, 5]), 5))
    assert script.min_weight_bits_solving(summary.assign(mbrl_seeds_solved=[1, 0, 0, 0, 0]), 1) == 4


def test_full_plan_budgets_and_numerics():
    """The full study: compiled runs, stopping at 475, fixed numerics on both networks of the model-based agent."""
    from nmbrl_brian.config import load_config

    script = load_script()
    plan = script.variants((4, 6, 8, 12), (8, 10))
    assert list(plan) == ["w4", "w6", "w8", "w12", "w8_t8", "w8_t10", "float"]
    budgets = {"mbrl": 1500, "model_free": 40_000}
    for part, (path, overrides) in script.run_plan(False).items():
        config = load_config(
            path, [*overrides, *script.numerics_overrides(plan["w8_t10"], script.PREFIXES[part])]
        )
        assert config.total_env_steps == budgets[part] and config.stop_at_return == 475
        assert config.device == "cpp_standalone"
        assert (config.network.numerics, config.network.weight_bits, config.network.trace_bits) == (
            "fixed",
            8,
            10,
        )
        if part == "mbrl":
            assert config.world_model.network.trace_bits == 10
