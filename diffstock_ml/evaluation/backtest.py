"""A cost-aware backtest of the forecast mean: non-overlapping 30 s trades per symbol.

Conventions (all P&L in bp of one unit of notional per symbol):
- Every symbol is traded on one common 30 s grid (`non_overlapping`). At each grid point the
  position is +1 if the forecast's expected return exceeds the one-way cost c = fees_bp +
  half_spread_bp, −1 if it is below −c, else 0, and is held for the 30 s target.
- Costs are paid per unit of position change, c per side: entering or leaving costs c, a flip
  2c, keeping the position nothing. The position is closed (cost c) at the end of each run of
  consecutive grid points of a symbol (a gap or the session's end).
- Period P&L = position · ret_30s · 1e4 − costs. A "trade" is a period holding a position;
  hit ratio is the share of trades with positive net P&L.
- Portfolio P&L per timestamp is the sum over symbols. Sharpe = mean / std of that series ×
  sqrt(periods per year), periods per year = (timestamps per trading day in the sample) ×
  trading days per year; Sortino uses the downside deviation sqrt(mean(min(pnl, 0)²)).
  Undefined ratios (no variation, no trades) are NaN.
- Gross figures (`sharpe_gross`, `total_pnl_gross_bp`) are the same positions without costs:
  what the calls earn before the market takes its fees and spread.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from diffstock_ml.evaluation.forecasts import as_epoch_seconds, non_overlapping
from diffstock_ml.evaluation.var import grid_runs
from diffstock_ml.market import HORIZON_S

BP = 1e4
SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class Backtest:
    """Figures of one strategy run and its equity curve."""

    n_periods: int  # symbol x grid-point periods considered
    n_trades: int  # periods holding a position
    total_pnl_bp: float
    pnl_per_trade_bp: float
    hit_ratio: float
    sharpe: float
    sharpe_gross: float  # the same positions before costs
    total_pnl_gross_bp: float
    sortino: float
    max_drawdown_bp: float
    turnover: float  # mean |position change| per symbol-period (0 to 2)
    equity: pl.DataFrame  # ts (UTC), pnl_bp, equity_bp: the portfolio per timestamp


def positions(expected_return: np.ndarray, cost_bp: float) -> np.ndarray:
    """`[B]` +1 / −1 / 0: long above the cost, short below minus the cost, else flat."""
    edge = np.asarray(expected_return, np.float64) * BP
    return np.where(edge > cost_bp, 1, np.where(edge < -cost_bp, -1, 0))


def backtest(
    expected_return: np.ndarray,
    target: np.ndarray,
    symbol: np.ndarray,
    ts: np.ndarray,
    *,
    cost_bp: float,
    horizon_s: int = HORIZON_S,
    trading_days_per_year: int = 252,
) -> Backtest:
    """Trade the sign of `expected_return [B]` net of costs on non-overlapping anchors.

    `target [B]` is the realised return over the holding period; see the module docstring for
    costs, trades and the annualisation.
    """
    ts = as_epoch_seconds(ts)
    keep = np.flatnonzero(non_overlapping(symbol, ts, horizon_s))
    order, starts_run = grid_runs(np.asarray(symbol)[keep], ts[keep], horizon_s)
    rows = keep[order]
    held = positions(np.asarray(expected_return)[rows], cost_bp)  # [P]
    previous = np.where(starts_run, 0, np.roll(held, 1))
    ends_run = np.append(starts_run[1:], True)
    changes = np.abs(held - previous) + np.abs(held) * ends_run  # one-way position changes
    gross = held * np.asarray(target, np.float64)[rows] * BP  # [P]
    net = gross - cost_bp * changes  # [P]

    stamps, inverse = np.unique(ts[rows], return_inverse=True)
    pnl = np.bincount(inverse, weights=net, minlength=len(stamps))  # [T] portfolio P&L
    pnl_gross = np.bincount(inverse, weights=gross, minlength=len(stamps))  # [T]
    equity = np.cumsum(pnl)
    trades = held != 0
    n_trades = int(trades.sum())
    n_days = len(np.unique(stamps // SECONDS_PER_DAY))
    annualise = np.sqrt(len(stamps) / n_days * trading_days_per_year)
    return Backtest(
        n_periods=len(rows),
        n_trades=n_trades,
        total_pnl_bp=float(net.sum()),
        pnl_per_trade_bp=float(net.sum() / n_trades) if n_trades else float("nan"),
        hit_ratio=float((net[trades] > 0).mean()) if n_trades else float("nan"),
        sharpe=_sharpe(pnl) * annualise,
        sharpe_gross=_sharpe(pnl_gross) * annualise,
        total_pnl_gross_bp=float(gross.sum()),
        sortino=_ratio(pnl.mean(), np.sqrt(np.mean(np.minimum(pnl, 0.0) ** 2))) * annualise,
        max_drawdown_bp=max_drawdown(equity),
        turnover=float(changes.mean()),
        equity=pl.DataFrame(
            {
                "ts": pl.from_epoch(pl.Series(stamps), time_unit="s").dt.replace_time_zone("UTC"),
                "pnl_bp": pnl,
                "equity_bp": equity,
            }
        ),
    )


def max_drawdown(equity: np.ndarray) -> float:
    """Largest fall of the cumulative P&L from its running peak (the start counts as 0)."""
    path = np.concatenate([[0.0], equity])
    return float((np.maximum.accumulate(path) - path).max())


def _sharpe(pnl: np.ndarray) -> float:
    """Mean over standard deviation of a P&L series `[T]`, not annualised (NaN if undefined)."""
    return _ratio(pnl.mean(), pnl.std(ddof=1) if len(pnl) > 1 else 0.0)


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator > 0 else float("nan")
