"""Plot helpers. Each has the signature ``plot_x(data, *, axes=None, **kwds) -> Axes``,
labels its axes with units and never calls ``show()``."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg", force=False)

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def _axes(axes):
    if axes is None:
        _, axes = plt.subplots(figsize=(6, 4))
    return axes


def plot_learning_curve(data: pd.DataFrame, *, axes=None, label: str | None = None, **kwds):
    """Evaluation return vs real environment steps for one run.

    Parameters
    ----------
    data : pandas.DataFrame
        ``metrics.csv`` rows with ``env_steps``, ``return_mean`` and ``return_std``.
    axes : matplotlib.axes.Axes, optional
        Where to draw; a new figure if None.
    label : str, optional
        Legend label.
    **kwds
        Passed to ``Axes.plot``.
    """
    ax = _axes(axes)
    x = data["env_steps"].to_numpy()
    y = data["return_mean"].to_numpy()
    s = data["return_std"].to_numpy()
    (line,) = ax.plot(x, y, label=label, **kwds)
    ax.fill_between(x, y - s, y + s, alpha=0.2, color=line.get_color())
    ax.set_xlabel("real environment steps")
    ax.set_ylabel("evaluation return (mean ± std over episodes)")
    if label:
        ax.legend()
    return ax


def plot_return_quantiles(
    data: pd.DataFrame, *, axes=None, label: str | None = None, threshold: float | None = None, **kwds
):
    """Median and interquartile range over seeds of the evaluation return vs env steps.

    Parameters
    ----------
    data : pandas.DataFrame
        Tidy rows with ``env_steps``, ``return_mean`` and ``seed`` (several seeds); rows of a
        kept policy (``policy == "kept"``) are left out.
    axes : matplotlib.axes.Axes, optional
        Where to draw; a new figure if None.
    label : str, optional
        Legend label.
    threshold : float, optional
        Draw a dashed horizontal line at this return (e.g. 475).
    **kwds
        Passed to ``Axes.plot``.
    """
    ax = _axes(axes)
    if "policy" in data:
        data = data[data["policy"] != "kept"]
    # Seeds may be evaluated at different step counts (standalone runs end on whole runs): each
    # seed's curve holds its last evaluation until the next one.
    curves = data.pivot_table(index="env_steps", columns="seed", values="return_mean").sort_index().ffill()
    q = pd.DataFrame(
        {
            "q25": curves.quantile(0.25, axis=1),
            "q50": curves.median(axis=1),
            "q75": curves.quantile(0.75, axis=1),
        }
    )
    (line,) = ax.plot(q.index, q["q50"], label=label, **kwds)
    ax.fill_between(q.index, q["q25"], q["q75"], alpha=0.25, color=line.get_color())
    if threshold is not None:
        ax.axhline(threshold, ls="--", color="grey", lw=1)
    ax.set_xlabel("real environment steps")
    ax.set_ylabel("evaluation return (median, IQR over seeds)")
    if label:
        ax.legend()
    return ax


def plot_energy_breakdown(data: pd.DataFrame, *, axes=None, by: str | None = None, log: bool = False, **kwds):
    """Energy per phase and operation kind as stacked bars, one bar per profile (and per ``by`` value).

    Parameters
    ----------
    data : pandas.DataFrame
        Tidy energy rows (``energy.csv``): ``phase``, ``operation``, ``profile``, ``joules``; with a
        ``seed`` column (several runs) each bar segment is the median over seeds of the runs' sums.
    axes : matplotlib.axes.Axes, optional
        Where to draw; a new figure if None.
    by : str, optional
        A column that tells runs apart within a profile, e.g. ``"agent"`` (spiking vs dense): bars
        of one profile stand side by side.
    log : bool
        Logarithmic energy axis (profiles differ by orders of magnitude).
    **kwds
        Passed to ``Axes.bar``.

    Colours are operation kinds, hatches are phases; empty segments are left out.
    """
    import numpy as np

    groups = [by] if by else []
    keys = [*groups, "profile", "phase", "operation"]
    per_run = data.groupby([*keys, *(["seed"] if "seed" in data else [])], sort=False)["joules"].sum()
    energy = per_run.groupby(level=list(range(len(keys))), sort=False).median()
    bars = [
        b if isinstance(b, tuple) else (b,)
        for b in dict.fromkeys(energy.index.droplevel(["phase", "operation"]))
    ]
    profile_index = {p: i for i, p in enumerate(dict.fromkeys(bar[-1] for bar in bars))}
    bars.sort(key=lambda bar: profile_index[bar[-1]])  # the bars of one profile side by side
    if axes is None:
        _, axes = plt.subplots(figsize=(max(6.0, 3.0 + 0.45 * len(bars)), 4.5))
    ax = axes
    phases = list(dict.fromkeys(energy.index.get_level_values("phase")))
    operations = list(dict.fromkeys(energy.index.get_level_values("operation")))
    colors = {op: f"C{i}" for i, op in enumerate(operations)}
    hatches = {phase: h for phase, h in zip(phases, ["", "//", "..", "xx", "\\\\", "oo"] * 4)}
    x = np.arange(len(bars)) + 0.6 * np.array(
        [profile_index[bar[-1]] for bar in bars]
    )  # gaps between profiles
    bottom = np.zeros(len(bars))
    drawn: set = set()
    for phase in phases:
        for op in operations:
            heights = np.array([energy.get((*bar, phase, op), 0.0) for bar in bars])
            if not heights.any():
                continue
            ax.bar(
                x, heights, bottom=bottom, color=colors[op], hatch=hatches[phase], edgecolor="white", **kwds
            )
            bottom += heights
            drawn.update({("op", op), ("phase", phase)})
    from matplotlib.patches import Patch

    handles = [Patch(color=colors[op], label=op) for op in operations if ("op", op) in drawn]
    if len(phases) > 1:
        handles += [
            Patch(facecolor="white", edgecolor="0.3", hatch=hatches[p], label=f"phase: {p}") for p in phases
        ]
    ax.legend(handles=handles, fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_xticks(x, [" ".join(map(str, bar[::-1])) for bar in bars], rotation=45, ha="right")
    ax.set_xlabel("energy profile" + (f" and {by}" if by else ""))
    ax.set_ylabel("energy (J)")
    if log:
        ax.set_yscale("log")
    return ax


def plot_return_vs_energy(
    data: pd.DataFrame,
    *,
    axes=None,
    profile: str | None = None,
    label: str | None = None,
    threshold: float | None = None,
    **kwds,
):
    """Evaluation return vs the training energy spent so far, one line per profile.

    Parameters
    ----------
    data : pandas.DataFrame
        Rows with ``profile``, ``joules`` (cumulative training energy) and ``return_mean``, as
        :func:`nmbrl_brian.energy.return_vs_energy` makes them from one run's files.
    axes : matplotlib.axes.Axes, optional
        Where to draw; a new figure if None.
    profile : str, optional
        Draw only this profile.
    label : str, optional
        Legend label (the profile name is added).
    threshold : float, optional
        Draw a dashed horizontal line at this return (e.g. 475).
    **kwds
        Passed to ``Axes.plot``.
    """
    ax = _axes(axes)
    if profile is not None:
        data = data[data["profile"] == profile]
    for name, rows in data.groupby("profile", sort=False):
        rows = rows.sort_values("joules", kind="stable")
        text = f"{label} ({name})" if label else str(name)
        ax.plot(rows["joules"], rows["return_mean"], marker=".", label=text, **kwds)
    if threshold is not None:
        ax.axhline(threshold, ls="--", color="grey", lw=1)
    ax.set_xlabel("training energy spent (J)")
    ax.set_ylabel("evaluation return (mean over episodes)")
    ax.legend(fontsize="small")
    return ax


def plot_episode_activity(activity: dict, *, axes=None, title: str | None = None, state_names=None):
    """One recorded episode: the environment's state, actions and rewards, the spikes of the input and
    recurrent populations and the readouts, on one time axis (ms of network time).

    Parameters
    ----------
    activity : dict
        What :meth:`~nmbrl_brian.agents.spiking_actor_critic.SpikingActorCritic.record_episode` returns.
    axes : sequence of 4 matplotlib.axes.Axes, optional
        State, actions/rewards, spike raster, readouts; a new figure if None.
    title : str, optional
        Title of the top panel.
    state_names : sequence of str, optional
        Names (with units) of the observation dimensions.

    Returns
    -------
    sequence of Axes
    """
    import numpy as np

    if axes is None:
        _, axes = plt.subplots(
            4, 1, figsize=(7, 8), sharex=True, gridspec_kw={"height_ratios": [1.2, 0.6, 2, 1]}
        )
    ax_state, ax_act, ax_spk, ax_out = axes
    t = activity["period_t"]
    obs = activity["obs"]
    names = state_names or [f"s{d}" for d in range(obs.shape[1])]
    for d in range(obs.shape[1]):
        ax_state.step(t, obs[:, d], where="post", label=names[d], lw=1)
    ax_state.set_ylabel("state (SI units)")
    ax_state.legend(fontsize=6, ncol=len(names), loc="upper left")
    if title:
        ax_state.set_title(title, fontsize=9)
    decided = activity["decide"] == 1
    ax_act.plot(t[decided], activity["action"][decided], "|", ms=8, label="action (0/1)")
    stepped = activity["stepped"] == 1
    ax_act.plot(t[stepped], activity["reward"][stepped], ".", ms=3, label="reward")
    ax_act.set_ylabel("action,\nreward")
    ax_act.legend(fontsize=6, loc="upper left")
    ax_spk.plot(activity["input_t"], activity["input_i"], ",", color="tab:green")
    offset = activity["n_inputs"]
    ax_spk.plot(activity["recurrent_t"], activity["recurrent_i"] + offset, ",", color="black")
    ax_spk.axhline(offset - 0.5, color="grey", lw=0.5)
    ax_spk.set_ylabel("neuron\n(inputs below the line)")
    y = activity["readout_y"]
    for k, name in enumerate(activity["readout_names"]):
        ax_out.plot(activity["readout_t"], y[k], lw=0.8, label=name)
    ax_out.set_ylabel("readout y (a.u.)")
    ax_out.set_xlabel("network time (ms)")
    ax_out.legend(fontsize=6, loc="upper left")
    if len(t):
        ax_out.set_xlim(0, float(np.max(t)) + 10)
    return axes


def save_figure(ax, path) -> None:
    """Save the figure of ``ax`` to ``path`` and close it."""
    fig = ax.figure
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
