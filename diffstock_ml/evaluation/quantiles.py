"""Quantile forecasts: the nine stored levels, the pinball loss and the weighted quantile loss.

`QUANTILE_LEVELS` are the levels `forecasts.parquet` stores beside the samples (`q01 … q99`)
and the report scores. Quantiles of an ensemble are its interpolated sample quantiles
(`forecasts.quantiles`, numpy's default "linear" method), as everywhere else in the report.

- Pinball (quantile) loss of the α-quantile q at the outcome y: (1{y < q} − α)(q − y)
  (Koenker & Bassett 1978; scoringrules `quantile_score`), in bp; twice the mean over
  evenly spaced levels tends to the CRPS as they get dense.
- Weighted quantile loss as GluonTS defines it: wQL_α = 2 Σ_anchors pinball_α / Σ_anchors |y|,
  and `wql` its mean over the levels (GluonTS `mean_wQuantileLoss`). Scale-free, but the
  denominator is the realised mean |return|: a calm day divides by less.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
import scoringrules as sr

from diffstock_ml.evaluation.scores import BP

# The one definition of the stored quantile levels (returned by the served model too).
QUANTILE_LEVELS: tuple[float, ...] = (0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)


def quantile_name(level: float) -> str:
    """0.01 -> "q01", 0.5 -> "q50", 0.99 -> "q99": the column name of a whole-percent level."""
    percent = level * 100
    if not 0 < level < 1 or abs(percent - round(percent)) > 1e-9:
        raise ValueError(f"quantile level {level} is not a whole percent inside (0, 1)")
    return f"q{round(percent):02d}"


def pinball_bp(
    quantile_values: np.ndarray, target: np.ndarray, levels: Sequence[float] = QUANTILE_LEVELS
) -> np.ndarray:
    """`[B, L]` pinball loss of the forecast quantiles `[B, L]` at `levels [L]` for `target [B]`,
    in bp (scoringrules `quantile_score`)."""
    quantile_values = np.asarray(quantile_values, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    alpha = np.asarray(levels, dtype=np.float64)
    if quantile_values.shape != (len(target), len(alpha)):
        raise ValueError(
            f"quantiles {quantile_values.shape} do not match {len(target)} targets x "
            f"{len(alpha)} levels"
        )
    return np.asarray(sr.quantile_score(target[:, None], quantile_values, alpha[None, :])) * BP


def weighted_quantile_loss(pinball: np.ndarray, target: np.ndarray) -> np.ndarray:
    """`[L]` GluonTS wQL per level: 2 Σ pinball / Σ |target| over the anchors (pinball `[B, L]`
    in bp, target `[B]` in returns). NaN where every target is exactly zero."""
    denominator = float(np.abs(np.asarray(target, dtype=np.float64)).sum()) * BP
    numerator = 2.0 * np.asarray(pinball, dtype=np.float64).sum(axis=0)
    if denominator == 0:
        return np.full(numerator.shape, np.nan)
    return numerator / denominator


def pinball_column(level: float) -> str:
    """The per-anchor and overall pinball column of a level, e.g. `pinball_q05_bp`."""
    return f"pinball_{quantile_name(level)}_bp"


def quantile_columns(
    frame: pl.DataFrame, target: np.ndarray, levels: Sequence[float] = QUANTILE_LEVELS
) -> dict[str, float]:
    """pinball_<q>_bp per level, pinball_mean_bp, wql_<q> per level and wql (their mean), from
    the per-anchor `pinball_<q>_bp` columns of a score frame (`pointwise.score_anchors`)."""
    pinball = frame.select(pinball_column(level) for level in levels).to_numpy()  # [B, L]
    wql = weighted_quantile_loss(pinball, target)  # [L]
    out: dict[str, float] = {
        pinball_column(level): float(value)
        for level, value in zip(levels, pinball.mean(axis=0), strict=True)
    }
    out["pinball_mean_bp"] = float(pinball.mean())
    out.update(
        {f"wql_{quantile_name(level)}": float(v) for level, v in zip(levels, wql, strict=True)}
    )
    out["wql"] = float(wql.mean())
    return out
