"""The spiking world model: interface contract, learning, checkpoints, standalone re-runs, experiment."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from gymnasium.utils.env_checker import check_env

from nmbrl_brian.envs import EnvironmentWrapper, WorldModelEnv
from nmbrl_brian.equations.world_model import DEFAULT_WORLD_MODEL_NETWORK, WorldModelConfig
from nmbrl_brian.errors import ConfigError
from nmbrl_brian.world_models.dataset import collect_transitions
from nmbrl_brian.world_models.evaluation import one_step_metrics
from nmbrl_brian.world_models.snn_world_model import SNNWorldModel

ROOT = Path(__file__).resolve().parents[1]
N_TRAIN = 400
#: A small world model for tests: 120 neurons, one run per epoch of N_TRAIN transitions, 3 epochs.
SMALL = WorldModelConfig(
    network=dataclasses.replace(DEFAULT_WORLD_MODEL_NETWORK, n_recurrent=120),
    epochs=3,
    min_updates=0,
    periods_per_run=N_TRAIN,
)


def nmse_mean(model, data) -> float:
    df = one_step_metrics(model, data)
    return float(df.loc[(df.metric == "nmse") & (df.dim == "mean"), "value"].iloc[0])


@pytest.fixture(scope="module")
def cartpole_data():
    env = EnvironmentWrapper("CartPole-v1")
    return collect_transitions(env, None, N_TRAIN, seed=0), collect_transitions(env, None, 200, seed=1)


@pytest.fixture(scope="module")
def trained(cartpole_data):
    """A runtime model after 1 and after 3 epochs (held-out NMSE recorded after each)."""
    from nmbrl_brian.devices import select_device

    select_device("runtime")
    train, held_out = cartpole_data
    model = SNNWorldModel.for_env("CartPole-v1", config=SMALL)
    logs, nmse = [], []
    for _ in range(SMALL.epochs):
        logs.append(model.train_epoch(train))
        nmse.append(nmse_mean(model, held_out))
    return model, logs, nmse


def test_config_errors_name_the_field():
    cases = {
        "error_steps": {"error_steps": 0},
        "termination": {"termination": "sometimes"},
        "readout_learning_rate": {"readout_learning_rate": -1.0},
        "network.input_kind": {
            "network": dataclasses.replace(DEFAULT_WORLD_MODEL_NETWORK, input_kind="poisson")
        },
        "network.update_interval_steps": {
            "network": dataclasses.replace(DEFAULT_WORLD_MODEL_NETWORK, update_interval_steps=7)
        },
    }
    for field, kwargs in cases.items():
        with pytest.raises(ConfigError, match=f"^world_model.{field}:"):
            WorldModelConfig(**kwargs)
    with pytest.raises(ConfigError, match="^world_model.error_steps:"):
        WorldModelConfig(error_steps=11)  # longer than the 10-step period
    with pytest.raises(ConfigError, match="^world_model.termination:"):
        SNNWorldModel.for_env(
            "CartPole-v1", use_termination_fn=False, config=WorldModelConfig(termination="given")
        )


def test_training_lowers_prediction_error(trained):
    model, logs, nmse = trained
    assert len(logs) == 3 and all(row["n_transitions"] == N_TRAIN for row in logs), f"training log: {logs}"
    assert logs[-1]["online_nmse"] < 0.5 * logs[0]["online_nmse"], (
        f"online error did not fall over 3 epochs: {[round(r['online_nmse'], 4) for r in logs]}"
    )
    assert nmse[-1] < nmse[0], f"held-out NMSE did not fall from epoch 1 to 3: {nmse}"
    assert nmse[-1] < 1e-3, (
        f"held-out one-step NMSE after 3 epochs on {N_TRAIN} transitions is {nmse[-1]:.2g}"
    )
    assert model.epochs_done == 3 and model.fitted, "epochs_done/fitted not updated by train_epoch"


def test_predictions_do_not_depend_on_batch_order(trained, cartpole_data):
    """Every period starts from rest, so a pair's prediction is the same alone or in any batch."""
    model, _, _ = trained
    _, held_out = cartpole_data
    obs, act = held_out.obs[:6], held_out.action[:6]
    batch = model.predict(obs, act)
    reverse = model.predict(obs[::-1], act[::-1])
    single = model.predict(obs[2:3], act[2:3])
    np.testing.assert_allclose(
        reverse[0][::-1], batch[0], atol=1e-12, err_msg="batch order changed predictions"
    )
    np.testing.assert_allclose(
        single[0][0], batch[0][2], atol=1e-12, err_msg="a lone pair predicted differently"
    )
    before = {k: v.copy() for k, v in model.weights.items()}
    model.predict(obs, act)
    for key, w in before.items():
        np.testing.assert_array_equal(model.weights[key], w, err_msg=f"predict() changed weights {key}")


def test_prediction_runs_record_spikes_on_request(trained, cartpole_data):
    model, _, _ = trained
    _, held_out = cartpole_data
    model.recorded_spikes(clear=True)
    model.predict(held_out.obs[:3], held_out.action[:3])
    assert len(model.recorded_spikes()[0]) == 0, "spikes recorded without record_spikes"
    model.record_spikes = True
    try:
        model.predict(held_out.obs[:3], held_out.action[:3])
        model.predict(held_out.obs[3:5], held_out.action[3:5])
    finally:
        model.record_spikes = False
    t_ms, neuron = model.recorded_spikes(clear=True)
    assert len(t_ms) > 0 and t_ms.min() >= 0 and t_ms.max() < 5 * model.period_ms, (
        f"spikes of 5 transitions laid end to end should lie in [0, {5 * model.period_ms}) ms: {t_ms}"
    )
    assert np.any(t_ms >= 3 * model.period_ms), "the second prediction's spikes follow the first's"
    assert neuron.max() < SMALL.network.n_recurrent and len(model.recorded_spikes()[0]) == 0


def test_step_and_reset_honour_the_world_model_contract(trained):
    model, _, _ = trained
    obs, info = model.reset(seed=3)
    assert model.observation_space.contains(obs) and isinstance(info, dict), f"reset gave {obs!r}, {info!r}"
    again, _ = model.reset(seed=3)
    np.testing.assert_array_equal(obs, again, err_msg="reset(seed) is not reproducible")
    first = model.step(1)
    assert len(first) == 5, f"step should return 5 values, got {len(first)}"
    nxt, reward, terminated, truncated, info = first
    assert model.observation_space.contains(nxt), f"step observation outside the space: {nxt!r}"
    assert isinstance(reward, float) and isinstance(terminated, bool) and truncated is False, (
        f"step types: {type(reward)}, {type(terminated)}, {truncated!r}"
    )
    assert abs(reward - 1.0) < 0.1, f"CartPole reward is 1 per step, the model predicted {reward}"
    model.reset(seed=3)
    np.testing.assert_array_equal(
        model.step(1)[0], nxt, err_msg="the same state and action gave another step"
    )
    # The given termination function (not a learned readout) decides: the pole is already past 12 degrees.
    model.reset(options={"obs": np.array([0.0, 0.0, 0.3, 1.0], dtype=np.float32)})
    nxt, _, terminated, _, info = model.step(0)
    assert terminated and info["term_prob"] == 1.0, (
        f"from theta = 0.3 rad the step to {nxt} should be terminal by CartPole's bounds, got {terminated}, {info}"
    )


def test_gymnasium_check_env_passes(trained):
    model, _, _ = trained
    check_env(WorldModelEnv(model, max_episode_steps=20), skip_render_check=True)


def test_state_dict_round_trip(trained, cartpole_data):
    model, _, _ = trained
    _, held_out = cartpole_data
    state = model.state_dict()
    fresh = SNNWorldModel.for_env("CartPole-v1", config=SMALL)
    fresh.load_state_dict(state)
    assert fresh.epochs_done == 3, f"epochs_done not restored: {fresh.epochs_done}"
    a = model.predict(held_out.obs[:5], held_out.action[:5])[0]
    b = fresh.predict(held_out.obs[:5], held_out.action[:5])[0]
    np.testing.assert_allclose(b, a, atol=1e-12, err_msg="a restored checkpoint predicts differently")


@pytest.mark.parametrize("whiten", [True, False])
def test_signed_state_code_and_direct_pathway(cartpole_data, whiten):
    """Beside the population code, D signed inputs carry the whitened (or standardised) state;
    they, the action and the bias neurons reach the readouts of Δs and reward directly."""
    train, _ = cartpole_data
    cfg = dataclasses.replace(SMALL, whiten_state=whiten, state_current=2.0, termination="learned")
    model = SNNWorldModel.for_env("CartPole-v1", config=cfg)
    model.train_epoch(train.subset(slice(0, 20)))  # fits the codes on these 20 transitions
    n_pop = 4 * cfg.encoding.neurons_per_dim
    assert model.n_inputs == n_pop + 4 + 2 * cfg.action_neurons_per_action + cfg.bias_neurons, (
        f"expected 4 signed state inputs beside the population code, got {model.n_inputs} inputs"
    )
    z = model.encode(train.obs[:20], train.action[:20])[:, n_pop : n_pop + 4] / 2.0
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-9, err_msg="the signed state code is not centred")
    cov = np.cov(z, rowvar=False, bias=True)
    np.testing.assert_allclose(
        np.diag(cov), 1.0, atol=1e-6, err_msg="the signed state code has no unit variance"
    )
    off_diagonal = np.max(np.abs(cov - np.diag(np.diag(cov))))
    if whiten:
        assert off_diagonal < 1e-6, f"whitened state inputs are still correlated: {cov}"
    else:
        assert off_diagonal > 0.1, f"standardised CartPole states should stay correlated: {cov}"
    mask = model.direct_connections()
    assert not mask[:n_pop].any(), "the population code should not reach the readouts directly"
    assert mask[n_pop:, :5].all() and not mask[:, 5].any(), (
        "signed state, action and bias inputs should reach the Δs and reward readouts, not termination"
    )
    assert len(model.weights["w_direct"]) == mask.sum(), "one direct weight per direct connection"
    assert np.any(model.weights["w_direct"] != 0), "one epoch should change the direct weights"


def test_passes_scale_with_the_data(cartpole_data):
    """fit() makes at least min_updates updates; the step sizes decay over exactly those passes."""
    train, _ = cartpole_data
    cfg = dataclasses.replace(SMALL, epochs=2, min_updates=150, final_learning_rate_fraction=0.5)
    assert cfg.epochs_for(50) == 3 and cfg.epochs_for(400) == 2, "passes should be max(epochs, ceil(150 / N))"
    model = SNNWorldModel.for_env("CartPole-v1", config=cfg)
    model.fit(train.subset(slice(0, 50)))
    rates = [row["direct_learning_rate"] for row in model.training_log]
    assert model.epochs_done == 3, f"fit on 50 transitions should make 3 passes, made {model.epochs_done}"
    np.testing.assert_allclose(
        rates,
        np.array([1.0, 0.75, 0.5]) * cfg.direct_learning_rate,
        err_msg="the direct step size should decay linearly to the final fraction over the 3 passes",
    )


def test_learned_termination_readout(cartpole_data):
    train, _ = cartpole_data
    cfg = dataclasses.replace(SMALL, epochs=1, termination="learned")
    model = SNNWorldModel.for_env("CartPole-v1", config=cfg)
    assert model.termination_fn is None and model.n_outputs == 6, "termination='learned' should add a readout"
    model.fit(train)
    _, _, p = model.predict(train.obs[:50], train.action[:50])
    assert np.all((p >= 0) & (p <= 1)), f"termination probabilities outside [0, 1]: {p}"


@pytest.mark.slow
@pytest.mark.standalone
def test_standalone_rerun_matches_fresh_build(tmp_path, cartpole_data):
    """Epoch 2 by re-running the binary with run_args == epoch 2 in a freshly built project."""
    from nmbrl_brian.devices import reset_device, select_device

    train, held_out = cartpole_data
    cfg = dataclasses.replace(SMALL, periods_per_run=200, epochs=2)
    data = train.subset(slice(0, 200))
    select_device("cpp_standalone", tmp_path / "rerun")
    try:
        rerun = SNNWorldModel.for_env("CartPole-v1", config=cfg)
        rerun.train_epoch(data)
        after_epoch_1 = rerun.state_dict()
        epoch_2 = rerun.train_epoch(data)
        rerun.predict(held_out.obs[:20], held_out.action[:20])
        assert len(rerun.timings["train_run"]) == 2 and len(rerun.timings["build"]) == 2, (
            f"expected one construction and one compilation, got {rerun.timings}"
        )
    finally:
        reset_device()
    select_device("cpp_standalone", tmp_path / "fresh")
    try:
        fresh = SNNWorldModel.for_env("CartPole-v1", config=cfg, rebuild_each_run=True)
        fresh.load_state_dict(after_epoch_1)
        fresh_epoch_2 = fresh.train_epoch(data)
    finally:
        reset_device()
    for key, w in rerun.weights.items():
        np.testing.assert_allclose(
            fresh.weights[key],
            w,
            rtol=0,
            atol=1e-12,
            err_msg=f"re-run and fresh build disagree on {key} after epoch 2",
        )
    # The readouts of every period during epoch 2 are the predictions made before each update.
    assert abs(fresh_epoch_2["online_nmse"] - epoch_2["online_nmse"]) < 1e-12, (
        f"epoch-2 predictions differ: re-run {epoch_2['online_nmse']}, fresh build {fresh_epoch_2['online_nmse']}"
    )


#: The models world_model_quality.py reports: the full spiking model, its two ablations, the baselines.
FIVE_MODELS = ("snn", "snn_direct", "snn_spiking", "linear", "mlp")


def run_quality(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run experiments/world_model_quality.py with ``args`` from the repository root."""
    return subprocess.run(
        [sys.executable, "experiments/world_model_quality.py", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


@pytest.mark.slow
def test_world_model_quality_quick(tmp_path):
    out = tmp_path / "wmq"
    proc = run_quality("--quick", "--seeds", "1", "--out", str(out), timeout=600)
    assert proc.returncode == 0, f"script failed:\n{proc.stderr[-3000:]}"
    last = proc.stdout.strip().splitlines()[-1]
    figures = dict(item.split("=", 1) for item in last.split())
    expected = ["one_step_nmse", "linear_nmse", "mlp_nmse", "rollout25_nmse", "termination_recall"]
    expected += ["nmse_100", "nmse_300"]  # the quick default of --transitions
    expected += ["direct_nmse", "spiking_nmse", "direct_rollout25_nmse", "spiking_rollout25_nmse"]
    expected += ["linear_rollout25_nmse", "mlp_rollout25_nmse", "rollout25_over_direct"]
    assert list(figures) == expected, f"last line should be {expected} as key=value, got {last!r}"
    assert float(figures["one_step_nmse"]) < 0.5, f"quick SNN one-step NMSE is {figures['one_step_nmse']}"
    assert figures["nmse_300"] == figures["one_step_nmse"], "one_step_nmse is the figure at the largest size"
    metrics = pd.read_csv(out / "metrics.csv")
    assert {"model", "policy", "metric", "dim", "k", "value", "seed", "n_train"} <= set(metrics.columns), (
        f"metrics.csv columns: {list(metrics.columns)}"
    )
    assert set(metrics["n_train"]) == {100, 300}, f"training sizes in metrics.csv: {set(metrics['n_train'])}"
    summary = pd.read_csv(out / "summary.csv")
    one_step = summary[(summary.model == "snn") & (summary.policy == "random") & (summary.metric == "nmse")]
    assert len(one_step) == 2 and f"{one_step.value.iloc[-1]:.4g}" == figures["nmse_300"], (
        f"summary.csv should hold the headline medians per size:\n{one_step}"
    )
    assert set(metrics["model"]) == set(FIVE_MODELS), f"models in metrics.csv: {set(metrics['model'])}"
    assert set(metrics[metrics.metric == "rollout_nmse"]["k"]) >= {25}, "25-step rollouts missing"
    assert set(metrics["policy"]) == {"random", "good"}, f"policies in metrics.csv: {set(metrics['policy'])}"
    for name in ("trajectories.png", "raster.png", "nmse_vs_transitions.png"):
        assert (out / name).stat().st_size > 0, f"{name} missing or empty"
    again = run_quality("--quick", "--seeds", "1", "--out", str(out))
    assert again.returncode == 0 and "seed 0: finished earlier" in again.stdout, (
        f"a re-run should reuse the finished seed:\n{again.stdout[-2000:]}{again.stderr[-2000:]}"
    )
    assert again.stdout.strip().splitlines()[-1] == last, "the resumed run printed other headline figures"
    bad = run_quality("--seeds", "0", "--out", str(tmp_path / "bad"), timeout=120)
    assert bad.returncode == 2, f"--seeds 0 should exit with code 2, got {bad.returncode}"
    assert bad.stderr.strip().splitlines()[-1].startswith("error: --seeds:"), f"stderr: {bad.stderr!r}"
    bad = run_quality("--transitions", "100,lots", "--out", str(tmp_path / "bad"), timeout=120)
    assert bad.returncode == 2, f"--transitions 100,lots should exit with code 2, got {bad.returncode}"
    assert bad.stderr.strip().splitlines()[-1].startswith("error: --transitions:"), f"stderr: {bad.stderr!r}"
    assert not (tmp_path / "bad" / "seeds").exists(), "a rejected run should not start any seed"


@pytest.mark.slow
def test_world_model_quality_acrobot(tmp_path):
    out = tmp_path / "wmq"
    common = ("--env", "Acrobot-v1", "--quick", "--seeds", "1", "--transitions", "100", "--out", str(out))
    proc = run_quality(*common, "--set", "world_model.network.n_recurrent=60", timeout=600)
    assert proc.returncode == 0, f"script failed:\n{proc.stderr[-3000:]}"
    figures = dict(item.split("=", 1) for item in proc.stdout.strip().splitlines()[-1].split())
    for key in ("one_step_nmse", "direct_nmse", "spiking_nmse", "rollout25_nmse", "direct_rollout25_nmse"):
        assert key in figures, f"{key} missing from the last line {figures}"
    config = json.loads((out / "config.json").read_text())
    assert config["env_id"] == "Acrobot-v1" and config["world_model"]["network"]["n_recurrent"] == 60, (
        f"--env/--set not applied: {config['env_id']}, {config['world_model']['network']}"
    )
    metrics = pd.read_csv(out / "metrics.csv")
    assert set(metrics["model"]) == set(FIVE_MODELS), f"models in metrics.csv: {set(metrics['model'])}"
    assert set(metrics["policy"]) == {"random", "good"}, f"policies: {set(metrics['policy'])}"
    assert {"cos_theta1", "theta2_dot", "mean"} <= set(metrics["dim"]), f"dims: {set(metrics['dim'])}"
    one_step = metrics[(metrics.metric == "nmse") & (metrics.dim == "mean") & (metrics.policy == "random")]
    nmse = dict(zip(one_step.model, one_step.value))
    assert nmse["snn_spiking"] > nmse["snn"], (
        f"the spiking layer alone should be worse than the full model: {nmse}"
    )
    good = json.loads((out / "seeds" / "seed_0" / "good_policy.json").read_text())
    assert {"env_steps", "greedy_mean", "reached"} <= set(good), f"good_policy.json: {good}"
    for name in ("trajectories.png", "raster.png", "nmse_vs_transitions.png"):
        assert (out / name).stat().st_size > 0, f"{name} missing or empty"
    other = run_quality(*common, timeout=120)  # the same folder without the --set: refused, not reused
    assert other.returncode == 2 and other.stderr.strip().splitlines()[-1].startswith("error: --out:"), (
        f"a folder of another --set should be refused:\n{other.stdout[-1000:]}{other.stderr[-1000:]}"
    )


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("--env", "Pong-v5"), "--env"),
        (("--set", "agent.gamma=0.9"), "--set"),
        (("--set", "world_model.no_such_key=1"), "world_model.no_such_key"),
        (("--set", "world_model.network.n_recurrent=many"), "world_model.network.n_recurrent"),
    ],
)
def test_world_model_quality_rejects_bad_input(tmp_path, args, field):
    proc = run_quality(*args, "--out", str(tmp_path / "bad"), timeout=120)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, (
        f"{args} should exit with code 2, got {proc.returncode}: {proc.stderr[-2000:]}"
    )
    assert len(lines) == 1 and lines[0].startswith(f"error: {field}:"), f"stderr: {proc.stderr!r}"
    assert not (tmp_path / "bad").exists(), "a rejected run should not write anything"
