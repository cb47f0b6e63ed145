"""End-to-end: the ``nmbrl run`` command, its results folder, determinism and resume."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from nmbrl_brian.cli import main, solved_return
from nmbrl_brian.config import load_config
from nmbrl_brian.results import METRIC_COLUMNS
from nmbrl_brian.training.callbacks import Callback
from nmbrl_brian.training.run import resume_training, run_training

ROOT = Path(__file__).resolve().parents[1]
DENSE = ROOT / "nmbrl_brian" / "configs" / "cartpole_dense.toml"
TINY = ["total_env_steps=3000", "eval_every=1000", "eval_episodes=3", "checkpoint_every=1000"]


def _only_run_dir(out: Path) -> Path:
    runs = [p for p in out.iterdir() if p.is_dir()]
    assert len(runs) == 1, f"expected exactly one run folder in {out}, found {runs}"
    return runs[0]


def test_subprocess_smoke(tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "nmbrl_brian",
        "run",
        "--config",
        str(DENSE),
        "--out",
        str(tmp_path),
        "--seed",
        "3",
    ]
    for item in TINY:
        cmd += ["--set", item]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, f"nmbrl run failed: {proc.stderr[-2000:]}"
    run_dir = _only_run_dir(tmp_path)
    assert run_dir.name.startswith("CartPole-v1__dense_actor_critic__3__"), f"bad run name {run_dir.name}"
    for name in ("config.json", "metrics.csv", "learning_curve.png", "checkpoint.npz"):
        assert (run_dir / name).is_file(), f"{name} missing from the results folder"
    metrics = pd.read_csv(run_dir / "metrics.csv")
    assert list(metrics.columns[: len(METRIC_COLUMNS)]) == list(METRIC_COLUMNS), (
        f"columns: {list(metrics.columns)}"
    )
    assert metrics["env_steps"].tolist() == [0, 1000, 2000, 3000, 3000], (
        f"evaluation points: {metrics['env_steps'].tolist()}"
    )
    assert metrics["policy"].tolist() == ["current"] * 4 + ["kept"], "the run ends with its kept policy's row"
    kept = metrics.iloc[-1]
    best = metrics.iloc[:4].loc[metrics.iloc[:4]["return_mean"].idxmax()]
    assert kept["kept_from_env_steps"] in metrics["env_steps"].tolist()[:4]
    assert (
        metrics.iloc[:4].loc[metrics["env_steps"] == kept["kept_from_env_steps"], "return_mean"].max()
        == best["return_mean"]
    ), "the kept policy is the best evaluated one"
    assert (run_dir / "best_policy.npz").is_file()
    assert (metrics["seed"] == 3).all()
    assert metrics["return_mean"].between(1, 500).all(), "CartPole returns lie in [1, 500]"
    config = json.loads((run_dir / "config.json").read_text())
    assert config["total_env_steps"] == 3000 and config["seed"] == 3, "config.json is not the resolved config"
    assert "steps_to_475=" in proc.stdout.strip().splitlines()[-1], "last line should hold key=value figures"


def test_the_last_line_counts_steps_to_the_tasks_solved_return():
    assert solved_return("CartPole-v1") == 475.0
    assert solved_return("Acrobot-v1") == -100.0, "nmbrl run prints steps_to_minus100 for Acrobot"
    assert solved_return("no_such_module:Env") == 475.0, "a task without a gymnasium spec keeps 475"


@pytest.mark.parametrize(
    "args, field",
    [
        (["--set", "agent.gamma=2"], "agent.gamma"),
        (["--set", "agent.bogus=1"], "agent.bogus"),
        (["--device", "gpu"], "device"),
        (["--set", "stop_at_return=nan"], "stop_at_return"),
        (["--device", "cpp_standalone"], "device"),
        (["--set", "env_id=FrozenLake-v1"], "env_id"),
        (["--set", "env_id=NoSuchEnv-v0"], "env_id"),
        (["--set", "encoding.obs_low=[1.0]", "--set", "encoding.obs_high=[2.0]"], "encoding.obs_low"),
        (["--config", "missing.toml"], "--config"),
        (["--resume", "not_a_run"], "--resume"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_no_results(tmp_path, capsys, args, field):
    out = tmp_path / "results"
    code = main(["run", "--out", str(out), *args])
    err = capsys.readouterr().err.strip()
    assert code == 2, f"bad input should exit with code 2, got {code}"
    assert len(err.splitlines()) == 1, f"error should be one line: {err!r}"
    assert field in err, f"error should name {field!r}: {err!r}"
    assert not out.exists() or not any(out.iterdir()), "bad input must not leave a results folder"


def _metrics(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(run_dir / "metrics.csv").drop(columns=["wall_s"])


def test_same_seed_gives_identical_metrics(tmp_path):
    cfg = load_config(DENSE, TINY, seed=1)
    a = run_training(cfg, out=tmp_path / "a")
    b = run_training(cfg, out=tmp_path / "b")
    pd.testing.assert_frame_equal(_metrics(a), _metrics(b), obj="metrics of two runs with the same seed")
    c = run_training(load_config(DENSE, TINY, seed=2), out=tmp_path / "c")
    assert not _metrics(a).equals(_metrics(c)), "different seeds should give different metrics"


class _Interrupt(Callback):
    """Simulates a crash (Ctrl-C) once training passes ``at`` env steps."""

    every = 500

    def __init__(self, at: int):
        self.at = at

    def on_chunk_end(self, trainer):
        if trainer.env_steps >= self.at:
            raise KeyboardInterrupt


def test_resume_matches_uninterrupted_run(tmp_path):
    cfg = load_config(DENSE, TINY, seed=5)
    full = run_training(cfg, out=tmp_path / "full")
    with pytest.raises(KeyboardInterrupt):
        run_training(cfg, out=tmp_path / "cut", callbacks=(_Interrupt(at=2500),))
    cut = _only_run_dir(tmp_path / "cut")
    partial = pd.read_csv(cut / "metrics.csv")
    assert partial["env_steps"].max() == 2000, (
        "the interrupted run should have stopped after its 2000-step eval"
    )
    resume_training(cut)
    pd.testing.assert_frame_equal(_metrics(full), _metrics(cut), obj="resumed vs uninterrupted metrics")
    assert (cut / "learning_curve.png").is_file(), "resumed run should finish its figure"


def test_stop_at_return_ends_at_the_first_evaluation_reaching_it(tmp_path):
    """A run stops at its first evaluation >= stop_at_return, runs no further steps, and keeps the kept row."""
    full = _metrics(run_training(load_config(DENSE, TINY, seed=1), out=tmp_path / "full"))
    current = full[full["policy"] == "current"]
    threshold = float(current["return_mean"].iloc[1])
    assert threshold > current["return_mean"].iloc[0], "no learning to stop on"
    first = int(current.loc[current["return_mean"] >= threshold, "env_steps"].iloc[0])
    assert first < current["env_steps"].max(), "the threshold should be reached before the end"
    stopped = _metrics(
        run_training(load_config(DENSE, [*TINY, f"stop_at_return={threshold}"], seed=1), out=tmp_path / "s")
    )
    assert stopped["policy"].tolist()[-1] == "kept", "a stopped run still ends with its kept-policy row"
    assert stopped[stopped["policy"] == "current"]["env_steps"].max() == first, (
        "stopped at another evaluation"
    )
    pd.testing.assert_frame_equal(
        stopped[stopped["policy"] == "current"].reset_index(drop=True),
        current[current["env_steps"] <= first].reset_index(drop=True),
        obj="the stopped run's evaluations (same seed, same steps)",
    )
