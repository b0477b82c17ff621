"""Core metrics by time of day, volatility decile and symbol, from the per-anchor score frames."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from diffstock_ml.evaluation.config import EvaluationConfig, level_name

# Breakdown name -> the per-anchor column it groups by (see `pointwise.anchor_keys`).
BREAKDOWNS = {
    "time_of_day": "minutes_since_open",
    "volatility_decile": "volatility_decile",
    "symbol": "symbol",
}


def core_metrics(config: EvaluationConfig) -> list[pl.Expr]:
    """Aggregations of per-anchor scores: n, crps_bp, coverage_<p>, sharpness_bp, mae_bp."""
    coverage = [
        pl.col(f"covered_{level_name(p)}").mean().alias(f"coverage_{level_name(p)}")
        for p in config.coverage_levels
    ]
    return [
        pl.len().alias("n"),
        pl.col("crps_bp").mean(),
        *coverage,
        pl.col(f"width_{level_name(config.sharpness_level)}_bp").mean().alias("sharpness_bp"),
        pl.col("error_bp").abs().mean().alias("mae_bp"),
    ]


def breakdown(
    per_anchor: pl.DataFrame,
    name: str,
    config: EvaluationConfig,
    baselines: Sequence[str] = (),
) -> pl.DataFrame:
    """One row per (model, group) of the breakdown `name` (a key of `BREAKDOWNS`).

    `per_anchor` stacks every model's score frame with a `model` column and the anchor keys.
    Adds `crps_skill_vs_<baseline>` per group for each baseline, and the sigma range of each
    volatility bucket.
    """
    if name not in BREAKDOWNS:
        raise ValueError(f"unknown breakdown {name!r}; choose from {sorted(BREAKDOWNS)}")
    key = BREAKDOWNS[name]
    extra = [pl.col("sigma").min().alias("sigma_min"), pl.col("sigma").max().alias("sigma_max")]
    aggregations = core_metrics(config) + (extra if name == "volatility_decile" else [])
    table = per_anchor.group_by("model", key).agg(aggregations)
    for baseline in baselines:
        reference = table.filter(pl.col("model") == baseline).select(
            key, pl.col("crps_bp").alias("_baseline_crps")
        )
        skill = 1 - pl.col("crps_bp") / pl.col("_baseline_crps")
        table = (
            table.join(reference, on=key, how="left")
            .with_columns(skill.alias(f"crps_skill_vs_{baseline}"))
            .drop("_baseline_crps")
        )
    return table.sort("model", key)
