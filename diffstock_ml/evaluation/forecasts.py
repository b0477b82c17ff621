"""What is evaluated: sampled return forecasts on a set of anchors, and the anchors' context."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

F64 = np.float64


def as_epoch_seconds(ts: np.ndarray) -> np.ndarray:
    """int64 UTC epoch seconds from datetime64 (any unit, floored) or integer seconds."""
    ts = np.asarray(ts)
    if ts.dtype.kind == "M":
        return ts.astype("datetime64[s]").astype(np.int64)
    if ts.dtype.kind in "iu":
        return ts.astype(np.int64)
    raise TypeError(f"ts must be datetime64 or integer epoch seconds, got dtype {ts.dtype}")


@dataclass(frozen=True)
class Anchors:
    """The B anchors every model is evaluated on, and what is known about each.

    `ts` is normalised to int64 UTC epoch seconds (datetime64 input is accepted).
    `last_1s_return` (the return of the second before the anchor) feeds the 1 s reversal
    baseline of directional accuracy; leave it None to skip that baseline.
    """

    target: np.ndarray  # [B] float64 realised ret_30s
    symbol: np.ndarray  # [B] str
    ts: np.ndarray  # [B] int64 UTC epoch seconds of the anchor
    seconds_since_open: np.ndarray  # [B] seconds from the session open to the anchor
    sigma: np.ndarray  # [B] float64 volatility scale (sigma_30s)
    close: np.ndarray  # [B] float64 price at the anchor
    last_1s_return: np.ndarray | None = None  # [B] float64

    def __post_init__(self) -> None:
        fix = object.__setattr__
        fix(self, "target", np.asarray(self.target, dtype=F64))
        fix(self, "symbol", np.asarray(self.symbol).astype(str))
        fix(self, "ts", as_epoch_seconds(self.ts))
        fix(self, "seconds_since_open", np.asarray(self.seconds_since_open, dtype=F64))
        fix(self, "sigma", np.asarray(self.sigma, dtype=F64))
        fix(self, "close", np.asarray(self.close, dtype=F64))
        if self.last_1s_return is not None:
            fix(self, "last_1s_return", np.asarray(self.last_1s_return, dtype=F64))
        n = len(self.target)
        for name in ("symbol", "ts", "seconds_since_open", "sigma", "close", "last_1s_return"):
            value = getattr(self, name)
            if value is not None and value.shape != (n,):
                raise ValueError(f"anchors: {name} has shape {value.shape}, expected ({n},)")
        if n == 0:
            raise ValueError("anchors: no anchors to evaluate")
        if not np.isfinite(self.target).all():
            raise ValueError(f"anchors: {int((~np.isfinite(self.target)).sum())} targets are NaN")
        for name in ("close", "sigma"):
            bad = int((~(getattr(self, name) > 0)).sum())  # NaN counts as bad
            if bad:
                raise ValueError(f"anchors: {name} is not positive at {bad} anchors")

    def __len__(self) -> int:
        return len(self.target)

    def tolerance(self, tick: float, tie_tolerance_ticks: float) -> np.ndarray:
        """`[B]` return difference below which two returns count as equal (a tick fraction)."""
        return tie_tolerance_ticks * tick / self.close


@dataclass(frozen=True)
class ModelForecasts:
    """One model's forecasts: `samples [B, S]` float64 returns (snapped to the price grid) at
    `anchors`. Every model of one evaluation shares the same anchors.

    `latency_ms` is the measured wall time of drawing them, per anchor (the sampling of a test
    day's anchors in one call divided by their number, `forecasting.forecast_day`); None when
    it was not measured.
    """

    samples: np.ndarray  # [B, S] float64 returns
    anchors: Anchors
    latency_ms: float | None = None

    def __post_init__(self) -> None:
        samples = np.asarray(self.samples, dtype=F64)
        object.__setattr__(self, "samples", samples)
        if samples.ndim != 2 or samples.shape[0] != len(self.anchors) or samples.shape[1] < 2:
            raise ValueError(
                f"samples must be [B, S] with B = {len(self.anchors)} anchors and S >= 2, "
                f"got shape {samples.shape}"
            )
        if not np.isfinite(samples).all():
            rows = np.flatnonzero(~np.isfinite(samples).all(axis=1))
            raise ValueError(f"samples hold NaN/inf in {len(rows)} rows, first row {rows[0]}")


def non_overlapping(symbol: np.ndarray, ts: np.ndarray, horizon_s: int) -> np.ndarray:
    """Bool mask `[B]` of anchors on one common `horizon_s` grid: their targets never overlap.

    The grid phase is the residue of `ts mod horizon_s` that most anchors share (0 for anchors
    on every second), so all symbols are sampled at the same timestamps and can be averaged per
    timestamp. Duplicate (symbol, ts) pairs keep their first occurrence.
    """
    ts = as_epoch_seconds(ts)
    residue = ts % horizon_s
    phase = int(np.bincount(residue, minlength=horizon_s).argmax())
    rows = np.flatnonzero(residue == phase)
    codes = np.unique(np.asarray(symbol)[rows], return_inverse=True)[1]
    keys = np.stack([codes, ts[rows]], axis=1)
    keep = np.zeros(len(ts), dtype=bool)
    keep[rows[np.unique(keys, axis=0, return_index=True)[1]]] = True
    return keep


def sorted_samples(samples: np.ndarray) -> np.ndarray:
    """`[B, S]` samples sorted along S (every quantile, PIT and CRPS reads them sorted)."""
    return np.sort(samples, axis=1)


def quantiles(ordered: np.ndarray, levels: np.ndarray | list[float]) -> np.ndarray:
    """`[B, L]` quantiles of sorted samples `[B, S]`, linear interpolation (as `Forecast`)."""
    position = np.asarray(levels, dtype=F64) * (ordered.shape[1] - 1)  # [L]
    lower = np.floor(position).astype(np.int64)
    upper = np.ceil(position).astype(np.int64)
    weight = position - lower
    return ordered[:, lower] * (1 - weight) + ordered[:, upper] * weight  # [B, L]


def count_below(ordered: np.ndarray, bound: np.ndarray, inclusive: bool = False) -> np.ndarray:
    """`[B]` number of samples per row `< bound [B]` (or `<= bound`)."""
    if inclusive:
        return (ordered <= bound[:, None]).sum(axis=1)
    return (ordered < bound[:, None]).sum(axis=1)
