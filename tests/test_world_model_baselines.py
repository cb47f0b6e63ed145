"""World-model data, termination functions, non-spiking baselines and held-out metrics."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from nmbrl_brian.envs import EnvironmentWrapper, WorldModelEnv
from nmbrl_brian.errors import ConfigError
from nmbrl_brian.world_models.baselines import (
    LinearWorldModel,
    MLPModelConfig,
    MLPWorldModel,
    PredictiveWorldModel,
)
from nmbrl_brian.world_models.dataset import TransitionDataset, collect_transitions
from nmbrl_brian.world_models.evaluation import (
    METRIC_COLUMNS,
    PredictiveModel,
    ZeroDeltaModel,
    evaluate_model,
    one_step_metrics,
)
from nmbrl_brian.world_models.termination import CartPoleTermination, termination_fn_for

FAST_MLP = MLPModelConfig(hidden_sizes=(32,), epochs=25, batch_size=64, seed=0)


@pytest.fixture(scope="module")
def cartpole_data():
    env = EnvironmentWrapper("CartPole-v1")
    train = collect_transitions(env, None, 2000, seed=0)
    held_out = collect_transitions(env, None, 1500, seed=1)
    return train, held_out


@pytest.fixture(scope="module")
def fitted_models(cartpole_data):
    train, _ = cartpole_data
    lin = LinearWorldModel.for_env("CartPole-v1", use_termination_fn=False).fit(train)
    mlp = MLPWorldModel.for_env("CartPole-v1", use_termination_fn=False, config=FAST_MLP).fit(train)
    return {"linear": lin, "mlp": mlp}


# ---------------------------------------------------------------------- dataset
def _assert_same(a: TransitionDataset, b: TransitionDataset, what: str) -> None:
    assert len(a) == len(b), f"{what}: lengths differ ({len(a)} vs {len(b)})"
    for col in ("obs", "action", "reward", "next_obs", "terminated", "truncated", "episode", "timestep"):
        np.testing.assert_array_equal(
            getattr(a, col), getattr(b, col), err_msg=f"{what}: column {col} differs"
        )


def test_dataset_npz_round_trip(tmp_path, cartpole_data):
    train, _ = cartpole_data
    path = tmp_path / "d.npz"
    train.save(path)
    back = TransitionDataset.load(path)
    _assert_same(train, back, "save/load round trip")
    assert back.meta == train.meta, f"metadata lost in round trip: {back.meta} vs {train.meta}"
    assert train.meta["env_id"] == "CartPole-v1" and train.meta["seed"] == 0, f"meta incomplete: {train.meta}"
    with pytest.raises(ConfigError, match="^path:"):
        train.save(tmp_path / "d.txt")


def test_dataset_consistency_split_and_concatenate(cartpole_data):
    train, held_out = cartpole_data
    same_ep = train.episode[1:] == train.episode[:-1]
    np.testing.assert_array_equal(
        train.obs[1:][same_ep],
        train.next_obs[:-1][same_ep],
        err_msg="rows of an episode should chain s' -> s",
    )
    ends = ~same_ep
    assert np.all(train.terminated[:-1][ends] | train.truncated[:-1][ends]), (
        "an episode changed without ending"
    )
    a, b = train.split(0.25, seed=3)
    assert len(a) + len(b) == len(train), "split lost rows"
    assert not set(a.episode) & set(b.episode), "split must keep whole episodes on one side"
    assert 0.15 < len(b) / len(train) < 0.35, f"held-out fraction {len(b) / len(train):.2f} far from 0.25"
    both = TransitionDataset.concatenate([train, held_out])
    assert len(both) == len(train) + len(held_out), "concatenate lost rows"
    assert both.n_episodes == train.n_episodes + held_out.n_episodes, "episode ids collided in concatenate"
    np.testing.assert_allclose(
        train.delta_std(), train.delta.std(axis=0), err_msg="delta_std is not std(s' - s)"
    )


@pytest.mark.parametrize(
    "policy", [None, lambda obs: int(obs[2] + 0.3 * obs[3] > 0)], ids=["random", "callable"]
)
def test_collection_resumes_where_it_left_off(tmp_path, policy):
    env = EnvironmentWrapper("CartPole-v1")
    whole = collect_transitions(env, policy, 400, seed=7)
    path = tmp_path / "partial.npz"
    # Find a cut that stops in the middle of an episode so that resuming must replay it.
    cut = next(n for n in range(150, 400) if not (whole.terminated[n - 1] or whole.truncated[n - 1]))
    first = collect_transitions(env, policy, cut, seed=7, path=path)
    assert len(TransitionDataset.load(path)) == cut, "the partial collection was not saved"
    resumed = collect_transitions(env, policy, 400, seed=7, path=path)
    _assert_same(whole, resumed, "resumed collection vs one uninterrupted run")
    _assert_same(first, resumed.subset(slice(0, cut)), "resuming changed the rows already collected")
    _assert_same(whole, TransitionDataset.load(path), "the resumed file")
    with pytest.raises(ConfigError, match="^seed:"):
        collect_transitions(env, policy, 500, seed=8, path=path)


def test_collection_with_an_agent_and_time_limit():
    from nmbrl_brian.agents.base import BaseAgent

    class Alternate(BaseAgent):
        def __init__(self):
            self.calls = []

        def act(self, obs, *, explore=True):
            self.calls.append(explore)
            return len(self.calls) % 2

        def interact(self, loop, **kwargs):
            pass

        def state_dict(self):
            return {}

        def load_state_dict(self, state):
            pass

    agent = Alternate()
    data = collect_transitions(
        EnvironmentWrapper("CartPole-v1"), agent, 60, seed=0, explore=False, max_episode_steps=5
    )
    assert agent.calls == [False] * 60, "act() should be called once per step with the given explore flag"
    assert data.timestep.max() == 4 and data.truncated[data.timestep == 4].all(), (
        "max_episode_steps=5 not applied"
    )


# ---------------------------------------------------------------------- termination
def test_cartpole_termination_reads_bounds_from_env():
    env = gym.make("CartPole-v1").unwrapped
    fn = termination_fn_for("CartPole-v1")
    assert isinstance(fn, CartPoleTermination), f"CartPole-v1 should have a CartPoleTermination, got {fn!r}"
    assert fn.x_threshold == env.x_threshold, "x_threshold should come from the gymnasium env"
    assert fn.theta_threshold_radians == env.theta_threshold_radians, (
        "theta threshold should come from the env"
    )
    assert termination_fn_for("Pendulum-v1") is None, "an env without a known termination should give None"


@pytest.mark.parametrize("env_id, n", [("CartPole-v1", 3000), ("Acrobot-v1", 1000), ("MountainCar-v0", 500)])
def test_termination_fn_matches_env_flags(env_id, n, cartpole_data):
    data = (
        cartpole_data[0]
        if env_id == "CartPole-v1"
        else collect_transitions(EnvironmentWrapper(env_id), None, n, seed=0)
    )
    fn = termination_fn_for(env_id)
    pred = fn(data.next_obs)
    assert pred.shape == (len(data),), f"{env_id}: termination fn should return one flag per row"
    mismatch = np.flatnonzero(pred != data.terminated)
    assert len(mismatch) == 0, f"{env_id}: termination fn disagrees with the env on rows {mismatch[:5]}"
    if env_id == "CartPole-v1":
        assert data.terminated.sum() > 20, "CartPole random data should contain terminal transitions"
        assert bool(fn(data.next_obs[data.terminated][0])), "a single (D,) observation should work too"


# ---------------------------------------------------------------------- baselines
@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_baselines_beat_zero_delta(kind, cartpole_data, fitted_models):
    _, held_out = cartpole_data
    model = fitted_models[kind]
    ours = one_step_metrics(model, held_out, name=kind)
    zero = one_step_metrics(ZeroDeltaModel(), held_out, name="zero")
    get = lambda df: df.query("metric == 'nmse'").set_index("dim")["value"]
    ours_nmse, zero_nmse = get(ours), get(zero)
    assert (ours_nmse < 0.1 * zero_nmse).all(), (
        f"{kind} one-step NMSE {ours_nmse.to_dict()} vs zero {zero_nmse.to_dict()}"
    )
    assert ours_nmse["mean"] < 0.05, f"{kind} mean one-step NMSE {ours_nmse['mean']:.4f} should be < 0.05"


def test_mlp_is_deterministic(cartpole_data, fitted_models):
    train, _held_out = cartpole_data
    again = MLPWorldModel.for_env("CartPole-v1", use_termination_fn=False, config=FAST_MLP).fit(train)
    for p, q in zip(fitted_models["mlp"].params, again.params):
        np.testing.assert_array_equal(p, q, err_msg="same seed and data should give identical MLP weights")
    assert fitted_models["mlp"].loss_history[-1] < fitted_models["mlp"].loss_history[0], (
        "MLP loss did not decrease"
    )


@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_baselines_honour_world_model_contract(kind, cartpole_data):
    train, _ = cartpole_data
    cls = {"linear": LinearWorldModel, "mlp": MLPWorldModel}[kind]
    kwargs = {"config": FAST_MLP} if kind == "mlp" else {}
    model = cls.for_env("CartPole-v1", **kwargs)
    assert isinstance(model, PredictiveWorldModel) and isinstance(model, PredictiveModel), (
        "wrong base classes"
    )
    with pytest.raises(RuntimeError, match="fit"):
        model.predict(train.obs[:2], train.action[:2])
    model.fit(train)
    obs, info = model.reset(seed=5)
    real, _ = EnvironmentWrapper("CartPole-v1").reset(seed=5)
    np.testing.assert_array_equal(obs, real, err_msg="reset(seed) should draw the real env's initial state")
    assert model.observation_space.contains(obs) and isinstance(info, dict), (
        "reset must return (obs in space, dict)"
    )
    out = model.step(1)
    assert len(out) == 5, "step must return (obs, reward, terminated, truncated, info)"
    obs2, reward, terminated, truncated, info = out
    assert model.observation_space.contains(obs2), f"stepped obs {obs2} not in the observation space"
    assert type(reward) is float and type(terminated) is bool and type(truncated) is bool, "wrong step types"
    check_env(WorldModelEnv(model, max_episode_steps=200), skip_render_check=True)
    start = np.array([0.1, 0.0, -0.05, 0.2], dtype=np.float32)
    np.testing.assert_array_equal(
        model.reset(options={"obs": start})[0], start, err_msg="reset(options={'obs': s}) should start at s"
    )
    # With the known termination function, a rollout ends when the pole falls.
    model.reset(seed=0)
    for t in range(300):
        *_, terminated, _, _ = model.step(1)
        if terminated:
            break
    assert terminated, f"{kind}: always pushing right should end the episode within 300 model steps"


# ---------------------------------------------------------------------- evaluation
class LookupModel:
    """A perfect model: looks the true next state up in the data it was given."""

    def __init__(self, data: TransitionDataset):
        self.table = {
            (o.tobytes(), int(a)): (n, r, float(t))
            for o, a, n, r, t in zip(data.obs, data.action, data.next_obs, data.reward, data.terminated)
        }

    def predict(self, obs, actions):
        rows = [self.table[(np.asarray(o, dtype=np.float64).tobytes(), int(a))] for o, a in zip(obs, actions)]
        return np.array([r[0] for r in rows]), np.array([r[1] for r in rows]), np.array([r[2] for r in rows])


def test_perfect_model_scores_perfectly(cartpole_data):
    _, held_out = cartpole_data
    df = evaluate_model(LookupModel(held_out), held_out, name="oracle", ks=(1, 10, 25))
    assert tuple(df.columns) == METRIC_COLUMNS, f"unexpected columns {list(df.columns)}"
    nmse = df[df.metric.isin(["nmse", "rollout_nmse"])]
    assert set(nmse.k) == {1, 10, 25} and (nmse.n > 0).all(), f"missing horizons or segments:\n{nmse}"
    assert (nmse.value == 0).all(), f"a perfect model should have NMSE 0:\n{nmse[nmse.value != 0]}"
    term = df.set_index("metric")["value"]
    assert term["recall"] == 1.0 and term["precision"] == 1.0, f"perfect termination scored {term.to_dict()}"
    # On rows without terminals, the k=1 rollout metric equals the one-step metric by construction.
    alive = held_out.subset(~held_out.terminated)
    lin = LinearWorldModel.for_env("CartPole-v1").fit(held_out)
    d = evaluate_model(lin, alive, ks=(1,)).query("dim == 'mean'").set_index("metric")["value"]
    assert np.isclose(d["nmse"], d["rollout_nmse"]), (
        f"k=1 rollout NMSE {d['rollout_nmse']} != one-step {d['nmse']}"
    )


def test_segments_avoid_episode_ends(cartpole_data):
    _, held_out = cartpole_data
    k = 10
    starts = held_out.segment_starts(k)
    assert len(starts) > 0, "random CartPole data should contain 10-step segments"
    idx = starts[:, None] + np.arange(k)
    assert (held_out.episode[idx] == held_out.episode[starts][:, None]).all(), "segment crosses an episode"
    assert not held_out.terminated[idx].any(), "segment contains a terminal transition"
    np.testing.assert_array_equal(held_out.timestep[idx[:, -1]] - held_out.timestep[starts], k - 1)
