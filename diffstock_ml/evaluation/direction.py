"""Directional accuracy: how often the predicted sign of the 30 s move is right.

Zero moves are common on the price grid and have no direction: they are excluded and counted.
A forecast that puts as much mass above as below zero makes no call and is excluded too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from diffstock_ml.evaluation.scores import direction_probabilities


@dataclass(frozen=True)
class DirectionalAccuracy:
    """Share of right calls among non-zero moves, with what was left out."""

    accuracy: float  # correct / n; NaN when n == 0
    n: int  # scored anchors: a non-zero move and a call
    correct: int
    zero_moves: int  # excluded: the realised move was zero
    no_call: int  # excluded: a non-zero move but no predicted direction
    p_value: float  # two-sided exact binomial test of accuracy = 0.5; NaN when n == 0


def sign_with_tolerance(values: np.ndarray, tolerance: np.ndarray | float) -> np.ndarray:
    """`[B]` −1, 0 or +1, with |value| <= tolerance counted as 0."""
    return np.where(values > tolerance, 1, np.where(values < -tolerance, -1, 0))


def forecast_direction(ordered: np.ndarray, tolerance: np.ndarray) -> np.ndarray:
    """`[B]` predicted sign: +1 when P(up) > P(down) under the sampled forecast, −1 when
    below, 0 (no call) when equal. Unlike the median's sign this still calls a direction when
    most samples are exact zero moves."""
    up, down = direction_probabilities(ordered, tolerance)
    return np.sign(up - down).astype(np.int64)


def reversal_direction(last_1s_return: np.ndarray, tolerance: np.ndarray | float) -> np.ndarray:
    """`[B]` the 1 s reversal rule: predict the opposite of the last 1 s move (no call if 0)."""
    return -sign_with_tolerance(last_1s_return, tolerance)


def directional_accuracy(
    predicted: np.ndarray, target: np.ndarray, tolerance: np.ndarray | float
) -> DirectionalAccuracy:
    """Score predicted signs `[B]` (−1/0/+1) against realised returns `[B]`.

    The binomial test assumes independent outcomes: pass non-overlapping anchors.
    """
    realised = sign_with_tolerance(np.asarray(target, np.float64), tolerance)
    moved = realised != 0
    called = moved & (predicted != 0)
    n = int(called.sum())
    correct = int((predicted[called] == realised[called]).sum())
    p_value = float(stats.binomtest(correct, n, 0.5).pvalue) if n else float("nan")
    return DirectionalAccuracy(
        accuracy=correct / n if n else float("nan"),
        n=n,
        correct=correct,
        zero_moves=int((~moved).sum()),
        no_call=int((moved & (predicted == 0)).sum()),
        p_value=p_value,
    )
