"""Gaussian baselines whose 30 s volatility comes from the day's own 1 s log returns.

- `RollingGaussian` (the seed plan's naive baseline): √30 x the root mean square of the 1 s log
  returns of the last `window_s` seconds (W = 300 by default; with W = 300 it is the `rv_300s`
  feature x √(30/300)).
- `EwmaGaussian` (RiskMetrics style): √30 x the root of the exponentially weighted mean of the
  squared 1 s log returns since the open, half-life `halflife_s` seconds (300 by default, the
  setting of `sigma_30s`, which it then reproduces before its floor). RiskMetrics' daily
  λ = 0.94 is a half-life of ~11 observations; at 1 s that would follow bid-ask noise, so the
  half-life is in seconds of the features' scale.

Both are computed from the day's forward-filled close at seconds <= t only (the return at t is
close[t]/close[t-1], known when bar t ends), never from a previous day. The mean is zero.
A return touching a stale second (a halt: no trade for longer than the ingest's gap) is missing,
as before a symbol's first trade: a halt's carried-forward close is no calm market, and the jump
across it no 1 s move (`spans_stale`). Without stale seconds the EWMA equals `sigma_30s`.
"""

from __future__ import annotations

import math
from abc import abstractmethod

import numpy as np
from scipy.signal import lfilter

from diffstock_ml.baselines.base import (
    Baseline,
    Draws,
    ScaleFit,
    at_anchors,
    register,
    spans_stale,
)
from diffstock_ml.market import HORIZON_S, TICK
from diffstock_ml.windows import DayArrays

SIGMA_FLOOR = 1e-5  # 0.1 bp, the floor of `sigma_30s`
MIN_RETURNS = 10  # as `FeatureConfig.min_periods`


def one_second_log_returns(close: np.ndarray) -> np.ndarray:
    """`[S, T]` log(close[t] / close[t-1]); NaN at second 0 and where a close is missing."""
    close = np.asarray(close, dtype=np.float64)
    r = np.full(close.shape, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        r[:, 1:] = np.log(close[:, 1:] / close[:, :-1])
    return r


def observed_log_returns(day: DayArrays) -> np.ndarray:
    """`[S, T]` the day's 1 s log returns, NaN where one touches a stale second."""
    r = one_second_log_returns(day.close)
    r[spans_stale(day, 1)] = np.nan
    return r


def rolling_mean_square(r: np.ndarray, window: int, min_count: int = MIN_RETURNS) -> np.ndarray:
    """`[S, T]` mean of the finite `r**2` at seconds (t - window, t]; NaN below `min_count`."""
    finite = np.isfinite(r)
    pad = np.zeros((r.shape[0], 1))
    sums = np.concatenate([pad, np.cumsum(np.where(finite, r * r, 0.0), axis=1)], axis=1)
    counts = np.concatenate([pad, np.cumsum(finite, axis=1)], axis=1)
    t = np.arange(r.shape[1])
    start = np.maximum(t + 1 - window, 0)
    total = sums[:, t + 1] - sums[:, start]
    count = counts[:, t + 1] - counts[:, start]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count >= min_count, total / count, np.nan)


def ewma_mean_square(r: np.ndarray, halflife_s: float, min_count: int = MIN_RETURNS) -> np.ndarray:
    """`[S, T]` adjusted EWMA of the finite `r**2` since second 0 (weights 0.5**(age/halflife)).

    Adjusted as polars' `ewm_mean(adjust=True)`: Σ w_i r²_(t-i) / Σ w_i over the returns seen;
    a missing return has no weight. NaN until `min_count` returns have been seen.
    """
    decay = 0.5 ** (1.0 / halflife_s)
    finite = np.isfinite(r)
    num = lfilter([1.0], [1.0, -decay], np.where(finite, r * r, 0.0), axis=1)
    den = lfilter([1.0], [1.0, -decay], finite.astype(np.float64), axis=1)
    seen = np.cumsum(finite, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(seen >= min_count, num / den, np.nan)


class _GaussianVolatility(Baseline):
    """N(0, (factor·σ_30)²) with a causal σ_30 per (symbol, second) of the day."""

    @abstractmethod
    def volatility_30s(self, day: DayArrays) -> np.ndarray:
        """`[S, T]` 30 s volatility (return units) from seconds <= t, floored; NaN if unknown."""

    def draw(
        self, day: DayArrays, anchors: np.ndarray, n_samples: int, rng: np.random.Generator
    ) -> Draws:
        sigma = at_anchors(self.per_day(day, self.volatility_30s), anchors)  # [B]
        missing = ~np.isfinite(sigma)
        if missing.any():
            s, t = anchors[np.argmax(missing)]
            raise ValueError(
                f"{self.name}: no volatility at {day.day} {day.symbols[s]} second {t} "
                f"(fewer than {MIN_RETURNS} observed 1 s returns in its window)"
            )
        noise = rng.standard_normal((len(anchors), n_samples))  # [B, S]
        return Draws(np.zeros(len(anchors)), sigma[:, None] * noise)


@register
class RollingGaussian(_GaussianVolatility):
    """Gaussian with the rolling historical 1 s volatility of the last `window_s` s, x √30."""

    name = "rolling_gaussian"

    def __init__(
        self, window_s: int = 300, scale_fit: ScaleFit | None = None, tick: float = TICK
    ) -> None:
        super().__init__(scale_fit, tick)
        self.window_s = window_s

    def volatility_30s(self, day: DayArrays) -> np.ndarray:
        ms = rolling_mean_square(observed_log_returns(day), self.window_s)
        return np.maximum(np.sqrt(ms * HORIZON_S), SIGMA_FLOOR)


@register
class EwmaGaussian(_GaussianVolatility):
    """Gaussian with the EWMA (half-life `halflife_s`) 1 s volatility since the open, x √30."""

    name = "ewma_gaussian"

    def __init__(
        self, halflife_s: float = 300.0, scale_fit: ScaleFit | None = None, tick: float = TICK
    ) -> None:
        super().__init__(scale_fit, tick)
        self.halflife_s = halflife_s

    def volatility_30s(self, day: DayArrays) -> np.ndarray:
        ms = ewma_mean_square(observed_log_returns(day), self.halflife_s)
        return np.maximum(np.sqrt(ms) * math.sqrt(HORIZON_S), SIGMA_FLOOR)
