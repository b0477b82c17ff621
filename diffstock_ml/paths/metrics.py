"""Scores of path forecasts: sample paths `[A, S, H]` against realised paths `[A, H]`.

Paths are cumulative log returns at the seconds `HORIZONS` after each anchor; every score is in
basis points of return (x 1e4). Anchors whose realised path has a NaN (it leaves the session)
are dropped, the same anchors for every model.

- Energy score (fair estimator, scoringrules `es_ensemble`): the multivariate CRPS of the whole
  path, in bp.
- Variogram score of order p (scoringrules `vs_ensemble`, its "nrg" estimator: the "fair" one
  builds an [S, S, H, H] array per anchor), on paths in bp: units bp^(2p), bp for p = ½.
  It scores the dependence between horizons that marginal scores miss.
- CRPS at each horizon: `evaluation.scores.crps_bp` on that second's samples.
- Touch probability of ±k bp within the path: a path touches +k bp when its price reaches
  P_t·(1 + k·1e-4) at some second (−k bp: P_t·(1 − k·1e-4)), within `tie_tolerance` of a
  tick; the forecast probability is the share of sample paths that touch. Calibration: Brier
  score, equal-count reliability table and its expected calibration error
  (`evaluation.direction_calibration`), and mean forecast vs realised frequency.
- Maximum adverse excursion (MAE), the worst P&L log return along the path, at most 0 (the
  anchor itself is a point of the path): long min(0, min_h r_h), short min(0, min_h −r_h).
  Its VaR at level α is the forecast's α quantile; a hit is a realised MAE below it, counted by
  the randomised PIT as the scalar VaR (`evaluation.var.var_hits`: an MAE of exactly 0, no
  adverse tick, is a point mass), with Kupiec's proportion-of-failures test
  (`evaluation.var.kupiec_lr`). The test assumes independent periods: pass anchors whose
  paths do not overlap (one 30 s grid, `evaluation.forecasts.non_overlapping`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl
import scoringrules as sr
from scipy import stats

from diffstock_ml.evaluation.calibration import (
    TIE_TOLERANCE_TICKS,
    randomised_pit,
    tie_tolerance,
)
from diffstock_ml.evaluation.config import level_name
from diffstock_ml.evaluation.direction_calibration import (
    brier_score,
    expected_calibration_error,
    reliability_table,
)
from diffstock_ml.evaluation.forecasts import quantiles
from diffstock_ml.evaluation.scores import BP, crps_bp
from diffstock_ml.evaluation.var import kupiec_lr, var_hits
from diffstock_ml.market import TICK
from diffstock_ml.paths.targets import HORIZONS

Side = Literal["up", "down"]
Position = Literal["long", "short"]
SIDES: tuple[Side, ...] = ("up", "down")
POSITIONS: tuple[Position, ...] = ("long", "short")
ES_CHUNK = 8  # anchors per energy-score call: its spread term is [chunk, S, S, H]
VS_CHUNK = 16  # anchors per variogram-score call: [chunk, S, H, H]


@dataclass(frozen=True)
class PathMetricsConfig:
    """What `path_metrics` measures."""

    # Touch probabilities: +k and -k bp for each k.
    touch_bp: tuple[float, ...] = (5.0, 10.0)
    # VaR levels of the maximum adverse excursion (long and short).
    var_levels: tuple[float, ...] = (0.01, 0.05)
    # Equal-count bins of the touch reliability tables.
    reliability_bins: int = 10
    # Order p of the variogram score (½ is Scheuerer and Hamill's recommendation).
    variogram_p: float = 0.5
    # Price grid: returns closer than `tie_tolerance_ticks` ticks at the anchor's close are equal.
    tick: float = TICK
    tie_tolerance_ticks: float = TIE_TOLERANCE_TICKS
    # Randomised PIT of the VaR hits.
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.touch_bp or any(k <= 0 for k in self.touch_bp):
            raise ValueError(f"touch_bp must be non-empty and positive, got {self.touch_bp}")
        if not self.var_levels or any(not 0.0 < a < 1.0 for a in self.var_levels):
            raise ValueError(f"var_levels must be non-empty, inside (0, 1), got {self.var_levels}")
        if self.reliability_bins < 1 or self.variogram_p <= 0:
            raise ValueError("reliability_bins must be >= 1 and variogram_p > 0")


def check_paths(samples: np.ndarray, realised: np.ndarray) -> None:
    """Raise unless `samples [A, S, H]` (finite) and `realised [A, H]` match."""
    if samples.ndim != 3 or realised.ndim != 2 or samples.shape[::2] != realised.shape:
        raise ValueError(f"samples {samples.shape} must be [A, S, H] of realised {realised.shape}")
    if samples.shape[1] < 2:
        raise ValueError(f"need at least 2 sample paths per anchor, got {samples.shape[1]}")
    if not np.isfinite(samples).all():
        rows = np.flatnonzero(~np.isfinite(samples).all(axis=(1, 2)))
        raise ValueError(f"samples hold NaN/inf at {len(rows)} anchors, first anchor {rows[0]}")


def complete_anchors(realised: np.ndarray) -> np.ndarray:
    """`[A]` bool: the anchors whose realised path is finite at every horizon."""
    return np.isfinite(realised).all(axis=1)


def energy_score_bp(samples: np.ndarray, realised: np.ndarray) -> np.ndarray:
    """`[A]` fair energy score of the sample paths `[A, S, H]` at the realised `[A, H]`, bp."""
    out = np.empty(len(realised))
    for start in range(0, len(realised), ES_CHUNK):
        rows = slice(start, start + ES_CHUNK)
        out[rows] = sr.es_ensemble(realised[rows] * BP, samples[rows] * BP, estimator="fair")
    return out


def variogram_score_bp(samples: np.ndarray, realised: np.ndarray, p: float = 0.5) -> np.ndarray:
    """`[A]` variogram score of order `p` of sample paths at the realised paths in bp, all
    pairs of horizons weighted 1: units bp^(2p)."""
    out = np.empty(len(realised))
    for start in range(0, len(realised), VS_CHUNK):
        rows = slice(start, start + VS_CHUNK)
        out[rows] = sr.vs_ensemble(realised[rows] * BP, samples[rows] * BP, p=p)
    return out


def crps_by_horizon_bp(samples: np.ndarray, realised: np.ndarray) -> np.ndarray:
    """`[A, H]` CRPS (bp, fair) of each horizon's samples at its realised return."""
    columns = [crps_bp(samples[:, :, j], realised[:, j]) for j in range(realised.shape[1])]
    return np.stack(columns, axis=1)


def touches(
    paths: np.ndarray, k_bp: float, side: Side, tolerance: np.ndarray | float
) -> np.ndarray:
    """`paths.shape[:-1]` bool: the path of log returns reaches the price P_t·(1 ± k bp).

    `tolerance` (return units, broadcast against `paths.shape[:-1]`) absorbs float noise of
    grid prices that sit exactly on the threshold.
    """
    threshold = k_bp / BP
    if side == "up":
        return np.expm1(paths.max(axis=-1)) >= threshold - tolerance
    return np.expm1(paths.min(axis=-1)) <= -threshold + tolerance


def touch_calibration(probability: np.ndarray, touched: np.ndarray, bins: int) -> dict[str, float]:
    """Brier score, expected calibration error, mean forecast and realised frequency."""
    table = reliability_table(probability, touched, bins)
    return {
        "brier": brier_score(probability, touched),
        "ece": expected_calibration_error(table),
        "forecast": float(np.mean(probability)),
        "realised": float(np.mean(touched)),
    }


def adverse_excursion(paths: np.ndarray, position: Position) -> np.ndarray:
    """`paths.shape[:-1]` the worst P&L log return of a `position` along the path (<= 0)."""
    pnl = paths if position == "long" else -paths
    return np.minimum(pnl.min(axis=-1), 0.0)


def mae_var(
    samples: np.ndarray,
    realised: np.ndarray,
    position: Position,
    alpha: float,
    tolerance: np.ndarray,
    rng: np.random.Generator,
) -> dict[str, float]:
    """VaR of the maximum adverse excursion at level `alpha`: mean forecast VaR (bp), hit rate
    and Kupiec p-value (hits by the randomised PIT, `var_hits`)."""
    ordered = np.sort(adverse_excursion(samples, position), axis=1)  # [A, S]
    pit = randomised_pit(ordered, adverse_excursion(realised, position), tolerance, rng)
    hits = var_hits(pit, alpha)
    lr = kupiec_lr(hits, alpha)
    return {
        "bp": float(np.mean(quantiles(ordered, [alpha])[:, 0]) * BP),
        "hit_rate": float(np.mean(hits)),
        "kupiec_p": float(stats.chi2.sf(lr, 1)),
    }


def touch_columns(
    samples: np.ndarray, realised: np.ndarray, tolerance: np.ndarray, config: PathMetricsConfig
) -> dict[str, float]:
    """touch_<side>_<k>bp_forecast, _realised, _brier, _ece for each k and side."""
    out: dict[str, float] = {}
    for k in config.touch_bp:
        for side in SIDES:
            probability = touches(samples, k, side, tolerance[:, None]).mean(axis=1)  # [A]
            touched = touches(realised, k, side, tolerance)  # [A]
            scores = touch_calibration(probability, touched, config.reliability_bins)
            out.update({f"touch_{side}_{k:g}bp_{n}": v for n, v in scores.items()})
    return out


def var_columns(
    samples: np.ndarray, realised: np.ndarray, tolerance: np.ndarray, config: PathMetricsConfig
) -> dict[str, float]:
    """mae_<position>_var_<a>_bp, _hit_rate, _kupiec_p for each position and level."""
    rng = np.random.default_rng(config.seed)  # the same uniforms for every model
    out: dict[str, float] = {}
    for position in POSITIONS:
        for alpha in config.var_levels:
            result = mae_var(samples, realised, position, alpha, tolerance, rng)
            name = f"mae_{position}_var_{level_name(alpha)}"
            out.update({f"{name}_{n}": v for n, v in result.items()})
    return out


def path_metrics(
    samples: np.ndarray,
    realised: np.ndarray,
    close: np.ndarray,
    config: PathMetricsConfig | None = None,
    horizons: tuple[int, ...] = HORIZONS,
) -> dict[str, float | int]:
    """Every path metric of one model, averaged over the anchors with a complete realised path.

    `samples [A, S, H]` and `realised [A, H]` are cumulative log returns at `horizons`,
    `close [A]` the anchor prices (for the tick tolerance).
    """
    config = config or PathMetricsConfig()
    samples, realised = np.asarray(samples, np.float64), np.asarray(realised, np.float64)
    if realised.ndim != 2 or realised.shape[1] != len(horizons):
        raise ValueError(f"realised {realised.shape} must be [A, {len(horizons)}] (horizons)")
    keep = complete_anchors(realised)
    if not keep.any():
        raise ValueError(f"no anchor of {len(realised)} has a complete realised path")
    samples, realised, close = samples[keep], realised[keep], np.asarray(close, np.float64)[keep]
    check_paths(samples, realised)
    tolerance = tie_tolerance(close, config.tick, config.tie_tolerance_ticks)
    crps = crps_by_horizon_bp(samples, realised).mean(axis=0)  # [H]
    return {
        "n_anchors": int(keep.sum()),
        "n_dropped": int((~keep).sum()),
        "energy_score_bp": float(np.mean(energy_score_bp(samples, realised))),
        "variogram_score": float(
            np.mean(variogram_score_bp(samples, realised, config.variogram_p))
        ),
        **{f"crps_h{h}_bp": float(c) for h, c in zip(horizons, crps, strict=True)},
        "crps_mean_bp": float(np.mean(crps)),
        **touch_columns(samples, realised, tolerance, config),
        **var_columns(samples, realised, tolerance, config),
    }


def path_metrics_table(
    forecasts: Mapping[str, np.ndarray],
    realised: np.ndarray,
    close: np.ndarray,
    config: PathMetricsConfig | None = None,
    horizons: tuple[int, ...] = HORIZONS,
) -> pl.DataFrame:
    """One row of `path_metrics` per model of `forecasts` (name -> samples [A, S, H]), all
    scored on the same anchors."""
    rows = [
        {"model": name, **path_metrics(samples, realised, close, config, horizons)}
        for name, samples in forecasts.items()
    ]
    return pl.DataFrame(rows)


def touch_reliability(
    forecasts: Mapping[str, np.ndarray],
    realised: np.ndarray,
    close: np.ndarray,
    config: PathMetricsConfig | None = None,
) -> pl.DataFrame:
    """Reliability tables of the touch probabilities: model, side, k_bp, then the columns of
    `reliability_table` (bin, n, lower, upper, mean_predicted, observed)."""
    config = config or PathMetricsConfig()
    keep = complete_anchors(np.asarray(realised))
    realised, close = np.asarray(realised, np.float64)[keep], np.asarray(close, np.float64)[keep]
    tolerance = tie_tolerance(close, config.tick, config.tie_tolerance_ticks)
    parts = []
    for name, samples in forecasts.items():
        paths = np.asarray(samples, np.float64)[keep]
        for k in config.touch_bp:
            for side in SIDES:
                probability = touches(paths, k, side, tolerance[:, None]).mean(axis=1)
                table = reliability_table(
                    probability, touches(realised, k, side, tolerance), config.reliability_bins
                )
                labels = {"model": name, "side": side, "k_bp": float(k)}
                parts.append(table.select(*(pl.lit(v).alias(c) for c, v in labels.items()), "*"))
    return pl.concat(parts)
