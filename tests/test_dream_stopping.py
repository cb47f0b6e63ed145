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

CHUNKED = [
    "model_based.dream_steps=600",
    "model_based.dream_chunk=150",
    "model_based.dream_eval_episodes=2",
    "model_based.dream_stop_return=inf",
    "model_based.dream_patience=0",
    "model_based.keep_best_in_dream=false",
]


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

    def scripted(agent_, model_values, episodes, starts):
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
    assert not agent.model_based.keep_best_in_dream
    scores, seen = iter([5.0, 9.0, 3.0, 2.0]), []

    def scripted(agent_, model_values, episodes, starts):
        seen.append(agent_.weights())
        return next(scores)

    monkeypatch.setattr(phases, "dreamed_evaluation", scripted)
    phases.MODEL_BASED.train(agent, EnvLoop(EnvironmentWrapper(), seed=0), 50)
    last = agent.weights()
    for key in last:
        np.testing.assert_array_equal(last[key], seen[-1][key], err_msg=f"{key} changed after the last chunk")


def test_evaluating_first_a_policy_already_at_the_stop_value_dreams_no_steps(tmp_path):
    """Every dreamed episode returns >= 1: evaluated first, no cycle trains in its dreams."""
    run_dir = run_training(
        tiny_config("perfect", *CHUNKED, "model_based.dream_stop_return=1", "model_based.dream_eval_first=true"),
        out=tmp_path,
    )
    current = pd.read_csv(run_dir / "metrics.csv").query("policy == 'current'")
    assert current["dream_steps"].tolist() == [0, 0, 0], "no dreamed learning step"
    assert current["dreamed_evaluations"].tolist() == [0, 1, 2], "the one evaluation before each cycle's dreams"
    energy = pd.read_csv(run_dir / "energy.csv")
    assert not (energy["phase"] == "dream").any() or (energy.query("phase == 'dream'")["count"] == 0).all()


def test_evaluating_first_keeps_the_starting_policy_when_dreams_never_beat_it(monkeypatch):
    """Scripted dreamed returns 9 (the policy the cycle starts from), 5, 3: patience 2 ends the
    cycle after two chunks, and the agent goes on from the weights it started with."""
    from nmbrl_brian.envs.env_loop import EnvLoop

    agent = _agent(
        "model_based.dream_patience=2", "model_based.keep_best_in_dream=true", "model_based.dream_eval_first=true"
    )
    scores, seen = iter([9.0, 5.0, 3.0]), []

    def scripted(agent_, model_values, episodes, starts):
        seen.append(agent_.weights())
        return next(scores)

    monkeypatch.setattr(phases, "dreamed_evaluation", scripted)
    phases.MODEL_BASED.train(agent, EnvLoop(EnvironmentWrapper(), seed=0), 50)
    assert len(seen) == 3 and agent.dream_steps == 300, (len(seen), agent.dream_steps)
    assert any(not np.array_equal(seen[0][k], seen[-1][k]) for k in seen[0]), "dreaming changed the weights"
    last = agent.weights()
    for key in last:
        np.testing.assert_array_equal(last[key], seen[0][key], err_msg=f"{key} is not the starting policy's")


def test_a_dreamed_evaluation_leaves_the_training_state_untouched():
    from nmbrl_brian.envs.env_loop import EnvLoop

    agent = _agent()
    env_loop = EnvLoop(EnvironmentWrapper(), seed=0)
    phases.Real(fresh_episodes=True).run(agent, phases.Cycle(env_loop, 50))
    values = agent.model_values()
    agent.dream.set_start_states(agent.real_transitions.obs)
    before = agent.loop.state()
    starts = phases.episode_starts(agent.real_transitions)
    assert len(starts) >= 1 and (agent.real_transitions.timestep == 0).sum() == len(starts)
    first = phases.dreamed_evaluation(agent, values, 3, starts)
    after = agent.loop.state()
    for key in before:
        np.testing.assert_array_equal(after[key], before[key], err_msg=f"{key} changed by a dreamed evaluation")
    assert phases.dreamed_evaluation(agent, values, 3, starts) == first, "the same start states, the same greedy return"
    assert agent.dreamed_returns == [first, first]


# ------------------------------------------------------------------------------------------
# World-model passes only while the error on the newest real transitions falls


class _FakeModel:
    class config:  # noqa: N801 - stands in for WorldModelConfig
        seed, shuffle = 0, True

        @staticmethod
        def epochs_for(n):
            return 10

    weights: dict = {}

    def prepare(self, data):
        pass


class _FakeLearner:
    recorded = {"y_period": None}

    def weight_values(self, weights):
        return {}

    def read_weights(self, value):
        return {}


@pytest.mark.parametrize(
    "errors, patience, tolerance, passes",
    [
        ([1.0, 0.5, 0.6, 0.55, 0.4, 0.3], 2, 0.0, 4),  # no new best at passes 2 and 3
        ([1.0, 0.5, 0.6, 0.55, 0.4, 0.3], 3, 0.0, 9),  # 0.4 and 0.3 are new bests in time
        ([1.0, 0.8, 0.75], 1, 0.1, 3),  # 0.75 is not 10 % below 0.8
        ([1.0, 0.5, 0.6, 0.55], 0, 0.0, 10),  # patience 0: every pass
    ],
)
def test_world_model_passes_stop_when_the_newest_error_stops_falling(monkeypatch, errors, patience, tolerance, passes):
    from nmbrl_brian.world_models import fitting
    from nmbrl_brian.world_models.dataset import TransitionDataset

    script = iter(errors + [1.0] * 20)  # then never better
    masks = []

    def scripted_pass(loop, learner, model, data, *, newest=None, **kwargs):
        masks.append(newest)
        return {"newest_nmse": next(script)}

    monkeypatch.setattr(fitting, "fit_pass", scripted_pass)
    rng = np.random.default_rng(0)
    data = TransitionDataset(4)
    for t in range(30):
        data.append(rng.normal(size=4), 0, 1.0, rng.normal(size=4), False, False, episode=0, timestep=t)
    class _FakeLoop:
        value = None

    rows = fitting.fit_in_loop(
        _FakeLoop(), _FakeLearner(), _FakeModel(), data, cycle=0, run=None, newest=10, patience=patience, tolerance=tolerance
    )
    assert len(rows) == passes, f"{len(rows)} passes, expected {passes}"
    if patience:
        # the mask marks the newest 10 transitions wherever the pass's order put them
        assert all(mask.sum() == 10 for mask in masks)


def test_the_cycle_counts_its_world_model_passes_and_the_rule_shortens_them(tmp_path):
    wm = ["world_model.network.n_recurrent=30", "world_model.min_updates=1500"]
    full = run_training(tiny_config("spiking", *wm, "model_based.model_patience=0"), out=tmp_path / "full")
    short = run_training(tiny_config("spiking", *wm, "model_based.model_patience=1"), out=tmp_path / "short")
    a = pd.read_csv(full / "metrics.csv").query("policy == 'current'")["model_passes"].tolist()
    b = pd.read_csv(short / "metrics.csv").query("policy == 'current'")["model_passes"].tolist()
    assert a == [0, 15, 23], f"every pass min_updates asks for (1,500 / 100, then 1,500 / 200 rounded up): {a}"
    assert b[0] == 0 and 2 <= b[1] < a[1] and b[2] - b[1] < a[2] - a[1], f"the rule stops early: {b} vs {a}"


@pytest.mark.parametrize("learn_on_real", [True, False])
def test_a_real_phase_learns_only_with_learn_on_real(learn_on_real):
    """With ``learn_on_real = false`` a model-based real phase collects transitions with the
    current weights and changes none of them, and it is metered as inference (no trace or weight
    updates); with the default it learns online as the model-free agent does."""
    from nmbrl_brian.envs.env_loop import EnvLoop

    agent = _agent(f"model_based.learn_on_real={str(learn_on_real).lower()}")
    before = agent.weights()
    env_loop = EnvLoop(EnvironmentWrapper(), seed=0)
    phases.Real(fresh_episodes=True).run(agent, phases.Cycle(env_loop, 60))
    assert env_loop.env_steps == 60 and len(agent.real_transitions.obs) == 60, "every real step is collected"
    after = agent.weights()
    changed = [k for k in before if not np.array_equal(before[k], after[k])]
    counts = agent.meter.counts["real"]
    assert counts.neuron_updates > 0 and counts.spikes > 0, "the real phase computes and is metered"
    if learn_on_real:
        assert changed, "learning on: the real phase changed the weights"
        assert counts.synapse_updates > 0 and counts.weight_updates > 0
    else:
        assert not changed, f"learning off: the real phase changed {changed}"
        assert counts.synapse_updates == 0 and counts.weight_updates == 0, "metered as inference"
