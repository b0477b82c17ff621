"""Frozen configuration dataclasses, one per concern. Orchestration code only converts to them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class IngestConfig:
    """How raw 1 s bars of one trading day become the cleaned regular-session grid."""

    # Price grid of the market: prices are rounded to it (float32 exports carry noise).
    tick: float = 0.01
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
