"""Frozen configuration dataclasses, one per concern. Orchestration code only converts to them."""

from __future__ import annotations

from dataclasses import dataclass

from diffstock_ml.market import TICK


@dataclass(frozen=True)
class IngestConfig:
    """How raw 1 s bars of one trading day become the cleaned regular-session grid."""

    # Price grid of the market: prices are rounded to it (float32 exports carry noise).
    tick: float = TICK
    # A grid second is `stale` when the last trade is older than this many seconds
    # (or there was no trade at all since the start of the pre-market).
    stale_after_s: int = 60
    # A print more than `outlier_factor` times away from the median of its neighbouring prints
    # (a decimal-shift error, say) is quarantined as `price_outlier` instead of entering the grid.
    outlier_factor: float = 10.0
    # Number of neighbouring prints on each side used for that median.
    outlier_neighbours: int = 5

    def __post_init__(self) -> None:
        if self.tick <= 0:
            raise ValueError(f"tick must be positive, got {self.tick}")
        if self.stale_after_s < 1:
            raise ValueError(f"stale_after_s must be at least 1 s, got {self.stale_after_s}")
        if self.outlier_factor <= 1:
            raise ValueError(f"outlier_factor must exceed 1, got {self.outlier_factor}")
        if self.outlier_neighbours < 1:
            raise ValueError(
                f"outlier_neighbours must be at least 1, got {self.outlier_neighbours}"
            )


@dataclass(frozen=True)
class FeatureConfig:
    """How one session's clean bars become causal features, the volatility scale and the target.

    The windows themselves are part of the feature names (`rv_300s`) and so are fixed in
    `diffstock_ml.features`; this holds what can be tuned without renaming a column.
    """

    # A trailing-window feature is null until its window holds this many values from today
    # (capped at the window length). Until the window is full it uses the history it has:
    # windows never reach back before the session open.
    min_periods: int = 10
    # Half-life, in seconds, of the EWMA of squared 1 s log returns behind `sigma_30s`.
    sigma_halflife_s: float = 300.0
    # Lower bound of `sigma_30s`, in return units (1e-5 = 0.1 bp), so that a quiet or untraded
    # stretch cannot blow up the standardised target `ret_30s / sigma_30s`.
    sigma_floor: float = 1e-5

    def __post_init__(self) -> None:
        if self.min_periods < 1:
            raise ValueError(f"min_periods must be at least 1, got {self.min_periods}")
        if self.sigma_halflife_s <= 0:
            raise ValueError(f"sigma_halflife_s must be positive, got {self.sigma_halflife_s}")
        if self.sigma_floor <= 0:
            raise ValueError(f"sigma_floor must be positive, got {self.sigma_floor}")


@dataclass(frozen=True)
class WindowConfig:
    """Which seconds of a day are model anchors: the window before them and the target after.

    The target lies `HORIZON_S` after the anchor (`diffstock_ml.market`): not configurable.
    """

    # Seconds of history in a window (the seed plan tries 60, 120 and 300).
    length: int = 120
    # Reject anchors whose window holds a stale second.
    exclude_stale_window: bool = True
    # Reject anchors that are stale at t or at t + HORIZON_S (the target would be a stale price).
    exclude_stale_target: bool = True

    def __post_init__(self) -> None:
        if self.length < 2:
            raise ValueError(f"window length must be at least 2 s, got {self.length}")
