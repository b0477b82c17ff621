"""`evaluate`: every metric of the evaluation report (DESIGN §8 names) for a set of models.

Means over anchors (CRPS, coverage, sharpness, interval score, MAE/RMSE, breakdowns, PIT
histogram) use every anchor. Everything that is a test or a trade uses only anchors on one
common 30 s grid, whose targets do not overlap: Diebold–Mariano, the PIT uniformity test,
directional accuracy and its binomial test, the VaR tests and the backtest.

Coverage and VaR hits are read from the randomised PIT, so that point masses of the $0.01 grid
and small ensembles do not bias them (`calibration.central_coverage`, `var.var_hits`);
sharpness, interval scores, pinball loss and wQL use the interpolated sample quantiles.
The binned Wasserstein distances (`distance`) pool anchors by forecast spread.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from diffstock_ml.evaluation.backtest import backtest
from diffstock_ml.evaluation.breakdowns import breakdown
from diffstock_ml.evaluation.calibration import pit_histogram, reliability
from diffstock_ml.evaluation.columns import (
    backtest_columns,
    comparison_columns,
    directional_columns,
    distribution_columns,
    model_columns,
)
from diffstock_ml.evaluation.config import EvaluationConfig
from diffstock_ml.evaluation.criteria import SEED_PLAN, SuccessCriteria, success_criteria
from diffstock_ml.evaluation.direction import (
    DirectionalAccuracy,
    directional_accuracy,
    reversal_direction,
)
from diffstock_ml.evaluation.direction_calibration import DirectionCalibration
from diffstock_ml.evaluation.dm import diebold_mariano
from diffstock_ml.evaluation.forecasts import Anchors, ModelForecasts
from diffstock_ml.evaluation.pointwise import anchor_keys, score_anchors
from diffstock_ml.market import HORIZON_S

RELIABILITY_LEVELS = np.round(np.arange(0.05, 0.951, 0.05), 2)
DM_SCHEMA = {
    "model": pl.String,
    "baseline": pl.String,
    "mean_differential_bp": pl.Float64,
    "statistic": pl.Float64,
    "p_value": pl.Float64,
    "p_value_hac": pl.Float64,
    "n_timestamps": pl.Int64,
    "block_length": pl.Int64,
}
REVERSAL = "reversal_1s"  # prefix of the 1 s reversal rule's figures in `metrics()`


def flat_metrics(table: pl.DataFrame, prefix: str = "") -> dict[str, float]:
    """`{"<prefix><model>/<column>": value}` of every column of a per-model table but `model`
    (nulls left out): ready for an MLflow `log_metrics`."""
    flat: dict[str, float] = {}
    for row in table.iter_rows(named=True):
        model = row.pop("model")
        flat.update({f"{prefix}{model}/{k}": float(v) for k, v in row.items() if v is not None})
    return flat


@dataclass(frozen=True)
class EvaluationResult:
    """All tables of one evaluation report (polars frames, one row per model or per group)."""

    overall: pl.DataFrame  # one row per model: `model` then the DESIGN §8 metric columns
    by_time_of_day: pl.DataFrame  # model, minutes_since_open (bucket start), n, crps_bp, ...
    by_volatility_decile: pl.DataFrame  # model, volatility_decile (1..10), sigma range, ...
    by_symbol: pl.DataFrame  # model, symbol, n, crps_bp, ...
    pit_histograms: pl.DataFrame  # model, bin, lower, upper, count
    reliability: pl.DataFrame  # model, level, observed (share of PIT <= level)
    diebold_mariano: pl.DataFrame  # model, baseline, mean_differential_bp, p_value, ...
    equity_curves: pl.DataFrame  # model, ts (UTC), pnl_bp, equity_bp
    reversal: DirectionalAccuracy | None  # the 1 s reversal rule on the same anchors
    config: EvaluationConfig = field(default_factory=EvaluationConfig)
    # issue 12 items 4-5, filled by the report asset (None: not scored): point forecasts
    # (`point_forecasts.point_forecast_table`) and the direction classifiers calibrated on
    # validation days (`direction_calibration.calibrate_directions`)
    point_forecasts: pl.DataFrame | None = None  # model, kind, mae_bp, rmse_bp, r2, ...
    direction_calibration: DirectionCalibration | None = None

    def metrics(self) -> dict[str, float]:
        """Flat `{"<model>/<metric>": value}` of the overall table (nulls left out), plus
        `reversal_1s/directional_*`: ready for an MLflow `log_metrics`."""
        flat = flat_metrics(self.overall)
        if self.reversal is not None:
            for key, value in directional_columns(self.reversal).items():
                flat[f"{REVERSAL}/{key}"] = float(value)
        return flat

    def success_criteria(self, criteria: SuccessCriteria = SEED_PLAN) -> pl.DataFrame:
        """The seed plan's criteria per model (`criteria.success_criteria`), judging coverage
        at this report's central interval levels."""
        levels = dataclasses.replace(criteria, coverage_levels=self.config.coverage_levels)
        return success_criteria(self.overall, levels)


def evaluate(
    forecasts: Mapping[str, ModelForecasts],
    baselines: Sequence[str] | None = None,
    config: EvaluationConfig | None = None,
) -> EvaluationResult:
    """Score every model on their shared anchors and compare each with every baseline.

    `baselines` are names in `forecasts` (default: all of them) that get
    `crps_skill_vs_<name>` and `dm_pvalue_vs_<name>` columns; a model compared with itself has
    skill 0 and a null p-value.
    """
    config = config or EvaluationConfig()
    if not forecasts:
        raise ValueError("evaluate: no forecasts given")
    anchors = _shared_anchors(forecasts)
    baselines = list(forecasts) if baselines is None else list(baselines)
    unknown = [name for name in baselines if name not in forecasts]
    if unknown:
        raise ValueError(f"evaluate: baselines {unknown} are not among models {list(forecasts)}")

    keys = anchor_keys(anchors, config)
    scores = {name: score_anchors(f, config) for name, f in forecasts.items()}
    grid = keys["non_overlapping"].to_numpy()
    dm_rows = [
        _dm_row(model, baseline, scores, anchors, config)
        for model in forecasts
        for baseline in baselines
        if baseline != model
    ]
    dm_p = {(row["model"], row["baseline"]): row["p_value"] for row in dm_rows}

    summaries = [
        _model_summary(name, forecasts[name], grid, scores, baselines, dm_p, config)
        for name in scores
    ]
    rows, equity, histograms, reliabilities = map(list, zip(*summaries, strict=True))

    per_anchor = pl.concat(
        [
            pl.concat([keys, frame], how="horizontal").with_columns(model=pl.lit(name))
            for name, frame in scores.items()
        ]
    )
    return EvaluationResult(
        overall=pl.DataFrame(rows, infer_schema_length=None),
        by_time_of_day=breakdown(per_anchor, "time_of_day", config, baselines),
        by_volatility_decile=breakdown(per_anchor, "volatility_decile", config, baselines),
        by_symbol=breakdown(per_anchor, "symbol", config, baselines),
        pit_histograms=pl.concat(histograms),
        reliability=pl.concat(reliabilities),
        diebold_mariano=pl.DataFrame(dm_rows, schema=DM_SCHEMA),
        equity_curves=pl.concat(equity),
        reversal=_reversal(anchors, grid, config),
        config=config,
    )


def _model_summary(
    name: str,
    forecasts: ModelForecasts,
    grid: np.ndarray,
    scores: Mapping[str, pl.DataFrame],
    baselines: Sequence[str],
    dm_p: Mapping[tuple[str, str], float | None],
    config: EvaluationConfig,
) -> tuple[dict, pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """One model's overall row, equity curve, PIT histogram and reliability curve."""
    frame, anchors = scores[name], forecasts.anchors
    result = backtest(
        frame["mean_return"].to_numpy(),
        anchors.target,
        anchors.symbol,
        anchors.ts,
        cost_bp=config.cost_bp,
        horizon_s=HORIZON_S,
        trading_days_per_year=config.trading_days_per_year,
    )
    row = {
        "model": name,
        "n_anchors": len(anchors),
        "n_non_overlapping": int(grid.sum()),
        "crps_bp": float(frame["crps_bp"].mean()),
        **comparison_columns(name, scores, baselines, dm_p),
        **model_columns(frame, anchors, grid, config),
        **distribution_columns(forecasts, frame, config),
        **backtest_columns(result),
    }
    pit = frame["pit"].to_numpy()
    observed = reliability(pit, RELIABILITY_LEVELS)
    curve = pl.DataFrame({"level": RELIABILITY_LEVELS, "observed": observed})
    return (
        row,
        result.equity.select(pl.lit(name).alias("model"), pl.all()),
        _pit_histogram_frame(name, pit, config.pit_bins),
        curve.select(pl.lit(name).alias("model"), pl.all()),
    )


def _shared_anchors(forecasts: Mapping[str, ModelForecasts]) -> Anchors:
    """The anchors of the first model, after checking every model has the same ones."""
    (first_name, first), *others = forecasts.items()
    for name, other in others:
        if other.anchors is first.anchors:
            continue
        for column in ("target", "symbol", "ts"):
            if not np.array_equal(getattr(other.anchors, column), getattr(first.anchors, column)):
                raise ValueError(
                    f"evaluate: model {name!r} has different anchors from {first_name!r} "
                    f"({column} differs); every model must be scored on the same anchors"
                )
    return first.anchors


def _dm_row(
    model: str,
    baseline: str,
    scores: Mapping[str, pl.DataFrame],
    anchors: Anchors,
    config: EvaluationConfig,
) -> dict[str, object]:
    result = diebold_mariano(
        scores[model]["crps_bp"].to_numpy(),
        scores[baseline]["crps_bp"].to_numpy(),
        anchors.symbol,
        anchors.ts,
        horizon_s=HORIZON_S,
        block_length=config.block_length,
        n_bootstrap=config.n_bootstrap,
        rng=config.seed,
    )
    return {
        "model": model,
        "baseline": baseline,
        "mean_differential_bp": result.mean_differential,
        "statistic": result.statistic,
        "p_value": result.p_value,
        "p_value_hac": result.p_value_hac,
        "n_timestamps": result.n_timestamps,
        "block_length": result.block_length,
    }


def _reversal(
    anchors: Anchors, grid: np.ndarray, config: EvaluationConfig
) -> DirectionalAccuracy | None:
    if anchors.last_1s_return is None:
        return None
    tolerance = anchors.tolerance(config.tick, config.tie_tolerance_ticks)[grid]
    predicted = reversal_direction(anchors.last_1s_return[grid], tolerance)
    return directional_accuracy(predicted, anchors.target[grid], tolerance)


def _pit_histogram_frame(model: str, pit: np.ndarray, bins: int) -> pl.DataFrame:
    edges = np.linspace(0.0, 1.0, bins + 1)
    return pl.DataFrame(
        {
            "model": [model] * bins,
            "bin": np.arange(bins),
            "lower": edges[:-1],
            "upper": edges[1:],
            "count": pit_histogram(pit, bins),
        }
    )
