"""Columns of the overall table for one model, under their DESIGN §8 names.

Per-anchor means come from the score frame (`pointwise.score_anchors`); directional accuracy,
the PIT uniformity test and the VaR tests use only the non-overlapping anchors (`grid`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl

from diffstock_ml.evaluation.backtest import Backtest
from diffstock_ml.evaluation.calibration import pit_uniformity_pvalue
from diffstock_ml.evaluation.config import EvaluationConfig, level_name
from diffstock_ml.evaluation.direction import DirectionalAccuracy, directional_accuracy
from diffstock_ml.evaluation.distance import spread_bins, wasserstein_pit, wasserstein_z
from diffstock_ml.evaluation.forecasts import Anchors, ModelForecasts
from diffstock_ml.evaluation.quantiles import quantile_columns
from diffstock_ml.evaluation.scores import crps_skill
from diffstock_ml.evaluation.var import grid_runs, var_backtest
from diffstock_ml.market import HORIZON_S


def comparison_columns(
    model: str,
    scores: Mapping[str, pl.DataFrame],
    baselines: Sequence[str],
    dm_p: Mapping[tuple[str, str], float],
) -> dict[str, float | None]:
    """crps_skill_vs_<b> then dm_pvalue_vs_<b> for each baseline (p null against itself)."""
    crps = scores[model]["crps_bp"].to_numpy()
    out: dict[str, float | None] = {
        f"crps_skill_vs_{b}": crps_skill(crps, scores[b]["crps_bp"].to_numpy()) for b in baselines
    }
    out.update({f"dm_pvalue_vs_{b}": dm_p.get((model, b)) for b in baselines})
    return out


def model_columns(
    frame: pl.DataFrame, anchors: Anchors, grid: np.ndarray, config: EvaluationConfig
) -> dict[str, float | int]:
    """Interval, calibration, directional and VaR columns of one model."""
    pit_p = pit_uniformity_pvalue(frame["pit"].to_numpy()[grid], config.pit_bins)
    return {
        **interval_columns(frame, config),
        "pit_uniformity_p": pit_p,
        **directional_columns(model_direction(frame, anchors, grid, config)),
        **var_columns(frame, anchors, grid, config),
    }


def interval_columns(frame: pl.DataFrame, config: EvaluationConfig) -> dict[str, float]:
    """coverage_<p>, below_median, sharpness_bp, interval_score_<p>, mae_bp, rmse_bp."""
    out: dict[str, float] = {}
    for level in config.coverage_levels:
        out[f"coverage_{level_name(level)}"] = float(frame[f"covered_{level_name(level)}"].mean())
    out["below_median"] = float(frame["below_median"].mean())
    out["sharpness_bp"] = float(frame[f"width_{level_name(config.sharpness_level)}_bp"].mean())
    for level in config.coverage_levels:
        name = f"interval_score_{level_name(level)}"
        out[name] = float(frame[name].mean())
    error = frame["error_bp"].to_numpy()
    out["mae_bp"] = float(np.abs(error).mean())
    out["rmse_bp"] = float(np.sqrt(np.mean(error**2)))
    return out


def model_direction(
    frame: pl.DataFrame, anchors: Anchors, grid: np.ndarray, config: EvaluationConfig
) -> DirectionalAccuracy:
    """Directional accuracy of the model's P(up) vs P(down) call on the grid anchors."""
    tolerance = anchors.tolerance(config.tick, config.tie_tolerance_ticks)
    predicted = frame["direction"].to_numpy()
    return directional_accuracy(predicted[grid], anchors.target[grid], tolerance[grid])


def directional_columns(result: DirectionalAccuracy) -> dict[str, float | int]:
    """directional_accuracy, _n, _pvalue, _zero_moves, _no_call."""
    return {
        "directional_accuracy": result.accuracy,
        "directional_n": result.n,
        "directional_pvalue": result.p_value,
        "directional_zero_moves": result.zero_moves,
        "directional_no_call": result.no_call,
    }


_NEW_DAY_GAP_S = 6 * 3600  # a longer gap between two anchors of a symbol is a new session


def var_columns(
    frame: pl.DataFrame, anchors: Anchors, grid: np.ndarray, config: EvaluationConfig
) -> dict[str, float | int]:
    """var_<a>_hit_rate, _kupiec_p, _christoffersen_p (conditional coverage), _independence_p,
    _n, on the non-overlapping anchors in (symbol, time) order."""
    rows = np.flatnonzero(grid)
    order, _ = grid_runs(anchors.symbol[rows], anchors.ts[rows], HORIZON_S)
    rows = rows[order]
    # The hit sequence of a symbol and day is one series even when anchors are sparser than
    # the 30 s grid (a forecast stride of 120 s): runs restart only at a new symbol or day.
    symbol, ts = anchors.symbol[rows], anchors.ts[rows]
    starts_run = np.r_[True, (symbol[1:] != symbol[:-1]) | (np.diff(ts) > _NEW_DAY_GAP_S)]
    out: dict[str, float | int] = {}
    for alpha in config.var_levels:
        name = level_name(alpha)
        result = var_backtest(frame[f"var_hit_{name}"].to_numpy()[rows], alpha, starts_run)
        out[f"var_{name}_hit_rate"] = result.hit_rate
        out[f"var_{name}_kupiec_p"] = result.kupiec_p
        out[f"var_{name}_christoffersen_p"] = result.conditional_p
        out[f"var_{name}_independence_p"] = result.independence_p
        out[f"var_{name}_n"] = result.n
    return out


def backtest_columns(result: Backtest) -> dict[str, float | int]:
    """backtest_sharpe (net of costs), _sharpe_gross, _sortino, _max_drawdown_bp, _turnover,
    _hit_ratio, _n_trades, _pnl_per_trade_bp, _total_pnl_bp, _total_pnl_gross_bp."""
    return {
        "backtest_sharpe": result.sharpe,
        "backtest_sharpe_gross": result.sharpe_gross,
        "backtest_sortino": result.sortino,
        "backtest_max_drawdown_bp": result.max_drawdown_bp,
        "backtest_turnover": result.turnover,
        "backtest_hit_ratio": result.hit_ratio,
        "backtest_n_trades": result.n_trades,
        "backtest_pnl_per_trade_bp": result.pnl_per_trade_bp,
        "backtest_total_pnl_bp": result.total_pnl_bp,
        "backtest_total_pnl_gross_bp": result.total_pnl_gross_bp,
    }


def distribution_columns(
    forecasts: ModelForecasts, frame: pl.DataFrame, config: EvaluationConfig
) -> dict[str, float | None]:
    """Pinball and wQL per stored quantile level and their means (`quantiles`), the binned
    Wasserstein distances (`distance`, bins of forecast spread) and the measured latency_ms."""
    anchors = forecasts.anchors
    bins = spread_bins(forecasts.samples, config.volatility_buckets)
    z = wasserstein_z(forecasts.samples, anchors.target, anchors.sigma, bins)
    return {
        **quantile_columns(frame, anchors.target),
        "wasserstein_z": float(z.mean()),
        "wasserstein_pit": float(wasserstein_pit(frame["pit"].to_numpy(), bins).mean()),
        "wasserstein_bins": len(z),
        "latency_ms": forecasts.latency_ms,
    }
