"""Plot a sweep's return and energy against each swept parameter, and the energy vs sample-efficiency front.

Reads only the table that ``nmbrl sweep`` writes (``sweep.parquet``, or ``sweep.csv`` without
pyarrow), with pandas. Runs whose status is not ``finished`` are left out.

Writes under ``--out`` (default: the sweep folder):

- ``sweep_<parameter>.png`` for every swept parameter: final evaluation return (left) and
  training energy of ``--profile`` (right) against the parameter; each run is a dot, the line
  joins the medians over seeds.
- ``pareto_energy_steps.png`` and ``pareto_front.csv``: training energy against the real
  environment steps to an evaluation mean of 475, for the runs that reached it; the front (no
  other run needs both less energy and fewer steps) is marked.

Its last line holds ``key=value`` figures.

Usage::

    python analysis/sweep_report.py results/sweep_grid --profile loihi
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from nmbrl_brian.errors import ConfigError
from nmbrl_brian.plotting import save_figure
from nmbrl_brian.sweep import ENERGY_PREFIX, parameter_columns, pareto_front, read_table

STEPS = "steps_to_475"


def plot_against_parameter(data: pd.DataFrame, *, parameter: str, column: str, axes=None, **kwds):
    """``column`` of every run against ``parameter`` (dots) and its median over seeds (line)."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(figsize=(6, 4))
    numeric = pd.api.types.is_numeric_dtype(data[parameter])
    values = list(dict.fromkeys(sorted(data[parameter]) if numeric else data[parameter].astype(str)))
    x = data[parameter] if numeric else data[parameter].astype(str).map({v: i for i, v in enumerate(values)})
    axes.plot(x, data[column], ".", color="0.5", **kwds)
    medians = data.assign(_x=x).groupby("_x")[column].median()
    axes.plot(medians.index, medians.to_numpy(), "-o", color="C0")
    if not numeric:
        axes.set_xticks(range(len(values)), values, rotation=30, ha="right")
    elif (data[parameter] > 0).all() and data[parameter].max() > 10 * data[parameter].min():
        axes.set_xscale("log")
    axes.set_xlabel(parameter)
    return axes


def plot_pareto(data: pd.DataFrame, *, energy: str, axes=None, **kwds):
    """Training energy vs real steps to 475 of every run that got there, with the front marked."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(figsize=(6, 4))
    solved = data.dropna(subset=[STEPS, energy])
    front = pareto_front(solved, STEPS, energy)
    axes.plot(solved[STEPS], solved[energy], ".", color="0.5", label="run", **kwds)
    axes.plot(front[STEPS], front[energy], "-o", color="C3", label="front (no run better in both)")
    axes.set_xlabel("real environment steps to evaluation mean 475")
    axes.set_ylabel(f"training energy, {energy.removeprefix(ENERGY_PREFIX)} profile (J)")
    axes.legend(fontsize="small")
    return axes


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sweep", help="the sweep folder (nmbrl sweep --out) or its table")
    p.add_argument("--profile", default="loihi", help="energy profile to plot (default: loihi)")
    p.add_argument("--out", help="folder for the figures (default: the sweep folder)")
    args = p.parse_args(argv)
    import matplotlib.pyplot as plt

    try:
        table = read_table(args.sweep)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    energy = f"{ENERGY_PREFIX}{args.profile}"
    if energy not in table.columns:
        profiles = [c.removeprefix(ENERGY_PREFIX) for c in table.columns if c.startswith(ENERGY_PREFIX)]
        print(
            f"error: --profile: expected one of {', '.join(profiles) or '(none)'}, got {args.profile!r}",
            file=sys.stderr,
        )
        return 2
    sweep = Path(args.sweep)
    out = Path(args.out) if args.out else (sweep if sweep.is_dir() else sweep.parent)
    out.mkdir(parents=True, exist_ok=True)
    done = table[table["status"] == "finished"]
    for parameter in parameter_columns(table):
        _, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
        plot_against_parameter(done, parameter=parameter, column="final_return_mean", axes=left)
        left.set_ylabel("final evaluation return (mean over episodes)")
        plot_against_parameter(done, parameter=parameter, column=energy, axes=right)
        right.set_ylabel(f"training energy, {args.profile} profile (J)")
        save_figure(left, out / f"sweep_{parameter}.png")
    front = pareto_front(done, STEPS, energy)
    front.to_csv(out / "pareto_front.csv", index=False)
    save_figure(plot_pareto(done, energy=energy), out / "pareto_energy_steps.png")
    cheapest = front[energy].min() if len(front) else np.nan
    print(
        f"runs={len(table)} finished={len(done)} solved={int(done[STEPS].notna().sum())} "
        f"pareto_points={len(front)} min_energy_solved_j={cheapest:.4g}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
