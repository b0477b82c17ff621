"""Calibration of sampled forecasts: randomised PIT, its histogram and a uniformity test.

On the $0.01 price grid a snapped forecast has point masses (many samples equal to a zero move)
and the realised return often equals one of them. The plain PIT F(y) then piles up and is not
uniform even for a perfect forecast; the randomised PIT F(y−) + U·(F(y) − F(y−)) is.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from diffstock_ml.evaluation.forecasts import count_below

# Two returns closer than this fraction of a tick (at the anchor's price) are the same grid point.
TIE_TOLERANCE_TICKS = 1e-3


def pit_interval(
    ordered: np.ndarray, target: np.ndarray, tolerance: np.ndarray | float
) -> tuple[np.ndarray, np.ndarray]:
    """`(lower [B], upper [B])`: the range over which the randomised PIT of `target` spreads.

    The ensemble version of [F(y−), F(y)]: y is ranked among its S sorted samples `[B, S]`,
    ties (|x − y| <= tolerance) at a random place, so lower = n_below / (S + 1) and
    upper = (n_below + n_tied + 1) / (S + 1).
    """
    tolerance = np.broadcast_to(np.asarray(tolerance, dtype=np.float64), target.shape)
    below = count_below(ordered, target - tolerance)  # [B] samples < y
    tied = count_below(ordered, target + tolerance, inclusive=True) - below  # [B] samples = y
    size = ordered.shape[1] + 1
    return below / size, (below + tied + 1) / size


def randomised_pit(
    ordered: np.ndarray,
    target: np.ndarray,
    tolerance: np.ndarray | float,
    rng: np.random.Generator,
) -> np.ndarray:
    """`[B]` randomised PIT of `target [B]` under the ensembles `ordered [B, S]` (sorted rows).

    PIT = lower + U·(upper − lower) over `pit_interval`, U ~ U(0, 1): the ensemble version of
    F(y−) + U·(F(y) − F(y−)). If y is exchangeable with the samples (a calibrated forecast) it
    is exactly U(0, 1) for any ensemble size, with or without ties.
    """
    lower, upper = pit_interval(ordered, target, tolerance)
    return lower + rng.random(len(target)) * (upper - lower)


def central_coverage(lower: np.ndarray, upper: np.ndarray, level: float) -> np.ndarray:
    """`[B]` probability that the randomised PIT falls in the central band [α/2, 1 − α/2].

    The coverage of the central `level` interval, counted so that a tie with an interval end
    gets partial credit: its mean is exactly `level` for a calibrated forecast of any ensemble
    size. (Counting "quantile interval contains y" instead over-covers on the price grid, e.g.
    0.71 at 50 % for a perfect forecast of a $14 stock, and mis-covers small ensembles.)
    """
    alpha = 1.0 - level
    overlap = np.clip(np.minimum(upper, 1 - alpha / 2) - np.maximum(lower, alpha / 2), 0, None)
    return overlap / (upper - lower)


def pit_below(lower: np.ndarray, upper: np.ndarray, q: float) -> np.ndarray:
    """`[B]` probability that the randomised PIT is below `q`: the share of outcomes under the
    forecast's q-quantile, ties counted in part (0.5: an unbiased median)."""
    return np.clip((q - lower) / (upper - lower), 0.0, 1.0)


def tie_tolerance(close: np.ndarray, tick: float, ticks: float = TIE_TOLERANCE_TICKS) -> np.ndarray:
    """`[B]` return difference below which two returns at prices `close` count as equal."""
    return ticks * tick / np.asarray(close, dtype=np.float64)


def interval_coverage(
    samples: np.ndarray, target: np.ndarray, close: np.ndarray, level: float, tick: float
) -> np.ndarray:
    """`[B]` coverage of the central `level` interval of ensembles `samples [B, S]` (snapped
    returns) at `target [B]`: the randomised-PIT definition of `central_coverage`.

    The one coverage of the project: training's validation and early stopping, the spread
    factors of every model and the report all count coverage this way.
    """
    return central_coverage(*snapped_pit_interval(samples, target, close, tick), level)


def snapped_pit_interval(
    samples: np.ndarray, target: np.ndarray, close: np.ndarray, tick: float
) -> tuple[np.ndarray, np.ndarray]:
    """`pit_interval` of unsorted snapped `samples [B, S]`, ties within `tie_tolerance`."""
    ordered = np.sort(np.asarray(samples, dtype=np.float64), axis=1)
    return pit_interval(ordered, np.asarray(target, np.float64), tie_tolerance(close, tick))


def pit_histogram(pit: np.ndarray, bins: int) -> np.ndarray:
    """`[bins]` counts of PIT values in equal-width bins over [0, 1]."""
    return np.histogram(pit, bins=bins, range=(0.0, 1.0))[0]


def pit_uniformity_pvalue(pit: np.ndarray, bins: int) -> float:
    """Chi-square goodness-of-fit p-value of the PIT histogram against uniform.

    Assumes independent PIT values: pass the non-overlapping anchors (overlapping 30 s targets
    are serially dependent and make any such test over-reject).
    """
    if len(pit) < bins:
        raise ValueError(f"need at least {bins} PIT values for a {bins}-bin test, got {len(pit)}")
    return float(stats.chisquare(pit_histogram(pit, bins)).pvalue)


def reliability(pit: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """`[L]` observed frequency of `target <= q_level` for each nominal level (from the PIT).

    A calibrated forecast lies on the diagonal: observed ≈ level.
    """
    return (pit[:, None] <= np.asarray(levels)[None, :]).mean(axis=0)
