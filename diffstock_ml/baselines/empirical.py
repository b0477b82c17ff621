"""The rolling empirical distribution of the day's own past 30 s returns.

At anchor t of a symbol the forecast resamples, uniformly with replacement, the overlapping
30 s returns close[e]/close[e − 30] − 1 that ended at seconds e in (t − W, t] of the same day
(W = 1800 s by default; at least 60 finite values, else an error names the anchor). A return
touching a stale second (a halt) is left out: its zero or its jump across the halt is no 30 s
move (`spans_stale`). Prices sit on the tick grid, so the draws keep the point mass at zero
moves that Gaussian baselines miss; the spread factor scales them around zero, which leaves that
mass in place.
"""

from __future__ import annotations

import numpy as np

from diffstock_ml.baselines.base import Baseline, Draws, ScaleFit, register, spans_stale
from diffstock_ml.market import HORIZON_S, TICK
from diffstock_ml.windows import DayArrays


@register
class RollingEmpirical(Baseline):
    """Resampled past 30 s returns of the same symbol and day over the last `window_s` s."""

    name = "empirical"

    def __init__(
        self,
        window_s: int = 1800,
        min_returns: int = 60,
        scale_fit: ScaleFit | None = None,
        tick: float = TICK,
    ) -> None:
        super().__init__(scale_fit, tick)
        self.window_s = window_s
        self.min_returns = min_returns

    @staticmethod
    def past_returns(day: DayArrays) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per symbol, the seconds at which an observed 30 s return ended and those returns."""
        close = np.asarray(day.close, dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            returns = close[:, HORIZON_S:] / close[:, :-HORIZON_S] - 1.0  # ends at HORIZON_S..
        returns[spans_stale(day, HORIZON_S)[:, HORIZON_S:]] = np.nan
        out = []
        for row in returns:
            ends = np.flatnonzero(np.isfinite(row))
            out.append((ends + HORIZON_S, row[ends]))
        return out

    def draw(
        self, day: DayArrays, anchors: np.ndarray, n_samples: int, rng: np.random.Generator
    ) -> Draws:
        per_symbol = self.per_day(day, self.past_returns)
        deviations = np.empty((len(anchors), n_samples))
        for s in np.unique(anchors[:, 0]):
            rows = np.flatnonzero(anchors[:, 0] == s)
            ends, values = per_symbol[s]
            t = anchors[rows, 1]
            first = np.searchsorted(ends, t - self.window_s, side="right")  # ends > t − W
            last = np.searchsorted(ends, t, side="right")  # ends <= t
            count = last - first
            short = count < self.min_returns
            if short.any():
                i = np.argmax(short)
                raise ValueError(
                    f"empirical: {day.day} {day.symbols[s]} second {t[i]} has {count[i]} past "
                    f"30 s returns in the last {self.window_s} s, fewer than {self.min_returns}"
                )
            u = rng.random((len(rows), n_samples))
            pick = first[:, None] + np.minimum(
                (u * count[:, None]).astype(np.int64), count[:, None] - 1
            )
            deviations[rows] = values[pick]
        return Draws(np.zeros(len(anchors)), deviations)
