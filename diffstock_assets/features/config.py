"""Run configuration of the features stage; converts to the library's frozen configs."""

import dagster as dg

from diffstock_ml.config import FeatureConfig, WindowConfig

_FEATURES = FeatureConfig()
_WINDOWS = WindowConfig()


class FeaturesConfig(dg.Config):
    """How causal features and the volatility scale are computed."""

    min_periods: int = _FEATURES.min_periods
    sigma_halflife_s: float = _FEATURES.sigma_halflife_s
    sigma_floor: float = _FEATURES.sigma_floor
    # target sanity check (WARN): median |ret_30s| must fall in this range, in basis points
    min_median_abs_return_bp: float = 0.1
    max_median_abs_return_bp: float = 50.0

    def to_feature_config(self) -> FeatureConfig:
        return FeatureConfig(
            min_periods=self.min_periods,
            sigma_halflife_s=self.sigma_halflife_s,
            sigma_floor=self.sigma_floor,
        )


class WindowsConfig(dg.Config):
    """Which seconds are model anchors (window length N, stale rules); the 30 s horizon is a
    constant of the data (`diffstock_ml.market.HORIZON_S`), not a run setting."""

    length: int = _WINDOWS.length
    exclude_stale_window: bool = _WINDOWS.exclude_stale_window
    exclude_stale_target: bool = _WINDOWS.exclude_stale_target
    # WARN when fewer than this share of the day's symbol-seconds are valid anchors
    min_valid_share: float = 0.5

    def to_window_config(self) -> WindowConfig:
        return WindowConfig(
            length=self.length,
            exclude_stale_window=self.exclude_stale_window,
            exclude_stale_target=self.exclude_stale_target,
        )
