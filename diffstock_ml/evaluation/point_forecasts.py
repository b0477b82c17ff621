"""Point forecasts of the 30 s return scored as returns: MAE, RMSE, R² and directional accuracy.

The point regressors (`rnn_regressor`, `gru_regressor`, `lstm_regressor`) give one number per
anchor; each distributional model's point forecast is the mean of its samples. All are scored on
the same anchors against the realised return, never against the price level (whose R² is near
one for any forecaster that repeats the last price):

- `mae_bp`, `rmse_bp`: mean absolute and root mean squared error, in bp;
- `r2`: 1 − SSE / Σ(y − ȳ)², ȳ the mean realised return of these anchors (scikit-learn's
  `r2_score`); `r2_vs_zero`: 1 − SSE / Σy², skill over forecasting no move, the usual
  out-of-sample R² of return forecasts. Either is negative for a forecast worse than its
  benchmark, and both are near zero for the best achievable 30 s forecasts;
- `directional_accuracy` (with `directional_n`, `directional_pvalue`): the sign of the forecast
  against the realised move on non-overlapping anchors, zero moves (within the tie tolerance)
  left out and counted, exactly as `evaluation.direction.directional_accuracy` scores every
  model; a forecast of exactly zero makes no call.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import polars as pl

from diffstock_ml.evaluation.calibration import TIE_TOLERANCE_TICKS
from diffstock_ml.evaluation.direction import directional_accuracy
from diffstock_ml.evaluation.forecasts import non_overlapping
from diffstock_ml.market import HORIZON_S, TICK

BP = 1e4
ANCHOR_KEYS = ("day", "symbol", "second")
POINT_PREFIX = "point_"  # a point regressor's column in the forecasts' point table


def point_forecast_scores(
    target: np.ndarray,
    forecasts: Mapping[str, np.ndarray],
    tolerance: np.ndarray | float = 0.0,
    grid: np.ndarray | None = None,
) -> pl.DataFrame:
    """One row per named point forecast `[B]` of the realised returns `target [B]`.

    `tolerance [B]`: a realised |return| at or below it is a zero move (no direction).
    `grid [B]` (bool, default all): the anchors whose directions are scored; pass
    non-overlapping ones (`forecasts.non_overlapping`) for a valid binomial test.
    """
    y = np.asarray(target, dtype=np.float64)
    if not np.isfinite(y).all() or len(y) == 0:
        raise ValueError("point forecasts: the realised returns are empty or hold NaN")
    grid = np.ones(len(y), dtype=bool) if grid is None else np.asarray(grid, dtype=bool)
    tolerance = np.broadcast_to(np.asarray(tolerance, dtype=np.float64), y.shape)
    rows = []
    for name, forecast in forecasts.items():
        f = np.asarray(forecast, dtype=np.float64)
        if f.shape != y.shape or not np.isfinite(f).all():
            raise ValueError(
                f"point forecasts: {name!r} has shape {f.shape} (expected {y.shape}) or NaN"
            )
        error = f - y
        sse = float(np.sum(error**2))
        call = np.sign(f[grid]).astype(np.int64)
        direction = directional_accuracy(call, y[grid], tolerance[grid])
        rows.append(
            {
                "model": name,
                "n": len(y),
                "mae_bp": float(np.mean(np.abs(error))) * BP,
                "rmse_bp": float(np.sqrt(np.mean(error**2))) * BP,
                "r2": 1.0 - sse / float(np.sum((y - y.mean()) ** 2)),
                "r2_vs_zero": 1.0 - sse / float(np.sum(y**2)),
                "directional_accuracy": direction.accuracy,
                "directional_n": direction.n,
                "directional_pvalue": direction.p_value,
            }
        )
    return pl.DataFrame(rows, infer_schema_length=None)


def sample_means(table: pl.DataFrame) -> pl.DataFrame:
    """The forecasts' long table (one row per model and anchor, `samples`) -> one row per
    anchor: the anchor keys, `target`, `close` and each model's sample mean in a column."""
    context = [*ANCHOR_KEYS, "ts", "target", "close"]
    mean = pl.col("samples").cast(pl.List(pl.Float64)).list.mean().alias("mean")  # Array or List
    means = table.select(*context, "model", mean)
    return means.pivot(on="model", index=context, values="mean")


def point_forecast_table(
    forecasts: pl.DataFrame,
    points: pl.DataFrame,
    tick: float = TICK,
    tie_tolerance_ticks: float = TIE_TOLERANCE_TICKS,
) -> pl.DataFrame:
    """Every point regressor of `points` (columns `point_<name>`) and every distributional
    model of `forecasts` (its sample mean) scored on the anchors both tables hold.

    Regressors first, then models, each group in its order; `kind` says which a row is.
    """
    means = sample_means(forecasts)
    models = [c for c in means.columns if c not in (*ANCHOR_KEYS, "ts", "target", "close")]
    regressors = [c for c in points.columns if c.startswith(POINT_PREFIX)]
    joined = means.join(points.select(*ANCHOR_KEYS, *regressors), on=ANCHOR_KEYS, how="inner")
    if joined.height != means.height:
        raise ValueError(
            f"point forecasts: {means.height - joined.height} of {means.height} anchors of the "
            "forecasts have no point regressor forecast"
        )
    tolerance = tie_tolerance_ticks * tick / joined["close"].to_numpy()
    ts = joined["ts"].dt.replace_time_zone(None).to_numpy()
    grid = non_overlapping(joined["symbol"].to_numpy(), ts, HORIZON_S)
    named = {c.removeprefix(POINT_PREFIX): joined[c].to_numpy() for c in regressors}
    named |= {m: joined[m].to_numpy() for m in models}
    kind = ["regressor"] * len(regressors) + ["distribution mean"] * len(models)
    scores = point_forecast_scores(joined["target"].to_numpy(), named, tolerance, grid)
    return scores.insert_column(1, pl.Series("kind", kind))
