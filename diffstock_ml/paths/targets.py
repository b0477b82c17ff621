"""Realised price paths: the cumulative log return of every second of the next 30 s.

A path target extends the scalar target `ret_30s` (issue 13): at an anchor (s, t) it is
`r_h = log(close[s, t + h] / close[s, t])` for each horizon h in `HORIZONS` (1 .. `HORIZON_S`
seconds), on the day's forward-filled close. Log returns add up along a path, so a path's
increments are the 1 s log returns; at h = `HORIZON_S` the path is `log1p(ret_30s)`.
A horizon that leaves the session (t + h past the day's last second) is NaN.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from diffstock_ml.market import HORIZON_S
from diffstock_ml.windows import DayArrays

HORIZONS: tuple[int, ...] = tuple(range(1, HORIZON_S + 1))  # seconds after the anchor


def realised_paths(
    day: DayArrays, anchors: np.ndarray, horizons: Sequence[int] = HORIZONS
) -> np.ndarray:
    """`[A, H]` float64 cumulative log returns log(close[t + h] / close[t]) at `anchors [A, 2]`
    (symbol index, second index); NaN where t + h is past the day's last second."""
    anchors = np.asarray(anchors)
    if anchors.ndim != 2 or anchors.shape[1] != 2:
        raise ValueError(f"anchors must be [A, 2] (symbol, second), got shape {anchors.shape}")
    steps = np.asarray(horizons, dtype=np.int64)
    if steps.ndim != 1 or len(steps) == 0 or (steps < 1).any():
        raise ValueError(f"horizons must be positive whole seconds, got {tuple(horizons)}")
    close = np.asarray(day.close, dtype=np.float64)  # [S, T]
    symbol, second = anchors[:, 0].astype(np.int64), anchors[:, 1].astype(np.int64)
    ahead = second[:, None] + steps[None, :]  # [A, H]
    inside = ahead < close.shape[1]
    future = close[symbol[:, None], np.minimum(ahead, close.shape[1] - 1)]  # [A, H]
    with np.errstate(invalid="ignore", divide="ignore"):
        paths = np.log(future / close[symbol, second][:, None])
    return np.where(inside, paths, np.nan)
