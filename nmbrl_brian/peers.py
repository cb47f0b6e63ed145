"""Peers on the same evaluation protocol: stable-baselines3 PPO with the rl-zoo CartPole-v1 settings.

Optional (the ``peers`` extra: ``pip install 'nmbrl-brian[peers]'``). PPO trains on the real
environment; at each evaluation point (real steps, as for the package's agents) it plays
greedy episodes on the evaluation seeds of :func:`~nmbrl_brian.seeding.evaluation_seed`
and writes the same tidy ``metrics.csv`` columns (``env_steps``, ``return_mean``, ``seed``, ...).

rl-zoo (``hyperparams/ppo.yml``, CartPole-v1): 8 environments, ``n_steps=32``,
``batch_size=256``, ``gae_lambda=0.8``, ``gamma=0.98``, ``n_epochs=20``, ``ent_coef=0.0``,
linear schedules from ``learning_rate=1e-3`` and ``clip_range=0.2`` over ``1e5`` steps.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from nmbrl_brian import seeding
from nmbrl_brian.errors import ConfigError
from nmbrl_brian.results import write_csv_atomic

RL_ZOO_CARTPOLE = {
    "n_steps": 32,
    "batch_size": 256,
    "gae_lambda": 0.8,
    "gamma": 0.98,
    "n_epochs": 20,
    "ent_coef": 0.0,
    "learning_rate": 1e-3,
    "clip_range": 0.2,
}
N_ENVS = 8
SCHEDULE_STEPS = 100_000


def _require_sb3():
    try:
        import stable_baselines3  # noqa: F401
    except ImportError as exc:
        raise ConfigError(
            "--with-peers", "the optional extra 'peers' (pip install 'nmbrl-brian[peers]': stable-baselines3)"
        ) from exc


def _linear(start: float):
    return lambda progress: progress * start  # progress runs from 1 to 0 over SCHEDULE_STEPS


def evaluate_policy(model, seed: int, episodes: int) -> np.ndarray:
    """Greedy returns of ``episodes`` episodes reset with seeds ``seed, seed + 1, ...``."""
    from nmbrl_brian.envs import EnvironmentWrapper

    env = EnvironmentWrapper("CartPole-v1")
    returns = []
    for k in range(episodes):
        obs, _ = env.reset(seed=seeding.episode_reset_seed(seed, k))
        done, total = False, 0.0
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(int(action))
            total += reward
            done = terminated or truncated
        returns.append(total)
    return np.asarray(returns)


def run_ppo(
    seed: int, out: Path, *, total_steps: int, points: list[int], every: int = 500, episodes: int = 20
) -> pd.DataFrame:
    """Train PPO on CartPole-v1 with the rl-zoo settings; evaluate at ``points`` then every ``every``."""
    _require_sb3()
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    out.mkdir(parents=True, exist_ok=True)
    path = out / f"ppo_seed{seed}.csv"
    if path.is_file():
        return pd.read_csv(path)
    schedule = sorted(set(points) | set(range(points[-1] + every, total_steps + 1, every)))
    rows: list[dict] = []

    class Evaluate(BaseCallback):
        def _on_step(self) -> bool:
            while schedule and self.num_timesteps >= schedule[0]:
                step = schedule.pop(0)
                returns = evaluate_policy(
                    self.model, seeding.evaluation_seed(seed, len(rows), episodes), episodes
                )
                rows.append(
                    {
                        "env_steps": step,
                        "return_mean": float(returns.mean()),
                        "return_std": float(returns.std()),
                        "seed": seed,
                        "policy": "current",
                    }
                )
            return True

    env = make_vec_env("CartPole-v1", n_envs=N_ENVS, seed=seed)
    params = dict(RL_ZOO_CARTPOLE)
    params["learning_rate"] = _linear(params["learning_rate"])
    params["clip_range"] = _linear(params["clip_range"])
    model = PPO("MlpPolicy", env, seed=seed, verbose=0, device="cpu", **params)
    first = evaluate_policy(model, seeding.evaluation_seed(seed, 0, episodes), episodes)
    rows.append(
        {
            "env_steps": 0,
            "return_mean": float(first.mean()),
            "return_std": float(first.std()),
            "seed": seed,
            "policy": "current",
        }
    )
    model.learn(total_timesteps=total_steps, callback=Evaluate())
    table = pd.DataFrame(rows).assign(episodes=np.nan, wall_s=np.nan)
    write_csv_atomic(table, path)
    return table


def run_ppo_seeds(
    seeds: int, out: Path, *, total_steps: int, points: list[int], episodes: int = 20
) -> pd.DataFrame:
    """:func:`run_ppo` for seeds ``0..seeds-1`` (finished seeds are read back)."""
    _require_sb3()
    return pd.concat(
        [
            run_ppo(s, Path(out), total_steps=total_steps, points=points, episodes=episodes)
            for s in range(seeds)
        ],
        ignore_index=True,
    )
