"""GARCH(1,1) with Student-t innovations on 30 s returns, one model per symbol (`arch`).

Fitting: per symbol, the non-overlapping 30 s returns of each training day (ending at seconds
30, 60, ... after the open, in basis points for numerical stability), concatenated over the
training days (no overnight return enters), with a constant mean, by maximum likelihood.

Forecasting is strictly causal and one step ahead at every anchor: the 30 s returns ending at t,
t − 30, t − 60, ... (one chain per phase t mod 30, so the last return used is the one completed
at t) are filtered through the fitted recursion h' = ω + α·ε² + β·h, starting each day at the
variance of the symbol's training returns; a missing return contributes its expectation h.
The draws are μ + √h' · t_ν (standardised to unit variance).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from arch import arch_model

from diffstock_ml.baselines.base import Baseline, Draws, ScaleFit, at_anchors, register
from diffstock_ml.windows import DayArrays

HORIZON_S = 30
BP = 1e4
MIN_RETURNS = 100  # fewest training returns per symbol to fit a GARCH on


@dataclass(frozen=True)
class GarchParams:
    """A symbol's fitted GARCH(1,1)-t, in basis points."""

    mu: float  # constant mean, bp
    omega: float  # bp²
    alpha: float
    beta: float
    nu: float  # Student-t degrees of freedom
    initial_variance: float  # bp², variance of the training returns: h at each day's open
    n_returns: int
    converged: bool


def overlapping_returns_bp(close: np.ndarray, horizon_s: int = HORIZON_S) -> np.ndarray:
    """`[S, T]` close[t]/close[t - h] − 1 in bp for the return ending at t; NaN for t < h."""
    close = np.asarray(close, dtype=np.float64)
    r = np.full(close.shape, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        r[:, horizon_s:] = (close[:, horizon_s:] / close[:, :-horizon_s] - 1.0) * BP
    return r


def fit_garch_t(returns_bp: np.ndarray) -> GarchParams:
    """Fit a constant-mean GARCH(1,1) with standardised Student-t innovations to `returns_bp`."""
    model = arch_model(returns_bp, mean="Constant", vol="GARCH", p=1, q=1, dist="t", rescale=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence is recorded in `converged` instead
        result = model.fit(disp="off", show_warning=False)
    p = result.params
    return GarchParams(
        mu=float(p["mu"]),
        omega=float(p["omega"]),
        alpha=float(p["alpha[1]"]),
        beta=float(p["beta[1]"]),
        nu=float(p["nu"]),
        initial_variance=float(np.var(returns_bp)),
        n_returns=len(returns_bp),
        converged=result.convergence_flag == 0,
    )


def one_step_variance(returns_bp: np.ndarray, params: Sequence[GarchParams]) -> np.ndarray:
    """`[S, T]` variance (bp²) of the 30 s return starting at t given returns ending at <= t.

    `returns_bp [S, T]` are the overlapping returns ending at each second (NaN where missing),
    `params` one per row. Each phase t mod h is its own chain of non-overlapping returns.
    """
    n_symbols, n_seconds = returns_bp.shape
    h = HORIZON_S
    blocks = math.ceil(n_seconds / h)
    padded = np.full((n_symbols, blocks * h), np.nan)
    padded[:, :n_seconds] = returns_bp
    r = padded.reshape(n_symbols, blocks, h)  # [S, M, h]: second = h·m + phase

    def column(field: str) -> np.ndarray:
        return np.array([getattr(p, field) for p in params])[:, None]  # [S, 1]

    mu, omega, alpha, beta = (column(f) for f in ("mu", "omega", "alpha", "beta"))
    eps2 = (r - mu[:, :, None]) ** 2  # [S, M, h]
    var = np.empty_like(r)  # conditional variance of the return ending at each second
    var[:, 0] = column("initial_variance")
    for m in range(1, blocks):
        shock = np.where(np.isnan(eps2[:, m - 1]), var[:, m - 1], eps2[:, m - 1])  # [S, h]
        var[:, m] = omega + alpha * shock + beta * var[:, m - 1]
    shock = np.where(np.isnan(eps2), var, eps2)
    ahead = omega[:, :, None] + alpha[:, :, None] * shock + beta[:, :, None] * var
    return ahead.reshape(n_symbols, blocks * h)[:, :n_seconds]


@register
class GarchT(Baseline):
    """GARCH(1,1)-t per symbol, fitted on the training days' non-overlapping 30 s returns."""

    name = "garch_t"

    def __init__(self, scale_fit: ScaleFit | None = None, tick: float = 0.01) -> None:
        super().__init__(scale_fit, tick)
        self.params: dict[str, GarchParams] = {}

    def fit_model(self, train_days: Sequence[DayArrays], rng: np.random.Generator) -> None:
        series: dict[str, list[np.ndarray]] = {}
        for day in train_days:
            returns = overlapping_returns_bp(day.close)[:, HORIZON_S::HORIZON_S]  # [S, M]
            for symbol, row in zip(day.symbols, returns, strict=True):
                series.setdefault(symbol, []).append(row[np.isfinite(row)])
        self.params = {}
        for symbol, parts in series.items():
            returns = np.concatenate(parts)
            if len(returns) < MIN_RETURNS:
                raise ValueError(
                    f"garch_t: {symbol} has {len(returns)} finite 30 s returns on the training "
                    f"days, fewer than {MIN_RETURNS}"
                )
            self.params[symbol] = fit_garch_t(returns)

    def variance_bp2(self, day: DayArrays) -> np.ndarray:
        """`[S, T]` one-step-ahead variance (bp²) of the 30 s return from each second."""
        missing = [s for s in day.symbols if s not in self.params]
        if missing:
            raise ValueError(
                f"garch_t has no parameters for {missing} of {day.day}: not in the training days"
            )
        params = [self.params[s] for s in day.symbols]
        return one_step_variance(overlapping_returns_bp(day.close), params)

    def draw(
        self, day: DayArrays, anchors: np.ndarray, n_samples: int, rng: np.random.Generator
    ) -> Draws:
        sd = np.sqrt(at_anchors(self.per_day(day, self.variance_bp2), anchors)) / BP  # [B]
        params = [self.params[day.symbols[s]] for s in anchors[:, 0]]
        nu = np.array([p.nu for p in params])[:, None]  # [B, 1]
        t = rng.standard_t(np.broadcast_to(nu, (len(anchors), n_samples)))
        standard = t * np.sqrt((nu - 2.0) / nu)  # unit variance
        center = np.array([p.mu for p in params]) / BP
        return Draws(center, sd[:, None] * standard)
