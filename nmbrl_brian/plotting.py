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


def save_figure(ax, path) -> None:
    """Save the figure of ``ax`` to ``path`` and close it."""
    fig = ax.figure
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
