"""How accurate a spiking world model of a task is, learned online from few real transitions.

Tasks (``--env``): ``CartPole-v1`` (default) and ``Acrobot-v1``. Models: ``snn`` (the full
spiking world model), its two ablations ``snn_direct`` (the direct input -> readout pathway
alone: ``world_model.readout_learning_rate=0`` and ``world_model.learning_rate=0``) and
``snn_spiking`` (the spiking layer alone: ``world_model.direct_readout=false``), each with
``world_model.readout_gain=0`` (a pathway alone is not normalised with the other), ``linear``
(least squares) and ``mlp``. ``--set world_model.KEY=VALUE`` (repeatable) changes the world
model of all three spiking variants (the ablation's own settings win).

Figures: ``nmse_vs_transitions.png``, one-step and 25-step open-loop rollout NMSE against
the number of training transitions (every model; random-policy and good-policy held-out
data; medians over seeds); ``trajectories.png``, an open-loop rollout of the state
variables along the longest held-out random-policy episode (up to 50 steps; real vs the
models trained on the most transitions); and ``raster.png``, the spikes of the full world
model's recurrent LIF neurons during that rollout (one period per transition).
Claim (CartPole): trained online with local rules (one pass = one ``Network.run``, weights updated
after every transition, passes over the data scaled to its size) on 1,000 real
random-policy transitions, the spiking world model predicts the held-out one-step state
change with a normalised MSE of at most 0.001 (averaged over the four dimensions), and
its learned termination readout reaches a recall of at least 0.95 from 5,000, against
the linear and MLP baselines fitted to the same data. Bar on Acrobot: from 1,000
random-policy transitions, one-step NMSE at most 0.05 and a 25-step rollout NMSE at most half
of the direct pathway's alone (``rollout25_over_direct <= 0.5``).

Per seed: the first N of the same random-policy transitions for each N of
``--transitions``; held-out sets of 2,000 transitions from the random policy and from a
good policy: the dense TD(lambda) actor-critic baseline of the task (``cartpole_dense.toml``
or ``acrobot_dense.toml``, same seed) trained on the real environment until its greedy
evaluation mean reaches the task's bar (CartPole 475 within 200k steps, Acrobot -100 within
100k), then run greedily; if it never gets there, the best evaluated policy is used and the
run says so (``seeds/seed_<k>/good_policy.json``). Every model learns its own termination.
The MLP makes the same number of Adam steps at every N (150 epochs of 5,000 transitions).

Writes under ``--out``: ``seeds/seed_<k>/n_<N>/`` (the tables of each finished seed and
size, so a re-run of the same command resumes where it stopped; a folder of another
``--env`` or ``--set`` is refused), ``metrics.csv`` (tidy: model, policy, metric, dim, k,
value, n, seed, n_train; rollouts at k = 10 and 25, 25 only with ``--quick``),
``summary.csv`` (medians over seeds per model, policy, measure and N), ``training_log.csv``
(per spiking model and epoch: online NMSE, step sizes, run time), ``timing.csv``
(cpp_standalone at the largest N: re-running the compiled binary with ``run_args`` vs
regenerating and recompiling it for every epoch, seed 0; skipped with ``--quick`` or
``--skip-timing``), ``config.json`` and the figures.
The last line printed holds medians over seeds on the random-policy held-out set at the
largest N: ``one_step_nmse`` (full model), ``linear_nmse``, ``mlp_nmse``, ``rollout25_nmse``
(full model, 25 steps) and ``termination_recall``; then ``nmse_<N>``, the full model's
one-step NMSE at every N; then ``direct_nmse`` and ``spiking_nmse`` (one-step NMSE of the
two ablations), ``direct_rollout25_nmse``, ``spiking_rollout25_nmse``,
``linear_rollout25_nmse``, ``mlp_rollout25_nmse`` and ``rollout25_over_direct`` (the full
model's 25-step rollout NMSE divided by the direct pathway's).

Usage::

    python experiments/world_model_quality.py --transitions 100,300,1000,5000 --seeds 5 \\
        --out results/wm_quality
    python experiments/world_model_quality.py --env Acrobot-v1 --transitions 1000 --seeds 5 \\
        --skip-timing --out results/wm_quality_acrobot
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from nmbrl_brian import seeding
from nmbrl_brian.config import from_dict, load_config, parse_override, set_nested
from nmbrl_brian.devices import reset_device, select_device
from nmbrl_brian.envs import EnvironmentWrapper
from nmbrl_brian.envs.env_loop import EnvLoop
from nmbrl_brian.equations.world_model import DIRECT_PATHWAY_ALONE, SPIKING_LAYER_ALONE, WorldModelConfig
from nmbrl_brian.errors import ConfigError
from nmbrl_brian.experiment_tools import check_common_args, experiment_parser, parallel_map, run_main
from nmbrl_brian.plotting import save_figure
from nmbrl_brian.results import write_csv_atomic
from nmbrl_brian.training.run import build_agent
from nmbrl_brian.world_models import LinearWorldModel, MLPWorldModel, collect_transitions
from nmbrl_brian.world_models.baselines import MLPModelConfig
from nmbrl_brian.world_models.evaluation import evaluate_models, rollout
from nmbrl_brian.world_models.snn_world_model import SNNWorldModel

CONFIGS = Path(__file__).resolve().parents[1] / "nmbrl_brian" / "configs"


@dataclasses.dataclass(frozen=True)
class Task:
    """What the script needs to know of one environment."""

    dense_config: str
    """The dense twin's config (under ``nmbrl_brian/configs``), trained into the good policy."""
    model_config: str
    """The model-based config whose ``world_model`` section the spiking variants start from."""
    good_return: float
    """Greedy evaluation mean at which the dense twin counts as a good policy."""
    good_max_steps: int
    """Real steps the dense twin may take to get there (then the best policy seen is used)."""
    state_names: tuple[str, ...]
    state_units: tuple[str, ...]
    step: str
    """Duration of one environment step (axis label)."""


_CARTPOLE = (("x", "x_dot", "theta", "theta_dot"), ("m", "m/s", "rad", "rad/s"))
_ACROBOT = (
    ("cos_theta1", "sin_theta1", "cos_theta2", "sin_theta2", "theta1_dot", "theta2_dot"),
    ("1", "1", "1", "1", "rad/s", "rad/s"),
)
TASKS = {
    "CartPole-v1": Task("cartpole_dense.toml", "cartpole_mbrl.toml", 475.0, 200_000, *_CARTPOLE, "20 ms"),
    "Acrobot-v1": Task("acrobot_dense.toml", "acrobot_mbrl.toml", -100.0, 100_000, *_ACROBOT, "200 ms"),
}
#: The spiking variants: the full model and its two ablations (world-model settings on top of ``--set``).
SNN_VARIANTS = {
    "snn": {},
    "snn_direct": DIRECT_PATHWAY_ALONE,
    "snn_spiking": SPIKING_LAYER_ALONE,
}
MODELS = (*SNN_VARIANTS, "linear", "mlp")
TABLE_COLUMNS = ["model", "policy", "metric", "dim", "k", "value", "n", "seed", "n_train"]
FULL = {
    "transitions": (100, 300, 1000, 5000),
    "n_held_out": 2000,
    "mlp_epochs": 150,
    "mlp_reference_transitions": 5000,
    "max_segments": 300,
    "rollout_steps": 50,
    "ks": (10, 25),
    "timing_epochs": 3,
}
QUICK = {
    "transitions": (100, 300),
    "n_held_out": 500,
    "snn_epochs": 2,
    "mlp_epochs": 20,
    "mlp_reference_transitions": 300,
    "max_segments": 20,
    "rollout_steps": 15,
    "ks": (25,),
    "timing_epochs": 0,
}


def train_good_policy(env_id: str, seed: int) -> tuple[object, dict]:
    """The task's dense TD(lambda) twin trained on the real env until its greedy mean reaches the
    task's bar (:class:`Task`), or for at most ``good_max_steps`` steps.

    Returns the agent (the best evaluated weights if it never reached the bar) and a record:
    ``env_steps`` (real steps when the returned weights were evaluated), ``greedy_mean`` (their
    evaluation), ``reached`` and ``threshold``.
    """
    task = TASKS[env_id]
    config = load_config(CONFIGS / task.dense_config, seed=seed)
    env = EnvironmentWrapper(env_id)
    agent = build_agent(config, env.observation_space, env.action_space)
    loop = EnvLoop(env, seed=seed)
    returns: list[float] = []
    best = {"greedy_mean": -math.inf}
    for chunk in range(task.good_max_steps // config.eval_every):
        agent.interact(loop, max_steps=config.eval_every)
        returns.clear()
        eval_loop = EnvLoop(
            EnvironmentWrapper(env_id),
            seed=seeding.evaluation_seed(seed, chunk, config.eval_episodes),
            on_episode_end=lambda ret, length: returns.append(ret),
        )
        agent.interact(eval_loop, max_episodes=config.eval_episodes, explore=False, learn=False)
        if np.mean(returns) > best["greedy_mean"]:
            best = {
                "greedy_mean": float(np.mean(returns)),
                "env_steps": loop.env_steps,
                "state": agent.state_dict(),
            }
        if np.mean(returns) >= task.good_return:
            break
    agent.load_state_dict(best.pop("state"))
    return agent, best | {"reached": best["greedy_mean"] >= task.good_return, "threshold": task.good_return}


def collect(env_id: str, seed: int, sizes: dict, n_train: int, seed_dir: Path) -> dict:
    """Training data (random policy) and held-out sets (random and good policy) of one seed; the
    good policy's record goes to ``seed_dir/good_policy.json``."""
    env = EnvironmentWrapper(env_id)
    good_policy, record = train_good_policy(env_id, seed)
    seed_dir.mkdir(parents=True, exist_ok=True)
    (seed_dir / "good_policy.json").write_text(json.dumps(record, indent=2) + "\n")
    print(
        f"  good policy: dense baseline after {record['env_steps']} env steps, greedy mean "
        f"{record['greedy_mean']:.1f}"
        + ("" if record["reached"] else f" (never reached {record['threshold']:g}: the best policy seen)"),
        flush=True,
    )
    return {
        "train": collect_transitions(env, None, n_train, seed=seed),
        "random": collect_transitions(env, None, sizes["n_held_out"], seed=10_000 + seed),
        "good": collect_transitions(env, good_policy, sizes["n_held_out"], seed=20_000 + seed, explore=False),
    }


def train_snn(env_id: str, name: str, config: WorldModelConfig, train) -> tuple[SNNWorldModel, pd.DataFrame]:
    """Online supervised e-prop, one ``Network.run`` per epoch; returns the model and its log."""
    model = SNNWorldModel.for_env(
        env_id, use_termination_fn=False, config=config, name_prefix=f"wm{name[3:]}"
    )
    rows = []
    epochs = config.epochs_for(len(train))
    for _ in range(epochs):
        start = time.perf_counter()
        row = model.train_epoch(train)
        rows.append({**row, "wall_s": time.perf_counter() - start})
        if row["epoch"] % 10 == 9 or row["epoch"] == epochs - 1:
            print(
                f"  {name} epoch {row['epoch'] + 1}/{epochs}: online_nmse={row['online_nmse']:.5f} "
                f"({rows[-1]['wall_s']:.2f} s)",
                flush=True,
            )
    return model, pd.DataFrame(rows).assign(model=name)


def longest_episode(data, max_steps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Start state, recorded actions and real next states of the longest episode (at most ``max_steps`` steps)."""
    ids, counts = np.unique(data.episode, return_counts=True)
    rows = np.flatnonzero(data.episode == ids[np.argmax(counts)])[:max_steps]
    return data.obs[rows[0]], data.action[rows], data.next_obs[rows]


def plot_trajectories(trajectories: dict, *, task: Task = TASKS["CartPole-v1"], axes=None, **kwds):
    """One panel per state variable of ``task`` vs step: ``{label: states (k+1, D)}``; returns Axes 0."""
    import matplotlib.pyplot as plt

    n_dims = len(task.state_names)
    if axes is None:
        _, axes = plt.subplots(math.ceil(n_dims / 2), 2, figsize=(10, 1.5 + 1.5 * n_dims / 2), sharex=True)
    axes = np.ravel(axes)
    for label, states in trajectories.items():
        style = (
            {"color": "k", "lw": 3.0, "alpha": 0.4}
            if label == "real"
            else {"lw": 1.2, "ls": "-" if label.startswith("snn") else "--"}
        )
        for d, ax in enumerate(axes[:n_dims]):
            ax.plot(np.arange(len(states)), states[:, d], label=label, **style, **kwds)
    for d, ax in enumerate(axes[:n_dims]):
        ax.set_ylabel(f"{task.state_names[d]} ({task.state_units[d]})")
        if d >= n_dims - 2:
            ax.set_xlabel(f"environment step ({task.step})")
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
    ax.set_xlabel(f"network time (ms); one {period_ms:g} ms period per transition")
    ax.set_ylabel("recurrent neuron")
    ax.set_title(f"spiking world model during the rollout ({len(t_ms)} spikes)")
    return ax


def plot_nmse_vs_transitions(summary: pd.DataFrame, *, axes=None, **kwds):
    """One-step (solid) and 25-step rollout (dashed) NMSE vs training transitions, one panel per
    held-out policy, one colour per model; returns the first Axes."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    axes = np.ravel(axes)
    for ax, policy in zip(axes, ("random", "good")):
        for (model, color), (metric, k, ls) in itertools.product(
            zip([m for m in MODELS if m in set(summary.model)], ("C0", "C3", "C4", "C1", "C2")),
            (("nmse", 1, "-"), ("rollout_nmse", 25, "--")),
        ):
            sel = summary[
                (summary.model == model)
                & (summary.policy == policy)
                & (summary.metric == metric)
                & (summary.k == k)
            ].sort_values("n_train")
            label = f"{model}, {'one-step' if k == 1 else f'{k}-step rollout'}"
            ax.plot(sel["n_train"], sel["value"], ls, marker="o", color=color, label=label, **kwds)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("training transitions (random policy)")
        ax.set_title(f"held-out {policy}-policy data")
    axes[0].set_ylabel("NMSE of the state change (median over seeds)")
    axes[0].legend(fontsize=7)
    return axes[0]


def standalone_timing(env_id: str, config: WorldModelConfig, train, out: Path, epochs: int) -> pd.DataFrame:
    """Per-epoch wall time under cpp_standalone: re-run with ``run_args`` vs rebuild every epoch."""
    config = dataclasses.replace(config, periods_per_run=len(train), epochs=epochs)
    steps = len(train) * config.network.steps_per_env_step + 1
    rows, weights = [], {}
    for mode in ("rerun", "rebuild"):
        select_device("cpp_standalone", out / "standalone_build" / mode)
        try:
            model = SNNWorldModel.for_env(
                env_id, use_termination_fn=False, config=config, rebuild_each_run=mode == "rebuild"
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


def snn_config(
    env_id: str, seed: int, sizes: dict, n_train: int, overrides: tuple[str, ...] = (), variant: str = "snn"
) -> WorldModelConfig:
    """The spiking world model of one seed: the ``world_model`` section of the task's model-based
    config (:attr:`Task.model_config`) with learned termination and one run per epoch, then the
    ``--set`` items (``world_model.KEY=VALUE``), then the settings of ``variant`` (:data:`SNN_VARIANTS`).

    Raises
    ------
    ConfigError
        On an item that is not ``world_model.KEY=VALUE`` or a bad key or value.
    """
    epochs = {"epochs": sizes["snn_epochs"], "min_updates": 0} if "snn_epochs" in sizes else {}
    base = load_config(CONFIGS / TASKS[env_id].model_config).world_model
    config = dataclasses.replace(base, termination="learned", seed=seed, periods_per_run=n_train, **epochs)
    data: dict = {}
    for item in overrides:
        keys, value = parse_override(item)
        if keys[0] != "world_model" or len(keys) < 2:
            raise ConfigError(
                "--set", "world_model.KEY=VALUE, e.g. world_model.network.n_recurrent=400", item
            )
        set_nested(data, keys[1:], value)
    config = from_dict(WorldModelConfig, data, prefix="world_model.", base=config)
    return dataclasses.replace(config, **SNN_VARIANTS[variant])


def mlp_config(seed: int, sizes: dict, n_train: int) -> MLPModelConfig:
    """The MLP baseline: as many Adam steps as ``mlp_epochs`` passes over the reference size."""
    batch = MLPModelConfig().batch_size
    steps = sizes["mlp_epochs"] * math.ceil(sizes["mlp_reference_transitions"] / batch)
    return MLPModelConfig(epochs=math.ceil(steps / math.ceil(n_train / batch)), seed=seed)


def size_dir(out: Path, seed: int, n_train: int) -> Path:
    """Where the tables of one seed and training size go."""
    return out / "seeds" / f"seed_{seed}" / f"n_{n_train}"


def run_size(
    env_id: str, seed: int, n_train: int, data: dict, sizes: dict, out: Path, *, overrides=(), figures: bool
) -> None:
    """Train the models (:data:`MODELS`) on the first ``n_train`` transitions, evaluate them on both
    held-out sets and write the tables to :func:`size_dir` (metrics last: this size is done).

    With ``figures`` the trajectory and raster figures are drawn too.
    """
    print(f"seed {seed}, {n_train} transitions", flush=True)
    train = data["train"].subset(slice(0, n_train))
    models, logs = {}, []
    for name in SNN_VARIANTS:
        models[name], log = train_snn(
            env_id, name, snn_config(env_id, seed, sizes, n_train, overrides, name), train
        )
        logs.append(log)
    snn = models["snn"]
    models["linear"] = LinearWorldModel.for_env(env_id, use_termination_fn=False).fit(train)
    models["mlp"] = MLPWorldModel.for_env(
        env_id, use_termination_fn=False, config=mlp_config(seed, sizes, n_train)
    ).fit(train)
    metrics = []
    names = TASKS[env_id].state_names
    for policy in ("random", "good"):
        df = evaluate_models(
            models, data[policy], ks=sizes["ks"], dim_names=names, max_segments=sizes["max_segments"]
        )
        metrics.append(df.assign(policy=policy, seed=seed, n_train=n_train))
    if figures:
        start, actions, real_next = longest_episode(data["random"], sizes["rollout_steps"])
        trajectories = {"real": np.vstack([start, real_next])}
        snn.record_spikes = True
        for name, model in models.items():
            states, _, _ = rollout(model, start[None], actions[None])
            trajectories[name] = states[0]
        snn.record_spikes = False
        save_figure(plot_trajectories(trajectories, task=TASKS[env_id]), out / "trajectories.png")
        t_ms, neuron = snn.recorded_spikes(clear=True)
        save_figure(plot_raster(t_ms, neuron, period_ms=snn.period_ms), out / "raster.png")
    table = pd.concat(metrics, ignore_index=True)
    directory = size_dir(out, seed, n_train)
    directory.mkdir(parents=True, exist_ok=True)
    log = pd.concat(logs, ignore_index=True)
    write_csv_atomic(log.assign(seed=seed, n_train=n_train), directory / "training_log.csv")
    write_csv_atomic(table[TABLE_COLUMNS], directory / "metrics.csv")


def run_seed(
    seed: int, *, env_id: str, sizes: dict, transitions: tuple[int, ...], out: Path, overrides=()
) -> None:
    """Every unfinished training size of one seed (seed 0 draws the figures at the largest size)."""
    todo = [n for n in transitions if not (size_dir(out, seed, n) / "metrics.csv").is_file()]
    if not todo:
        return
    select_device("runtime")
    data = collect(env_id, seed, sizes, max(transitions), out / "seeds" / f"seed_{seed}")
    for n_train in todo:
        figures = seed == 0 and n_train == max(transitions)
        run_size(env_id, seed, n_train, data, sizes, out, overrides=overrides, figures=figures)


def parse_transitions(text: str) -> tuple[int, ...]:
    """``"100,300,1000"`` -> ``(100, 300, 1000)``: distinct integers >= 10, sorted."""
    try:
        values = tuple(sorted({int(v) for v in text.split(",") if v.strip()}))
    except ValueError:
        values = ()
    if not values or values[0] < 10:
        raise ConfigError("--transitions", "comma-separated integers >= 10, e.g. 100,300,1000,5000", text)
    return values


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """Medians over seeds of the mean-over-dimensions NMSE and the termination measures."""
    keep = (table.dim == "mean") | (table.dim == "terminated")
    keys = ["model", "policy", "metric", "dim", "k", "n_train"]
    return table[keep].groupby(keys, as_index=False)["value"].median()


def check_out(out: Path, record: dict) -> None:
    """Refuse an ``--out`` whose ``config.json`` is of another task, ``--set`` or model list (its
    finished seeds would be reused as if they were this run's)."""
    path = out / "config.json"
    if not path.is_file():
        return
    old = json.loads(path.read_text())
    old = {
        "env_id": old.get("env_id"),
        "overrides": old.get("overrides", []),
        "models": old.get("models", ["snn", "linear", "mlp"]),
    }
    new = {key: record[key] for key in old}
    if old != new:
        raise ConfigError(
            "--out",
            "a new folder, or one of a run with the same --env and --set",
            str(out),
            note=f"it holds {old['env_id']} with --set {' '.join(old['overrides']) or '(none)'}",
        )


def main(argv: list[str] | None = None) -> int:
    parser = experiment_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--env", default="CartPole-v1", help="task: " + " or ".join(TASKS) + " (default CartPole-v1)"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="world_model.KEY=VALUE",
        help="world-model setting of every spiking variant, e.g. world_model.network.n_recurrent=400",
    )
    parser.add_argument(
        "--transitions",
        default=None,
        help="training sizes, comma-separated (default 100,300,1000,5000; with --quick 100,300)",
    )
    parser.add_argument("--skip-timing", action="store_true", help="skip the cpp_standalone timing")
    args = parser.parse_args(argv)

    def body():
        check_common_args(args)
        env_id, overrides = args.env, tuple(args.overrides)
        if env_id not in TASKS:
            raise ConfigError("--env", "one of " + ", ".join(TASKS), env_id)
        sizes = QUICK if args.quick else FULL
        transitions = (
            parse_transitions(args.transitions) if args.transitions is not None else sizes["transitions"]
        )
        largest = max(transitions)
        timing_config = snn_config(env_id, 0, sizes, largest, overrides)  # checks --set before anything runs
        for variant in SNN_VARIANTS:
            snn_config(env_id, 0, sizes, largest, overrides, variant)
        record = {
            "world_model": dataclasses.asdict(timing_config),
            "variants": SNN_VARIANTS,
            "overrides": list(overrides),
            "epochs_per_size": {n: timing_config.epochs_for(n) for n in transitions},
            "mlp_epochs_per_size": {n: mlp_config(0, sizes, n).epochs for n in transitions},
            "sizes": sizes,
            "transitions": transitions,
            "env_id": env_id,
            "models": list(MODELS),
            "seeds": args.seeds,
        }
        out = Path(args.out)
        check_out(out, json.loads(json.dumps(record, default=str)))
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
        todo = []
        for seed in range(args.seeds):
            if all((size_dir(out, seed, n) / "metrics.csv").is_file() for n in transitions):
                print(f"seed {seed}: finished earlier, reusing {out / 'seeds' / f'seed_{seed}'}", flush=True)
            else:
                todo.append(seed)
        run = functools.partial(
            run_seed, env_id=env_id, sizes=sizes, transitions=transitions, out=out, overrides=overrides
        )
        parallel_map(run, todo, args.workers)
        dirs = [size_dir(out, seed, n) for seed in range(args.seeds) for n in transitions]
        table = pd.concat([pd.read_csv(d / "metrics.csv") for d in dirs], ignore_index=True)
        logs = pd.concat([pd.read_csv(d / "training_log.csv") for d in dirs], ignore_index=True)
        summary = summarise(table)
        write_csv_atomic(table, out / "metrics.csv")
        write_csv_atomic(logs, out / "training_log.csv")
        write_csv_atomic(summary, out / "summary.csv")
        save_figure(plot_nmse_vs_transitions(summary), out / "nmse_vs_transitions.png")
        if sizes["timing_epochs"] and not args.skip_timing:
            timing_data = collect_transitions(EnvironmentWrapper(env_id), None, largest, seed=0)
            timing = standalone_timing(env_id, timing_config, timing_data, out, sizes["timing_epochs"])
            steps_per_period = timing_config.network.steps_per_env_step
            runtime_epochs = logs[(logs.seed == 0) & (logs.n_train == largest) & (logs.model == "snn")][
                "wall_s"
            ]
            runtime = pd.DataFrame(
                {
                    "mode": "runtime_cython",
                    "epoch": range(len(runtime_epochs)),
                    "wall_s": list(runtime_epochs),
                    "n_transitions": len(timing_data),
                    "network_steps": len(timing_data) * steps_per_period + 1,
                }
            )
            write_csv_atomic(pd.concat([timing, runtime], ignore_index=True), out / "timing.csv")

        def median(model, metric, n_train, dim="mean", k=1):
            sel = summary[
                (summary.model == model)
                & (summary.policy == "random")
                & (summary.metric == metric)
                & (summary.dim == dim)
                & (summary.k == k)
                & (summary.n_train == n_train)
            ]
            return float(sel["value"].iloc[0])

        figures = {
            "one_step_nmse": median("snn", "nmse", largest),
            "linear_nmse": median("linear", "nmse", largest),
            "mlp_nmse": median("mlp", "nmse", largest),
            "rollout25_nmse": median("snn", "rollout_nmse", largest, k=25),
            "termination_recall": median("snn", "recall", largest, dim="terminated"),
        }
        figures |= {f"nmse_{n}": median("snn", "nmse", n) for n in transitions}
        figures |= {
            "direct_nmse": median("snn_direct", "nmse", largest),
            "spiking_nmse": median("snn_spiking", "nmse", largest),
        }
        for label, model in (
            ("direct", "snn_direct"),
            ("spiking", "snn_spiking"),
            ("linear", "linear"),
            ("mlp", "mlp"),
        ):
            figures[f"{label}_rollout25_nmse"] = median(model, "rollout_nmse", largest, k=25)
        direct = figures["direct_rollout25_nmse"]
        figures["rollout25_over_direct"] = figures["rollout25_nmse"] / direct if direct > 0 else math.nan
        return figures

    return run_main(body)


if __name__ == "__main__":
    sys.exit(main())
