"""Gather every run's ``metrics.csv`` under a results root into one tidy table.

Reads only what runs wrote (``config.json`` and ``metrics.csv``); adds the run
folder and the flattened config fields as columns, so a parameter study can be
grouped with pandas, e.g. ``df.groupby('agent.actor_lr').return_mean.max()``.

Usage::

    python analysis/collect_runs.py results/ --out results/all_runs.csv
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd


def flatten(d: dict, prefix: str = "") -> dict:
    """``{"agent": {"gamma": 0.99}}`` -> ``{"agent.gamma": 0.99}``."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v if not isinstance(v, list) else str(v)
    return out


def collect_runs(root: str | Path) -> pd.DataFrame:
    """All ``metrics.csv`` rows below ``root`` with their run folder and config columns."""
    frames = []
    for metrics in sorted(Path(root).rglob("metrics.csv")):
        config_path = metrics.with_name("config.json")
        if not config_path.is_file():
            continue  # an experiment-level table, not a run
        df = pd.read_csv(metrics)
        config = flatten(json.loads(config_path.read_text()))
        for k, v in config.items():
            if k not in df.columns:
                df[k] = v
        df.insert(0, "run", metrics.parent.name)
        frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("root", help="results root to search")
    p.add_argument("--out", help="write the table here as CSV (default: print a summary)")
    args = p.parse_args(argv)
    df = collect_runs(args.root)
    if df.empty:
        print(f"error: root: expected a folder containing run folders, found none under {args.root}", file=sys.stderr)
        return 2
    if args.out:
        df.to_csv(args.out, index=False)
    best = df.groupby("run")["return_mean"].max()
    print(f"runs={df['run'].nunique()} rows={len(df)} best_return_mean_median={best.median():.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
