"""GARCH(1,1) with Student-t innovations on 30 s returns, one model per symbol (`arch`).

Fitting: per symbol, the non-overlapping 30 s returns of each training day (ending at seconds
30, 60, ... after the open, in basis points for numerical stability), concatenated over the
training days (no overnight return enters), with a constant mean, by maximum likelihood. A return
touching a stale second (a halt, a suspended day) is missing, not a zero (`spans_stale`).

The universe may change: a symbol fits on the training days it traded. A symbol with fewer than
`MIN_RETURNS` observed training returns, or none (listed after the training days), gets the
pooled parameters (`pooled_params`: the median symbol's persistence, news share, long-run and
opening variance, mean and tails); its variance then follows its own returns through the day.

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
    n_returns: int  # the symbol's own training returns (0 for the pooled parameters)
    converged: bool
    pooled: bool = False  # the median over symbols, for a symbol without a fit of its own


def overlapping_returns_bp(close: np.ndarray, horizon_s: int = HORIZON_S) -> np.ndarray:
    """`[S, T]` close[t]/close[t - h] − 1 in bp for the return ending at t; NaN for t < h."""
    close = np.asarray(close, dtype=np.float64)
    r = np.full(close.shape, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        r[:, horizon_s:] = (close[:, horizon_s:] / close[:, :-horizon_s] - 1.0) * BP
    return r


def observed_returns_bp(day: DayArrays) -> np.ndarray:
    """`overlapping_returns_bp` of the day, NaN where a return touches a stale second."""
    r = overlapping_returns_bp(day.close)
    r[spans_stale(day, HORIZON_S)] = np.nan
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


def pooled_params(fits: Sequence[GarchParams]) -> GarchParams:
    """The median GARCH of `fits`, for a symbol without a fit of its own.

    Medians of the persistence α + β, the news share α / (α + β), the long-run variance
    ω / (1 − α − β), the opening variance, μ and ν: a stationary GARCH whose variance level is
    the median symbol's (element-wise medians of ω, α and β mix the levels of persistent and
    of quick symbols, and can imply a long-run variance below every symbol's).
    """
    if not fits:
        raise ValueError("pooled_params needs at least one fitted symbol")

    def median(values: Sequence[float]) -> float:
        return float(np.median(values))

    def long_run(f: GarchParams) -> float:  # an integrated fit (α + β = 1) has none: its sample's
        q = f.alpha + f.beta
        return f.omega / (1.0 - q) if q < 1 else f.initial_variance

    p = median([f.alpha + f.beta for f in fits])
    share = median([f.alpha / (f.alpha + f.beta) if f.alpha + f.beta > 0 else 0.0 for f in fits])
    return GarchParams(
        mu=median([f.mu for f in fits]),
        omega=median([long_run(f) for f in fits]) * (1.0 - p),
        alpha=share * p,
        beta=(1.0 - share) * p,
        nu=median([f.nu for f in fits]),
        initial_variance=median([f.initial_variance for f in fits]),
        n_returns=0,
        converged=all(f.converged for f in fits),
        pooled=True,
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
    """GARCH(1,1)-t per symbol, fitted on the training days' non-overlapping 30 s returns;
    pooled parameters for a symbol the training days did not (or barely) see."""

    name = "garch_t"

    def __init__(self, scale_fit: ScaleFit | None = None, tick: float = TICK) -> None:
        super().__init__(scale_fit, tick)
        self.params: dict[str, GarchParams] = {}  # symbols with a fit of their own
        self.pooled: GarchParams | None = None
        self.training_returns: dict[str, int] = {}  # every training symbol's observed returns

    def fit_model(self, train_days: Sequence[DayArrays], rng: np.random.Generator) -> None:
        series: dict[str, list[np.ndarray]] = {}
        for day in train_days:
            returns = observed_returns_bp(day)[:, HORIZON_S::HORIZON_S]  # [S, M]
            for symbol, row in zip(day.symbols, returns, strict=True):
                series.setdefault(symbol, []).append(row[np.isfinite(row)])
        joined = {symbol: np.concatenate(parts) for symbol, parts in series.items()}
        self.training_returns = {symbol: len(r) for symbol, r in joined.items()}
        self.params = {s: fit_garch_t(r) for s, r in joined.items() if len(r) >= MIN_RETURNS}
        if not self.params:
            raise ValueError(
                f"garch_t: no symbol has {MIN_RETURNS} observed 30 s returns on the training "
                f"days (returns per symbol: {self.training_returns})"
            )
        self.pooled = pooled_params(list(self.params.values()))

    def params_for(self, symbol: str) -> GarchParams:
        """The symbol's own fit, else the pooled parameters (unseen or thin in training)."""
        if self.pooled is None:
            raise RuntimeError("garch_t is not fitted: call fit(train_days, rng) first")
        return self.params.get(symbol, self.pooled)

    def pooled_symbols(self, day: DayArrays) -> list[str]:
        """The day's symbols forecast with the pooled parameters."""
        return [s for s in day.symbols if s not in self.params]

    def variance_bp2(self, day: DayArrays) -> np.ndarray:
        """`[S, T]` one-step-ahead variance (bp²) of the 30 s return from each second."""
        params = [self.params_for(s) for s in day.symbols]
        return one_step_variance(observed_returns_bp(day), params)

    def draw(
        self, day: DayArrays, anchors: np.ndarray, n_samples: int, rng: np.random.Generator
    ) -> Draws:
        sd = np.sqrt(at_anchors(self.per_day(day, self.variance_bp2), anchors)) / BP  # [B]
        params = [self.params_for(day.symbols[s]) for s in anchors[:, 0]]
        nu = np.array([p.nu for p in params])[:, None]  # [B, 1]
        t = rng.standard_t(np.broadcast_to(nu, (len(anchors), n_samples)))
        standard = t * np.sqrt((nu - 2.0) / nu)  # unit variance
        center = np.array([p.mu for p in params]) / BP
        return Draws(center, sd[:, None] * standard)
