"""Value-at-Risk backtests: Kupiec unconditional coverage and Christoffersen independence tests.

A hit is a realised return below the forecast's alpha quantile (`var_hits`). The tests assume
hits of non-overlapping periods: pass anchors on one 30 s grid (`non_overlapping`); transitions
are counted only between consecutive grid points of one symbol.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats
from scipy.special import xlogy

from diffstock_ml.evaluation.forecasts import as_epoch_seconds


@dataclass(frozen=True)
class VaRBacktest:
    """Hit rate of one VaR level and its likelihood-ratio tests (Christoffersen 1998)."""

    alpha: float
    n: int  # periods
    hits: int
    hit_rate: float
    kupiec_lr: float  # unconditional coverage, chi2(1)
    kupiec_p: float
    independence_lr: float  # first-order Markov independence, chi2(1)
    independence_p: float
    conditional_lr: float  # conditional coverage = unconditional + independence, chi2(2)
    conditional_p: float


def _bernoulli_loglik(successes: float, failures: float, p: float) -> float:
    """log[p^successes (1 − p)^failures], with 0·log 0 = 0."""
    return float(xlogy(successes, p) + xlogy(failures, 1.0 - p))


def kupiec_lr(hits: np.ndarray, alpha: float) -> float:
    """Kupiec (1995) proportion-of-failures LR: −2 log[L(alpha) / L(hit rate)], ~ chi2(1)."""
    n, x = len(hits), int(np.sum(hits))
    if n == 0:
        raise ValueError("Kupiec test needs at least one period")
    return 2.0 * (_bernoulli_loglik(x, n - x, x / n) - _bernoulli_loglik(x, n - x, alpha))


def transition_counts(hits: np.ndarray, starts_run: np.ndarray | None = None) -> np.ndarray:
    """`[2, 2]` counts n_ij of hit state i followed by state j, skipping transitions into a
    period where `starts_run` is True (a new symbol, or a gap in the grid)."""
    hits = np.asarray(hits, dtype=np.int64)
    follows = np.ones(len(hits), dtype=bool)
    follows[0] = False
    if starts_run is not None:
        follows &= ~np.asarray(starts_run, dtype=bool)
    previous, current = hits[:-1][follows[1:]], hits[1:][follows[1:]]
    return np.bincount(previous * 2 + current, minlength=4).reshape(2, 2)


def christoffersen_independence_lr(counts: np.ndarray) -> float:
    """Christoffersen (1998) LR of independence against a first-order Markov chain, ~ chi2(1).

    `counts` are the transition counts n_ij (`transition_counts`). Rejects clustered hits.
    """
    (n00, n01), (n10, n11) = counts.astype(np.float64)
    total = n00 + n01 + n10 + n11
    if total == 0:
        raise ValueError("Christoffersen test needs at least one transition")
    pi = (n01 + n11) / total
    pi0 = n01 / (n00 + n01) if n00 + n01 else 0.0
    pi1 = n11 / (n10 + n11) if n10 + n11 else 0.0
    markov = _bernoulli_loglik(n01, n00, pi0) + _bernoulli_loglik(n11, n10, pi1)
    return 2.0 * (markov - _bernoulli_loglik(n01 + n11, n00 + n10, pi))


def var_backtest(
    hits: np.ndarray, alpha: float, starts_run: np.ndarray | None = None
) -> VaRBacktest:
    """Kupiec and Christoffersen tests of an ordered hit sequence at level `alpha`."""
    hits = np.asarray(hits, dtype=bool)
    uc = kupiec_lr(hits, alpha)
    counts = transition_counts(hits, starts_run)
    # no two consecutive periods (every hit starts a run): independence is undefined, not 0
    ind = christoffersen_independence_lr(counts) if counts.sum() else float("nan")
    return VaRBacktest(
        alpha=alpha,
        n=len(hits),
        hits=int(hits.sum()),
        hit_rate=float(hits.mean()),
        kupiec_lr=uc,
        kupiec_p=float(stats.chi2.sf(uc, 1)),
        independence_lr=ind,
        independence_p=float(stats.chi2.sf(ind, 1)),
        conditional_lr=uc + ind,
        conditional_p=float(stats.chi2.sf(uc + ind, 2)),
    )


def var_hits(pit: np.ndarray, alpha: float) -> np.ndarray:
    """`[B]` VaR hits from the randomised PIT: the return fell below the forecast's alpha
    quantile, with a tie at the quantile counted as a hit at random (`randomised_pit`).

    Why not `target < quantile`: on the price grid the forecast has point masses, and a small
    ensemble's interpolated 1 % quantile sits between its two lowest samples; a perfect forecast
    (S = 100) then hits 0.9 % for a $14 stock and 1.8 % for a $100 stock, and Kupiec rejects
    it. The randomised hit has probability exactly alpha under a calibrated forecast.
    """
    return pit < alpha


def grid_runs(symbol: np.ndarray, ts: np.ndarray, horizon_s: int) -> tuple[np.ndarray, np.ndarray]:
    """`(order [B], starts_run [B])`: anchors sorted by (symbol, ts), and True where a period
    does not directly follow the previous one of its symbol (`horizon_s` later)."""
    ts = as_epoch_seconds(ts)
    order = np.lexsort((ts, symbol))
    sym, stamp = np.asarray(symbol)[order], ts[order]
    starts_run = np.ones(len(order), dtype=bool)
    starts_run[1:] = (sym[1:] != sym[:-1]) | (stamp[1:] - stamp[:-1] != horizon_s)
    return order, starts_run
