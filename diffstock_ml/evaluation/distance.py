"""Binned Wasserstein-1 distances between forecasts and outcomes: observable distribution distances.

The distance between an anchor's forecast and the *conditional* distribution of its outcome
cannot be measured: each anchor has one outcome. What can be measured is the distance between
pooled distributions of anchors with similar forecasts. Anchors are grouped into bins of the
forecast's own spread (deciles of the sample standard deviation; ties share a bin), and per bin
scipy's `wasserstein_distance` compares

- `wasserstein_z`: the outcomes with the forecast samples, both standardised per anchor the same
  way, z = (value − forecast median) / sigma (sigma: the anchor's causal 30 s volatility scale,
  positive for every anchor). If every outcome is a draw from its forecast, the pooled outcome
  z-values are draws from the pooled sample z-values, and the distance is 0 up to sampling noise.
  In units of sigma.
- `wasserstein_pit`: the randomised PIT values with the uniform distribution on (0, 1), in
  probability units: 0.5 for a PIT always at 0 (every outcome below its forecast), 0.25 for
  one always at ½ (far too wide) or split between 0 and 1 (far too narrow).

Both are reported as the mean over bins. They are zero for calibrated forecasts, but not only
for them: errors that cancel inside a bin (too wide on some anchors, too narrow on others with
the same forecast spread) are invisible, and a bin of n anchors carries noise of order 1/√n
(never exactly 0). They are diagnostics of calibration by forecast scale, not proper scores:
rank models by CRPS or pinball loss.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import wasserstein_distance

from diffstock_ml.evaluation.pointwise import volatility_bucket

UNIFORM_GRID = (np.arange(10_000) + 0.5) / 10_000  # U(0, 1) to within W1 = 2.5e-5


def spread_bins(samples: np.ndarray, n_bins: int) -> np.ndarray:
    """`[B]` bin 1..n_bins of each anchor by the quantiles of its forecast spread (sample std)."""
    return volatility_bucket(np.asarray(samples, dtype=np.float64).std(axis=1), n_bins)


def wasserstein_z(
    samples: np.ndarray, target: np.ndarray, sigma: np.ndarray, bins: np.ndarray
) -> np.ndarray:
    """`[K]` W1 per non-empty bin (in bin order) between the standardised outcomes and the pooled
    standardised samples of its anchors; samples `[B, S]`, target, sigma and bins `[B]`."""
    samples = np.asarray(samples, dtype=np.float64)
    centre = np.median(samples, axis=1)  # [B]
    z_target = (np.asarray(target, dtype=np.float64) - centre) / sigma  # [B]
    out = []
    for label in np.unique(bins):
        rows = np.flatnonzero(bins == label)
        z_samples = (samples[rows] - centre[rows, None]) / sigma[rows, None]  # [n, S]
        out.append(wasserstein_distance(z_target[rows], z_samples.ravel()))
    return np.asarray(out)


def wasserstein_pit(pit: np.ndarray, bins: np.ndarray) -> np.ndarray:
    """`[K]` W1 per non-empty bin (in bin order) between the PIT values `[B]` and U(0, 1)."""
    pit = np.asarray(pit, dtype=np.float64)
    return np.asarray(
        [wasserstein_distance(pit[bins == label], UNIFORM_GRID) for label in np.unique(bins)]
    )
