"""``experiments/sample_efficiency.py --env Acrobot-v1``: the quick run end to end, the world-model
figures read from a ``world_model_quality.py`` folder, and bad input refused before anything is written."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import script_helpers

from nmbrl_brian.config import load_config

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = "experiments/sample_efficiency.py"
VARIANTS = {
    "dense_model_free",
    "spiking_model_free",
    "spiking_model_free_shaped",
    "spiking_model_based",
    "spiking_in_direct_model",
    "spiking_in_linear_model",
    "spiking_in_perfect_model",
}
KEYS = [
    "acrobot_mbrl_steps_to_minus100_median",
    "acrobot_model_free_steps_median",
    "ratio",
    "seeds_solved",
    "acrobot_wm_rollout25_nmse_spiking",
    "acrobot_wm_rollout25_nmse_direct",
    "acrobot_wm_nmse_1000",
    "acrobot_model_free_shaped_steps_median",
    "ratio_to_shaped",
]

headline = script_helpers.headline


def load_script():
    return script_helpers.load_script(SCRIPT)


def run_script(*args: str, timeout: int = 900):
    return script_helpers.run_script(*args, timeout=timeout)


def wm_folder(path: Path, env_id: str = "Acrobot-v1") -> Path:
    """A small world_model_quality.py summary.csv: snn and snn_direct at 1,000 and 5,000 transitions."""
    rows = []
    for model, base in (("snn", 0.01), ("snn_direct", 0.02), ("linear", 0.5)):
        for n_train, scale in ((1000, 2.0), (5000, 1.0)):
            for policy, bias in (("random", 0.0), ("good", 7.0)):
                rows += [
                    (model, policy, "nmse", "mean", 1, n_train, base * scale + bias),
                    (model, policy, "rollout_nmse", "mean", 25, n_train, 10 * base * scale + bias),
                    (model, policy, "rollout_nmse", "mean", 10, n_train, 99.0),
                    (model, policy, "nmse", "dim_0", 1, n_train, 99.0),
                ]
    path.mkdir(parents=True)
    cols = ["model", "policy", "metric", "dim", "k", "n_train", "value"]
    pd.DataFrame(rows, columns=cols).to_csv(path / "summary.csv", index=False)
    (path / "config.json").write_text(json.dumps({"env_id": env_id}))
    return path


def test_wm_quality_figures_read_the_random_policy_medians(tmp_path):
    se = load_script()
    figures = se.wm_quality_figures(str(wm_folder(tmp_path / "wm")), "Acrobot-v1")
    assert figures == pytest.approx(
        {
            "acrobot_wm_rollout25_nmse_spiking": 0.1,  # snn, 25 steps, largest N (5,000)
            "acrobot_wm_rollout25_nmse_direct": 0.2,
            "acrobot_wm_nmse_1000": 0.02,  # snn, one step, N = 1,000
        }
    )
    assert all(math.isnan(v) for v in se.wm_quality_figures(None, "Acrobot-v1").values())
    # a table without the ablation: its figure is nan, the others are still read
    table = pd.read_csv(tmp_path / "wm" / "summary.csv")
    table[table.model != "snn_direct"].to_csv(tmp_path / "wm" / "summary.csv", index=False)
    partial = se.wm_quality_figures(str(tmp_path / "wm"), "Acrobot-v1")
    assert math.isnan(partial["acrobot_wm_rollout25_nmse_direct"])
    assert partial["acrobot_wm_nmse_1000"] == pytest.approx(0.02)


def test_acrobot_schedule_every_250_then_eval_every_1000():
    se = load_script()
    plan = se.acrobot_variants(quick=False)
    assert set(plan) == VARIANTS
    assert se.THRESHOLDS == {"CartPole-v1": 475.0, "Acrobot-v1": -100.0}
    _, mb = plan["spiking_model_based"]
    assert f"eval_schedule=[{','.join(str(p) for p in range(250, 5001, 250))}]" in mb
    assert {"eval_every=1000", "eval_episodes=10", "total_env_steps=5000", "stop_at_return=-100"} <= set(mb)
    _, direct = plan["spiking_in_direct_model"]
    assert {"world_model.learning_rate=0", "world_model.readout_learning_rate=0"} <= set(direct)
    direct_config = load_config(plan["spiking_in_direct_model"][0], direct, seed=0).world_model
    assert direct_config.readout_gain == 0.0, "the direct pathway alone is not normalised with the readout"
    assert load_config(plan["spiking_model_based"][0], mb, seed=0).world_model.readout_gain > 0
    _, mf = plan["spiking_model_free"]
    assert "total_env_steps=100000" in mf and not any(o.startswith("stop_at_return") for o in mf)
    path, shaped = plan["spiking_model_free_shaped"]
    assert path.name == "acrobot_snn.toml" and set(shaped) - set(mf) == {"agent.reward_shaping=1.0"}, (
        "the control differs from the model-free agent by acrobot_mbrl.toml's shaping alone"
    )
    for quick in (False, True):  # every variant's overrides are valid for its config
        for name, (path, overrides) in se.acrobot_variants(quick).items():
            config = load_config(path, overrides, seed=0)
            assert config.env_id == "Acrobot-v1", name
            if name.startswith("spiking_in") or name == "spiking_model_based":
                assert config.stop_at_return == -100 and config.model_based.model in (
                    "spiking",
                    "linear",
                    "perfect",
                )


@pytest.mark.slow
def test_acrobot_quick_end_to_end(tmp_path):
    out = tmp_path / "se"
    wm = wm_folder(tmp_path / "wm")
    proc = run_script(
        SCRIPT, "--env", "Acrobot-v1", "--quick", "--seeds", "1", "--wm-quality", str(wm), "--out", str(out)
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = headline(proc.stdout)
    assert list(figures) == KEYS, f"headline: {figures}"
    assert figures["seeds_solved"].endswith("/1")
    assert float(figures["acrobot_wm_rollout25_nmse_spiking"]) == pytest.approx(0.1)
    assert float(figures["acrobot_wm_nmse_1000"]) == pytest.approx(0.02)
    summary = pd.read_csv(out / "summary.csv")
    assert set(summary["variant"]) == VARIANTS, f"variants: {set(summary['variant'])}"
    metrics = pd.read_csv(out / "metrics.csv")
    for variant in ("spiking_model_based", "spiking_in_direct_model", "dense_model_free"):
        rows = metrics[(metrics.variant == variant) & (metrics.policy == "current")]
        assert rows["env_steps"].tolist() == [0, 250, 500], f"{variant}: evaluations every 250 real steps"
    # steps to the threshold are read at -100, not 475 (binds only if a quick evaluation reaches -100)
    current = metrics[metrics.policy == "current"]
    for variant, row in summary.set_index("variant").iterrows():
        hit = current[(current.variant == variant) & (current.return_mean >= -100)]["env_steps"]
        expected = float(hit.iloc[0]) if len(hit) else math.nan
        assert row["steps_to_threshold"] == pytest.approx(expected, nan_ok=True), variant
    mb = metrics[(metrics.variant == "spiking_in_direct_model") & (metrics.policy == "current")]
    assert (mb["dream_steps"].diff().dropna() > 0).all(), "each cycle dreams"
    assert (out / "sample_efficiency.png").stat().st_size > 0


@pytest.mark.parametrize(
    "args, field",
    [
        (("--env", "Pong-v5"), "--env"),
        (("--env", "Acrobot-v1", "--with-peers"), "--with-peers"),
        (("--env", "Acrobot-v1", "--wm-quality", "missing_folder"), "--wm-quality"),
        (("--wm-quality", "missing_folder"), "--wm-quality"),
        (("--env", "Acrobot-v1", "--only", "spiking_in_no_model"), "--only"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, args, field):
    out = tmp_path / "x"
    bad = run_script(SCRIPT, *args, "--out", str(out), timeout=300)
    assert bad.returncode == 2, bad.stderr
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {field}:"), bad.stderr
    assert not out.exists(), "nothing may be written on bad input"


def test_wm_quality_of_another_environment_is_refused(tmp_path):
    wm = wm_folder(tmp_path / "wm", env_id="CartPole-v1")
    out = tmp_path / "x"
    bad = run_script(SCRIPT, "--env", "Acrobot-v1", "--wm-quality", str(wm), "--out", str(out), timeout=300)
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error: --wm-quality:"), bad.stderr
    assert "CartPole-v1" in bad.stderr and not out.exists()


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Acrobot-v1"])
def test_stop_at_threshold_stops_every_variant_there_and_changes_nothing_else(env_id):
    se = load_script()
    plan = se.acrobot_variants(quick=False) if env_id == "Acrobot-v1" else se.variants(quick=False)
    threshold = se.THRESHOLDS[env_id]
    stopping = se.stopping_at(plan, threshold)
    assert set(stopping) == set(plan)
    for name, (path, overrides) in stopping.items():
        base_path, base = plan[name]
        assert path == base_path and overrides[: len(base)] == base, f"{name}: other settings changed"
        config = load_config(path, overrides, seed=0)
        assert config.stop_at_return == threshold, f"{name} stops at {config.stop_at_return}"
        assert config.total_env_steps == load_config(path, base, seed=0).total_env_steps, (
            f"{name}: budget changed"
        )
    _, model_free = plan["spiking_model_free"]
    assert load_config(plan["spiking_model_free"][0], model_free, seed=0).stop_at_return == math.inf, (
        "without the flag the model-free agent trains to its budget"
    )
