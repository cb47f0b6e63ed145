"""Dreams only while they help: dreamed evaluations, the stopping rules and the kept best-in-dream weights."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nmbrl_brian.envs import EnvironmentWrapper
from nmbrl_brian.training import phases
from nmbrl_brian.training.run import build_agent, run_training

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_model_based import tiny_config  # noqa: E402

CHUNKED = ["model_based.dream_steps=600", "model_based.dream_chunk=150", "model_based.dream_eval_episodes=2"]


def test_a_dreamed_return_at_the_stop_value_ends_the_cycles_dreaming(tmp_path):
    """Every dreamed episode returns >= 1, so a stop value of 1 ends each cycle after its first chunk."""
    run_dir = run_training(tiny_config("perfect", *CHUNKED, "model_based.dream_stop_return=1"), out=tmp_path)
    current = pd.read_csv(run_dir / "metrics.csv").query("policy == 'current'")
    assert current["dream_steps"].tolist() == [0, 150, 300], "one chunk of 150 dreamed steps per cycle"
    assert current["dreamed_evaluations"].tolist() == [0, 1, 2], "one dreamed evaluation per cycle"
    assert (current["dreamed_return"].iloc[1:] >= 1).all()


def test_without_a_stopping_rule_the_whole_budget_is_dreamed_in_chunks(tmp_path):
    run_dir = run_training(tiny_config("perfect", *CHUNKED), out=tmp_path)
    current = pd.read_csv(run_dir / "metrics.csv").query("policy == 'current'")
    assert current["dream_steps"].tolist() == [0, 600, 1200], "the whole budget, in four chunks a cycle"
    assert current["dreamed_evaluations"].tolist() == [0, 4, 8]
    energy = pd.read_csv(run_dir / "energy.csv")
    dreamed_eval = energy[(energy["phase"] == "dream_evaluation")]
    assert len(dreamed_eval) and (dreamed_eval["count"] > 0).any(), "dreamed evaluations are metered"
    traces = dreamed_eval[dreamed_eval["operation"] == "synapse_updates"]["count"]
    assert (traces == 0).all(), "a dreamed evaluation computes no eligibility traces (learning off)"


def _agent(*extra):
    config = tiny_config("perfect", *CHUNKED, *extra)
    env = EnvironmentWrapper()
    return build_agent(config, env.observation_space, env.action_space)


@pytest.mark.parametrize("patience, evaluations", [(1, 3), (2, 4)])
def test_patience_and_keep_best_restore_the_best_evaluations_weights(monkeypatch, patience, evaluations):
    """Scripted dreamed returns 5, 9, 3, 2: patience 1 stops after the third evaluation, patience 2
    after the fourth (the budget); either way the agent goes on from the weights evaluated at 9."""
    from nmbrl_brian.envs.env_loop import EnvLoop

    agent = _agent(f"model_based.dream_patience={patience}", "model_based.keep_best_in_dream=true")
    scores, seen = iter([5.0, 9.0, 3.0, 2.0]), []

    def scripted(agent_, model_values, episodes):
        seen.append(agent_.weights())
        return next(scores)

    monkeypatch.setattr(phases, "dreamed_evaluation", scripted)
    env_loop = EnvLoop(EnvironmentWrapper(), seed=0)
    phases.MODEL_BASED.train(agent, env_loop, 50)
    assert len(seen) == evaluations, f"{len(seen)} dreamed evaluations, expected {evaluations}"
    assert agent.dream_steps == 150 * evaluations
    kept, last = seen[1], agent.weights()
    for key in kept:
        np.testing.assert_array_equal(last[key], kept[key], err_msg=f"{key} is not the best evaluation's")
    assert any(not np.array_equal(seen[1][k], seen[-1][k]) for k in kept), "dreaming changed the weights"


def test_without_keep_best_the_last_weights_stay(monkeypatch):
    from nmbrl_brian.envs.env_loop import EnvLoop

    agent = _agent("model_based.dream_patience=1")
    scores, seen = iter([5.0, 9.0, 3.0, 2.0]), []

    def scripted(agent_, model_values, episodes):
        seen.append(agent_.weights())
        return next(scores)

    monkeypatch.setattr(phases, "dreamed_evaluation", scripted)
    phases.MODEL_BASED.train(agent, EnvLoop(EnvironmentWrapper(), seed=0), 50)
    last = agent.weights()
    for key in last:
        np.testing.assert_array_equal(last[key], seen[-1][key], err_msg=f"{key} changed after the last chunk")


def test_a_dreamed_evaluation_leaves_the_training_state_untouched():
    from nmbrl_brian.envs.env_loop import EnvLoop

    agent = _agent()
    env_loop = EnvLoop(EnvironmentWrapper(), seed=0)
    phases.Real(fresh_episodes=True).run(agent, phases.Cycle(env_loop, 50))
    values = agent.model_values()
    agent.dream.set_start_states(agent.real_transitions.obs)
    before = agent.loop.state()
    first = phases.dreamed_evaluation(agent, values, 3)
    after = agent.loop.state()
    for key in before:
        np.testing.assert_array_equal(after[key], before[key], err_msg=f"{key} changed by a dreamed evaluation")
    assert phases.dreamed_evaluation(agent, values, 3) == first, "the same start states, the same greedy return"
    assert agent.dreamed_returns == [first, first]
