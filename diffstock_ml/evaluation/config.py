"""Frozen configuration of the evaluation report: levels, tests, bootstrap and backtest costs."""

from __future__ import annotations

from dataclasses import dataclass

from diffstock_ml.evaluation.calibration import TIE_TOLERANCE_TICKS
from diffstock_ml.market import TICK


@dataclass(frozen=True)
class EvaluationConfig:
    """What `evaluate` measures and how its tests and backtest are set up."""

    # Central prediction intervals: coverage_<p> and interval_score_<p> for each level.
    coverage_levels: tuple[float, ...] = (0.5, 0.8, 0.9, 0.95)
    # `sharpness_bp` is the mean width of this central interval (must be a coverage level).
    sharpness_level: float = 0.9
    # Value at Risk levels: a hit is a realised return below the forecast's alpha quantile.
    var_levels: tuple[float, ...] = (0.01, 0.05)
    # Bins of the PIT histogram (10 to 20 reads well).
    pit_bins: int = 10
    # Moving-block bootstrap of the Diebold–Mariano test: block length in non-overlapping steps
    # (20 x 30 s = 10 minutes; capped at sqrt(T) for short series) and number of draws.
    block_length: int = 20
    n_bootstrap: int = 1000
    # Backtest costs, in bp of notional, paid on every unit of position change (per side):
    # commissions and fees, and half the bid-ask spread for crossing from the mid.
    # Liquid large-cap assumptions; set them per universe.
    fees_bp: float = 0.5
    half_spread_bp: float = 1.0
    # Annualisation of the backtest's Sharpe and Sortino ratios.
    trading_days_per_year: int = 252
    # Breakdowns: time-of-day bucket width and number of volatility (sigma) buckets.
    time_of_day_minutes: int = 30
    volatility_buckets: int = 10
    # Price grid: returns closer than `tie_tolerance_ticks` ticks (at the anchor's close) are
    # equal, so a snapped sample and the realised return tie exactly despite float noise.
    tick: float = TICK
    tie_tolerance_ticks: float = TIE_TOLERANCE_TICKS
    # Randomised PIT and bootstrap draws.
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("coverage_levels", "var_levels"):
            levels = getattr(self, name)
            if not levels or any(not 0.0 < level < 1.0 for level in levels):
                raise ValueError(f"{name} must be non-empty and inside (0, 1), got {levels}")
        if self.sharpness_level not in self.coverage_levels:
            raise ValueError(
                f"sharpness_level {self.sharpness_level} is not one of the coverage_levels "
                f"{self.coverage_levels}"
            )
        positive = ("pit_bins", "block_length", "n_bootstrap", "time_of_day_minutes")
        for name in (*positive, "trading_days_per_year", "volatility_buckets"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.pit_bins < 2:
            raise ValueError(f"pit_bins must be at least 2, got {self.pit_bins}")
        if self.fees_bp < 0 or self.half_spread_bp < 0:
            raise ValueError(
                f"costs must be non-negative, got fees_bp={self.fees_bp}, "
                f"half_spread_bp={self.half_spread_bp}"
            )
        if self.tick <= 0 or not 0.0 < self.tie_tolerance_ticks < 0.5:
            raise ValueError(
                f"need tick > 0 and 0 < tie_tolerance_ticks < 0.5, got {self.tick}, "
                f"{self.tie_tolerance_ticks}"
            )

    @property
    def cost_bp(self) -> float:
        """Cost of one unit of position change (one side), in bp: fees plus half spread."""
        return self.fees_bp + self.half_spread_bp


def level_name(level: float) -> str:
    """0.9 -> "90", 0.01 -> "1", 0.975 -> "97.5": the suffix of metric names."""
    return f"{level * 100:g}"
