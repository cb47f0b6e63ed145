"""The make run job's world model stays bounded when the agent's states drift out of the first data's range.

The world model's code (encoding range, whitening, target scalers) is fitted to the first real
transitions, from the random policy near the upright start, and kept. Once the agent balances, the
cart drifts and the whitened state inputs reach 30-85 standard deviations of that first data. With
the spiking readout learning beside the normalised direct pathway
(``world_model.readout_learning_rate = 2e-5``), refits on such data made the weights grow about
threefold per 100 transitions until the dream ended every episode at once (measured on the saved
runs of seeds 1, 2, 4 and 5 of the make run job, three of them with ``dream_eval_first``; this
test's data make the same configuration reach weights above 1 by its fourth fit with 300 spiking
neurons). The make run job learns the direct pathway only and keeps one spiking neuron; the test
checks the shipped config and the same with the 300 neurons the world model had when it diverged.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

CONFIG = Path(__file__).parents[1] / "nmbrl_brian" / "configs" / "cartpole_mbrl_cheap.toml"


def _transitions(n: int, rng: np.random.Generator, spread: float):
    """Random-policy CartPole transitions, episodes of at most 50 steps, each starting with the cart
    moved and pushed by up to ``spread`` (m and m/s) from gymnasium's reset."""
    from nmbrl_brian.world_models.dataset import TransitionDataset

    env = gym.make("CartPole-v1").unwrapped
    data = TransitionDataset(4)
    offset = np.array([1.0, 1.0, 0.0, 0.0])

    def reset():
        obs, _ = env.reset(seed=int(rng.integers(1 << 30)))
        env.state = obs + spread * rng.uniform(-1, 1, 4) * offset
        return np.array(env.state, dtype=float)

    obs, episode, t = reset(), 0, 0
    for _ in range(n):
        action = int(rng.integers(2))
        nxt, reward, terminated, truncated, _ = env.step(action)
        data.append(
            obs=obs,
            action=action,
            reward=reward,
            next_obs=nxt,
            terminated=terminated,
            truncated=truncated,
            episode=episode,
            timestep=t,
        )
        obs, t = np.asarray(nxt, dtype=float), t + 1
        if terminated or t >= 50:
            obs, episode, t = reset(), episode + 1, 0
    return data


@pytest.mark.parametrize("n_recurrent", [None, 300], ids=["shipped", "300_neurons"])
def test_make_run_world_model_stays_bounded_when_states_drift(n_recurrent):
    from nmbrl_brian.config import load_config
    from nmbrl_brian.world_models.dataset import TransitionDataset
    from nmbrl_brian.world_models.evaluation import one_step_metrics
    from nmbrl_brian.world_models.snn_world_model import SNNWorldModel

    rng = np.random.default_rng(0)
    data = TransitionDataset.concatenate([_transitions(100, rng, 0.0), _transitions(900, rng, 2.0)])
    run = load_config(CONFIG, [])
    assert run.world_model.readout_learning_rate == 0.0
    # Fewer passes than the job (min_updates 2,000 instead of 10,000), so the test stays short.
    config = dataclasses.replace(run.world_model, min_updates=2000)
    if n_recurrent is not None:
        config = dataclasses.replace(
            config, network=dataclasses.replace(config.network, n_recurrent=n_recurrent)
        )
    model = SNNWorldModel.for_env("CartPole-v1", config=config, name_prefix="wm")
    for n in (100, 400, 700, 1000):  # refits on all data so far, as the model-based cycle does
        model.fit(data.subset(slice(0, n)))
    weights = {k: np.abs(np.asarray(v)).max(initial=0.0) for k, v in model.weights.items()}
    assert weights["w_out"] == 0.0 and weights["b_out"] == 0.0
    assert weights["w_direct"] < 0.5, weights
    held_out = _transitions(200, np.random.default_rng(1), 2.0)
    metrics = one_step_metrics(model, held_out)
    nmse = float(metrics.query("metric == 'nmse' and dim == 'mean'").value.iloc[0])
    assert nmse < 0.01, nmse
