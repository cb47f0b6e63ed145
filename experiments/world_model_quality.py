"""How well a spiking world model learns CartPole-v1 dynamics online with supervised e-prop.

Figures: ``trajectories.png``, an open-loop rollout of the four state variables along the
longest held-out random-policy episode (up to 50 steps; real vs spiking, linear and MLP
models), and ``raster.png``, the spikes of the world model's 300 recurrent LIF neurons
during that rollout (one 20 ms period per transition).
Claim: trained online (one pass = one ``Network.run``, weights updated after every
transition) on at most 5,000 real random-policy transitions, the spiking world model
predicts the held-out one-step state change with a normalised MSE of at most 0.05
(averaged over the four dimensions) and a learned termination readout with recall
of at least 0.95, against the linear (about 1e-5) and MLP baselines fitted to the same data.

Per seed: 5,000 training transitions from the uniform random policy; held-out sets of
2,000 transitions from the random policy and from a good policy: the dense TD(lambda)
actor-critic baseline (``cartpole_dense.toml``, same seed) trained on the real
environment until its greedy evaluation mean reaches 475, then run greedily. All three
models learn their own termination.

Writes under ``--out``: ``seeds/seed_<k>/`` (each finished seed's tables, so a re-run
of the same command resumes after the last finished seed), ``metrics.csv`` (tidy: model, policy, metric, dim, k, value, n,
seed), ``training_log.csv`` (per epoch: online NMSE, step sizes, run time),
``timing.csv`` (cpp_standalone: re-running the compiled binary with ``run_args`` vs
regenerating and recompiling it for every epoch, seed 0; skipped with ``--quick`` or
``--skip-timing``), ``config.json``, ``trajectories.png`` and ``raster.png``. The last line
printed holds the medians over seeds on the random-policy held-out set.

Usage::

    python experiments/world_model_quality.py --seeds 5 --out results/world_model_quality
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from nmbrl_brian.config import load_config
from nmbrl_brian.devices import reset_device, select_device
from nmbrl_brian.envs import EnvironmentWrapper
from nmbrl_brian.experiment_tools import check_common_args, experiment_parser, parallel_map, run_main
from nmbrl_brian.plotting import save_figure
from nmbrl_brian.results import write_csv_atomic
from nmbrl_brian.training.actor_critic_trainer import evaluation_seed
from nmbrl_brian.training.env_loop import EnvLoop
from nmbrl_brian.training.run import build_agent
from nmbrl_brian.world_models import LinearWorldModel, MLPWorldModel, collect_transitions
from nmbrl_brian.world_models.baselines import MLPModelConfig
from nmbrl_brian.world_models.evaluation import evaluate_models, rollout
from nmbrl_brian.world_models.snn_world_model import SNNWorldModel, WorldModelConfig

ENV_ID = "CartPole-v1"
DENSE_CONFIG = Path(__file__).resolve().parents[1] / "nmbrl_brian" / "configs" / "cartpole_dense.toml"
STATE_NAMES = ("x", "x_dot", "theta", "theta_dot")
STATE_UNITS = ("m", "m/s", "rad", "rad/s")
FULL = {
    "n_train": 5000,
    "n_held_out": 2000,
    "epochs": 5,
    "mlp_epochs": 150,
    "max_segments": 300,
    "rollout_steps": 50,
    "timing_epochs": 3,
}
QUICK = {
    "n_train": 600,
    "n_held_out": 500,
    "epochs": 2,
    "mlp_epochs": 20,
    "max_segments": 20,
    "rollout_steps": 15,
    "timing_epochs": 0,
}


def train_good_policy(seed: int, *, threshold: float = 475.0, max_steps: int = 200_000):
    """The dense TD(lambda) baseline trained on the real env until its greedy mean reaches ``threshold``.

    Returns the agent and the real environment steps it took.
    """
    config = load_config(DENSE_CONFIG, seed=seed)
    env = EnvironmentWrapper(ENV_ID)
    agent = build_agent(config, env.observation_space, env.action_space)
    loop = EnvLoop(env, seed=seed)
    returns: list[float] = []
    for chunk in range(max_steps // config.eval_every):
        agent.interact(loop, max_steps=config.eval_every)
        returns.clear()
        eval_loop = EnvLoop(
            EnvironmentWrapper(ENV_ID),
            seed=evaluation_seed(seed, chunk, config.eval_episodes),
            on_episode_end=lambda ret, length: returns.append(ret),
        )
        agent.interact(eval_loop, max_episodes=config.eval_episodes, explore=False, learn=False)
        if np.mean(returns) >= threshold:
            return agent, loop.env_steps
    raise RuntimeError(f"the dense baseline (seed {seed}) did not reach {threshold} in {max_steps} steps")


def collect(seed: int, sizes: dict) -> dict:
    """Training data (random policy) and held-out sets (random and good policy) of one seed."""
    env = EnvironmentWrapper(ENV_ID)
    good_policy, steps = train_good_policy(seed)
    print(f"  good policy: dense baseline after {steps} env steps", flush=True)
    return {
        "train": collect_transitions(env, None, sizes["n_train"], seed=seed),
        "random": collect_transitions(env, None, sizes["n_held_out"], seed=10_000 + seed),
        "good": collect_transitions(env, good_policy, sizes["n_held_out"], seed=20_000 + seed, explore=False),
    }


def train_snn(config: WorldModelConfig, train) -> tuple[SNNWorldModel, pd.DataFrame]:
    """Online supervised e-prop, one ``Network.run`` per epoch; returns the model and its log."""
    model = SNNWorldModel.for_env(ENV_ID, use_termination_fn=False, config=config)
    rows = []
    for _ in range(config.epochs):
        start = time.perf_counter()
        row = model.train_epoch(train)
        rows.append({**row, "wall_s": time.perf_counter() - start})
        print(
            f"  snn epoch {row['epoch']}: online_nmse={row['online_nmse']:.4f} ({rows[-1]['wall_s']:.1f} s)",
            flush=True,
        )
    return model, pd.DataFrame(rows)


def longest_episode(data, max_steps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Start state, recorded actions and real next states of the longest episode (at most ``max_steps`` steps)."""
    ids, counts = np.unique(data.episode, return_counts=True)
    rows = np.flatnonzero(data.episode == ids[np.argmax(counts)])[:max_steps]
    return data.obs[rows[0]], data.action[rows], data.next_obs[rows]


def plot_trajectories(trajectories: dict, *, axes=None, **kwds):
    """Four panels (x, x_dot, theta, theta_dot) vs step: ``{label: states (k+1, 4)}``; returns the first Axes."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(2, 2, figsize=(10, 6), sharex=True)
    axes = np.ravel(axes)
    for label, states in trajectories.items():
        style = (
            {"color": "k", "lw": 3.0, "alpha": 0.4}
            if label == "real"
            else {"lw": 1.2, "ls": "-" if label == "snn" else "--"}
        )
        for d, ax in enumerate(axes):
            ax.plot(np.arange(len(states)), states[:, d], label=label, **style, **kwds)
    for d, ax in enumerate(axes):
        ax.set_ylabel(f"{STATE_NAMES[d]} ({STATE_UNITS[d]})")
        if d >= 2:
            ax.set_xlabel("environment step (20 ms)")
    axes[0].legend(fontsize=8)
    axes[0].set_title("open-loop rollout, recorded actions")
    return axes[0]


def plot_raster(t_ms: np.ndarray, neuron: np.ndarray, *, period_ms: float, axes=None, **kwds):
    """Spike raster (time in ms vs recurrent neuron) with the transition boundaries marked."""
    import matplotlib.pyplot as plt

    ax = axes if axes is not None else plt.subplots(figsize=(10, 4))[1]
    ax.plot(t_ms, neuron, "|", ms=2, color="k", **kwds)
    end = float(t_ms.max()) if len(t_ms) else period_ms
    for boundary in np.arange(0.0, end + period_ms, period_ms):
        ax.axvline(boundary, color="0.85", lw=0.5, zorder=0)
    ax.set_xlabel("network time (ms); one 20 ms period per transition")
    ax.set_ylabel("recurrent neuron")
    ax.set_title(f"spiking world model during the rollout ({len(t_ms)} spikes)")
    return ax


def standalone_timing(config: WorldModelConfig, train, out: Path, epochs: int) -> pd.DataFrame:
    """Per-epoch wall time under cpp_standalone: re-run with ``run_args`` vs rebuild every epoch."""
    config = dataclasses.replace(config, periods_per_run=len(train), epochs=epochs)
    steps = len(train) * config.network.steps_per_env_step + 1
    rows, weights = [], {}
    for mode in ("rerun", "rebuild"):
        select_device("cpp_standalone", out / "standalone_build" / mode)
        try:
            model = SNNWorldModel.for_env(
                ENV_ID, use_termination_fn=False, config=config, rebuild_each_run=mode == "rebuild"
            )
            for epoch in range(epochs):
                start = time.perf_counter()
                model.train_epoch(train)
                rows.append(
                    {
                        "mode": mode,
                        "epoch": epoch,
                        "wall_s": time.perf_counter() - start,
                        "n_transitions": len(train),
                        "network_steps": steps,
                    }
                )
                print(f"  standalone {mode} epoch {epoch}: {rows[-1]['wall_s']:.2f} s", flush=True)
            weights[mode] = model.weights
        finally:
            reset_device()
    same = all(
        np.allclose(weights["rerun"][k], weights["rebuild"][k], rtol=0, atol=1e-12) for k in weights["rerun"]
    )
    return pd.DataFrame(rows).assign(same_weights_as_other_mode=same)


def snn_config(seed: int, sizes: dict) -> WorldModelConfig:
    """The spiking world model of one seed: learned termination, one run per epoch."""
    return WorldModelConfig(
        epochs=sizes["epochs"], termination="learned", seed=seed, periods_per_run=sizes["n_train"]
    )


def run_seed(seed: int, sizes: dict, out: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Collect, train the three models and evaluate them on both held-out sets.

    Seed 0 also draws the trajectory and raster figures. Returns the tidy metrics and the
    spiking model's training log.
    """
    data = collect(seed, sizes)
    snn, log = train_snn(snn_config(seed, sizes), data["train"])
    models = {
        "snn": snn,
        "linear": LinearWorldModel.for_env(ENV_ID, use_termination_fn=False).fit(data["train"]),
        "mlp": MLPWorldModel.for_env(
            ENV_ID,
            use_termination_fn=False,
            config=MLPModelConfig(epochs=sizes["mlp_epochs"], seed=seed),
        ).fit(data["train"]),
    }
    metrics = []
    for policy in ("random", "good"):
        df = evaluate_models(models, data[policy], dim_names=STATE_NAMES, max_segments=sizes["max_segments"])
        metrics.append(df.assign(policy=policy, seed=seed))
    if seed == 0:
        start, actions, real_next = longest_episode(data["random"], sizes["rollout_steps"])
        trajectories = {"real": np.vstack([start, real_next])}
        snn.record_spikes = True
        for name, model in models.items():
            states, _, _ = rollout(model, start[None], actions[None])
            trajectories[name] = states[0]
        snn.record_spikes = False
        save_figure(plot_trajectories(trajectories), out / "trajectories.png")
        t_ms, neuron = snn.recorded_spikes(clear=True)
        save_figure(plot_raster(t_ms, neuron, period_ms=snn.period_ms), out / "raster.png")
    table = pd.concat(metrics, ignore_index=True)
    return table[["model", "policy", "metric", "dim", "k", "value", "n", "seed"]], log.assign(seed=seed)


def run_and_save_seed(seed: int, *, sizes: dict, out: Path) -> Path:
    """:func:`run_seed` and write its tables to ``out/seeds/seed_<seed>/`` (metrics last: the seed is done)."""
    print(f"seed {seed}", flush=True)
    select_device("runtime")
    seed_metrics, seed_log = run_seed(seed, sizes, out)
    seed_dir = out / "seeds" / f"seed_{seed}"
    seed_dir.mkdir(parents=True, exist_ok=True)
    write_csv_atomic(seed_log, seed_dir / "training_log.csv")
    write_csv_atomic(seed_metrics, seed_dir / "metrics.csv")
    return seed_dir


def main(argv: list[str] | None = None) -> int:
    parser = experiment_parser(__doc__.splitlines()[0])
    parser.add_argument("--skip-timing", action="store_true", help="skip the cpp_standalone timing")
    args = parser.parse_args(argv)

    def body():
        check_common_args(args)
        sizes = QUICK if args.quick else FULL
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        seed_dirs = [out / "seeds" / f"seed_{seed}" for seed in range(args.seeds)]
        todo = []
        for seed, seed_dir in enumerate(seed_dirs):
            if (seed_dir / "metrics.csv").is_file():
                print(f"seed {seed}: finished earlier, reusing {seed_dir}", flush=True)
            else:
                todo.append(seed)
        parallel_map(functools.partial(run_and_save_seed, sizes=sizes, out=out), todo, args.workers)
        metrics = [pd.read_csv(d / "metrics.csv") for d in seed_dirs]
        logs = [pd.read_csv(d / "training_log.csv") for d in seed_dirs]
        timing_config = snn_config(0, sizes)
        runtime_epochs = list(logs[0]["wall_s"])
        table = pd.concat(metrics, ignore_index=True)
        write_csv_atomic(table, out / "metrics.csv")
        write_csv_atomic(pd.concat(logs, ignore_index=True), out / "training_log.csv")
        (out / "config.json").write_text(
            json.dumps(
                {
                    "world_model": dataclasses.asdict(timing_config),
                    "sizes": sizes,
                    "env_id": ENV_ID,
                    "seeds": args.seeds,
                },
                indent=2,
                default=str,
            )
            + "\n"
        )
        if sizes["timing_epochs"] and not args.skip_timing:
            timing_data = collect_transitions(EnvironmentWrapper(ENV_ID), None, sizes["n_train"], seed=0)
            timing = standalone_timing(timing_config, timing_data, out, sizes["timing_epochs"])
            steps_per_period = timing_config.network.steps_per_env_step
            runtime = pd.DataFrame(
                {
                    "mode": "runtime_cython",
                    "epoch": range(len(runtime_epochs)),
                    "wall_s": runtime_epochs,
                    "n_transitions": len(timing_data),
                    "network_steps": len(timing_data) * steps_per_period + 1,
                }
            )
            write_csv_atomic(pd.concat([timing, runtime], ignore_index=True), out / "timing.csv")

        def median(model, metric, dim="mean", k=1):
            sel = table[
                (table.model == model)
                & (table.policy == "random")
                & (table.metric == metric)
                & (table.dim == dim)
                & (table.k == k)
            ]
            return float(sel["value"].median())

        return {
            "one_step_nmse": median("snn", "nmse"),
            "linear_nmse": median("linear", "nmse"),
            "mlp_nmse": median("mlp", "nmse"),
            "rollout25_nmse": median("snn", "rollout_nmse", k=25),
            "termination_recall": median("snn", "recall", dim="terminated"),
        }

    return run_main(body)


if __name__ == "__main__":
    sys.exit(main())
