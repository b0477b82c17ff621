"""One model's per-anchor scores as a frame: the rows every overall figure and breakdown reads."""

from __future__ import annotations

import numpy as np
import polars as pl

from diffstock_ml.evaluation.calibration import central_coverage, pit_below, pit_interval
from diffstock_ml.evaluation.config import EvaluationConfig, level_name
from diffstock_ml.evaluation.direction import forecast_direction
from diffstock_ml.evaluation.forecasts import (
    Anchors,
    ModelForecasts,
    non_overlapping,
    quantiles,
    sorted_samples,
)
from diffstock_ml.evaluation.quantiles import QUANTILE_LEVELS, pinball_bp, pinball_column
from diffstock_ml.evaluation.scores import (
    BP,
    central_levels,
    crps_bp,
    interval_score_bp,
    median_error_bp,
)
from diffstock_ml.evaluation.var import var_hits
from diffstock_ml.market import HORIZON_S


def anchor_keys(anchors: Anchors, config: EvaluationConfig) -> pl.DataFrame:
    """Per-anchor context and breakdown keys: symbol, ts, time-of-day bucket, volatility bucket,
    and whether the anchor is on the non-overlapping grid."""
    minutes = config.time_of_day_minutes
    bucket = np.floor(anchors.seconds_since_open / (60 * minutes)).astype(np.int64) * minutes
    return pl.DataFrame(
        {
            "symbol": anchors.symbol,
            "ts": anchors.ts,
            "minutes_since_open": bucket,
            "volatility_decile": volatility_bucket(anchors.sigma, config.volatility_buckets),
            "sigma": anchors.sigma,
            "target": anchors.target,
            "non_overlapping": non_overlapping(anchors.symbol, anchors.ts, HORIZON_S),
        }
    )


def volatility_bucket(sigma: np.ndarray, n_buckets: int) -> np.ndarray:
    """`[B]` bucket 1..n_buckets of `sigma` by its empirical quantiles (deciles for 10).

    Ties (e.g. sigma at its floor) share one bucket, so buckets can differ in size.
    """
    edges = np.quantile(sigma, np.arange(1, n_buckets) / n_buckets)
    return np.searchsorted(edges, sigma, side="right") + 1


def score_anchors(forecasts: ModelForecasts, config: EvaluationConfig) -> pl.DataFrame:
    """Per-anchor scores of one model, in anchor order.

    Columns: crps_bp; for each coverage level p: covered_<p> (`central_coverage`, in [0, 1]),
    width_<p>_bp and interval_score_<p> of the central quantile interval; error_bp
    (median − target); below_median (P(randomised PIT < ½): 0.5 on average for an unbiased
    median); pinball_<q>_bp at each of `QUANTILE_LEVELS`; mean_return; direction (−1/0/+1 by
    P(up) vs P(down)); pit (randomised, seeded by `config.seed` so every model gets the same
    uniforms); var_hit_<a> per VaR level.
    """
    anchors = forecasts.anchors
    target = anchors.target
    tolerance = anchors.tolerance(config.tick, config.tie_tolerance_ticks)
    ordered = sorted_samples(forecasts.samples)  # [B, S]
    levels = config.coverage_levels
    bounds = quantiles(ordered, central_levels(levels))  # [B, 2L]
    lower, upper = bounds[:, : len(levels)], bounds[:, len(levels) :]
    pit_lower, pit_upper = pit_interval(ordered, target, tolerance)
    columns: dict[str, np.ndarray] = {"crps_bp": crps_bp(ordered, target, presorted=True)}
    for i, level in enumerate(levels):
        name = level_name(level)
        columns[f"covered_{name}"] = central_coverage(pit_lower, pit_upper, level)
        columns[f"width_{name}_bp"] = (upper[:, i] - lower[:, i]) * BP
        columns[f"interval_score_{name}"] = interval_score_bp(
            lower[:, i], upper[:, i], target, level
        )
    columns["below_median"] = pit_below(pit_lower, pit_upper, 0.5)
    columns["error_bp"] = median_error_bp(quantiles(ordered, [0.5])[:, 0], target)
    pinball = pinball_bp(quantiles(ordered, QUANTILE_LEVELS), target)  # [B, 9]
    for i, level in enumerate(QUANTILE_LEVELS):
        columns[pinball_column(level)] = pinball[:, i]
    columns["mean_return"] = forecasts.samples.mean(axis=1)
    columns["direction"] = forecast_direction(ordered, tolerance)
    uniform = np.random.default_rng(config.seed).random(len(target))
    columns["pit"] = pit_lower + uniform * (pit_upper - pit_lower)  # = randomised_pit
    for alpha in config.var_levels:
        columns[f"var_hit_{level_name(alpha)}"] = var_hits(columns["pit"], alpha)
    return pl.DataFrame(columns)
