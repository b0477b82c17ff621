"""Per-anchor scores of sampled forecasts: CRPS, central intervals, interval score, median error.

Everything is in basis points of return (×1e4). Functions return one value per anchor so that
overall figures and breakdowns are plain means over the same arrays.
"""

from __future__ import annotations

import numpy as np
import scoringrules as sr

from diffstock_ml.evaluation.forecasts import count_below

BP = 1e4
CHUNK_ROWS = 65_536  # rows per scoringrules call: bounds the temporary [rows, S] arrays


def crps_bp(samples: np.ndarray, target: np.ndarray, *, presorted: bool = False) -> np.ndarray:
    """`[B]` CRPS of the ensembles `samples [B, S]` at `target [B]`, in bp.

    Uses the fair estimator (scoringrules `estimator="pwm"`, equal to
    mean|X − y| − Σ|Xi − Xj| / (2 S (S − 1))), which is unbiased for the CRPS of the
    distribution the samples come from; the library's default ("qd") is biased upwards by
    E|X − X'| / (2 S). Pass `presorted=True` when each row is already sorted.
    """
    samples = np.asarray(samples, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if samples.ndim != 2 or samples.shape[:1] != target.shape:
        raise ValueError(f"samples {samples.shape} and target {target.shape} do not match")
    out = np.empty(len(target))
    for start in range(0, len(target), CHUNK_ROWS):
        rows = slice(start, start + CHUNK_ROWS)
        out[rows] = sr.crps_ensemble(
            target[rows], samples[rows], m_axis=-1, estimator="pwm", sorted_ensemble=presorted
        )
    return out * BP


def crps_skill(crps_model: np.ndarray, crps_baseline: np.ndarray) -> float:
    """CRPS skill score `1 − mean(crps_model) / mean(crps_baseline)` over the same anchors.

    Positive: the model beats the baseline (0.1 = 10 % lower mean CRPS).
    """
    baseline = float(np.mean(crps_baseline))
    if baseline <= 0:
        raise ValueError(f"baseline mean CRPS must be positive, got {baseline}")
    return 1.0 - float(np.mean(crps_model)) / baseline


def central_levels(levels: tuple[float, ...]) -> np.ndarray:
    """Quantile levels `[2L]` of the central intervals: lower ends, then upper ends."""
    alpha = 1.0 - np.asarray(levels, dtype=np.float64)
    return np.concatenate([alpha / 2, 1 - alpha / 2])


def interval_score_bp(
    lower: np.ndarray, upper: np.ndarray, target: np.ndarray, level: float
) -> np.ndarray:
    """`[B]` interval score of the central `level` interval (Gneiting & Raftery 2007, eq. 43), bp.

    IS = (u − l) + (2/α)(l − y)·1{y < l} + (2/α)(y − u)·1{y > u}, with α = 1 − level.
    Lower is better; it rewards narrow intervals and penalises misses by their distance.
    """
    alpha = 1.0 - level
    below = np.clip(lower - target, 0.0, None)
    above = np.clip(target - upper, 0.0, None)
    return (upper - lower + (2.0 / alpha) * (below + above)) * BP


def median_error_bp(median: np.ndarray, target: np.ndarray) -> np.ndarray:
    """`[B]` error of the forecast median, `median − target`, in bp (MAE/RMSE read it)."""
    return (median - target) * BP


def direction_probabilities(
    ordered: np.ndarray, tolerance: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """`(P(up) [B], P(down) [B])` from sorted samples: shares above +tol and below −tol."""
    n = ordered.shape[1]
    down = count_below(ordered, -tolerance) / n
    up = 1.0 - count_below(ordered, tolerance, inclusive=True) / n
    return up, down
