"""The metrics table of a run and what is read from it: training rows, steps to a threshold, per-seed summaries."""

from __future__ import annotations

import pandas as pd


def metrics_frame(rows: list[dict]) -> pd.DataFrame:
    """The tidy metrics table of a run (columns :data:`~nmbrl_brian.results.METRIC_COLUMNS` first)."""
    from nmbrl_brian.results import METRIC_COLUMNS

    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=list(METRIC_COLUMNS))
    extra = [c for c in df.columns if c not in METRIC_COLUMNS]
    return df[list(METRIC_COLUMNS) + extra]


def training_rows(metrics: pd.DataFrame) -> pd.DataFrame:
    """The evaluations of the training weights (without the kept policy's final row)."""
    return metrics[metrics["policy"] != "kept"] if "policy" in metrics else metrics


def steps_to_threshold(metrics: pd.DataFrame, threshold: float = 475.0) -> float:
    """First ``env_steps`` at which the training weights' ``return_mean >= threshold``, or NaN if never."""
    metrics = training_rows(metrics)
    hit = metrics.loc[metrics["return_mean"] >= threshold, "env_steps"]
    return float(hit.iloc[0]) if len(hit) else float("nan")


def summarise_seeds(metrics: pd.DataFrame, threshold: float = 475.0) -> pd.DataFrame:
    """Per seed: first env steps with evaluation mean >= ``threshold`` (NaN if never), best and final
    return of the training weights, the kept policy's return (best weights, re-evaluated), wall time."""
    rows = []
    for seed, df in metrics.groupby("seed"):
        df = df.sort_values("env_steps", kind="stable")
        kept = df[df["policy"] == "kept"] if "policy" in df else df.iloc[:0]
        current = df[df["policy"] != "kept"] if "policy" in df else df
        rows.append(
            {
                "seed": seed,
                "steps_to_threshold": steps_to_threshold(current, threshold),
                "best_return_mean": current["return_mean"].max(),
                "final_return_mean": current["return_mean"].iloc[-1],
                "kept_return_mean": kept["return_mean"].iloc[-1] if len(kept) else float("nan"),
                "env_steps": int(current["env_steps"].max()),
                "wall_s": current["wall_s"].max(),
            }
        )
    return pd.DataFrame(rows)
