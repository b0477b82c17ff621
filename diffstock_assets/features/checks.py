"""Checks on a day's features and windows; each is named after the failure it catches."""

import dagster as dg
import numpy as np
import polars as pl

from diffstock_ml.windows import DayArrays

FEATURES = dg.AssetKey("features")
WINDOWS = dg.AssetKey("windows")

IMPLAUSIBLE_TARGET_SCALE = "implausible_target_scale"
NONFINITE_FEATURE_AT_ANCHOR = "nonfinite_feature_at_anchor"
TOO_FEW_VALID_ANCHORS = "too_few_valid_anchors"

FEATURES_CHECKS = [
    dg.AssetCheckSpec(
        IMPLAUSIBLE_TARGET_SCALE,
        asset=FEATURES,
        description="Median |ret_30s| lies in a plausible range of basis points (warns).",
    )
]
WINDOWS_CHECKS = [
    dg.AssetCheckSpec(
        NONFINITE_FEATURE_AT_ANCHOR,
        asset=WINDOWS,
        description="No NaN or inf in any window, target or scale of a valid anchor.",
    ),
    dg.AssetCheckSpec(
        TOO_FEW_VALID_ANCHORS,
        asset=WINDOWS,
        description="Enough of the day's symbol-seconds are valid anchors (warns).",
    ),
]


def target_scale(features: pl.DataFrame, low_bp: float, high_bp: float) -> dg.AssetCheckResult:
    median_bp = features.select(pl.col("ret_30s").abs().median() * 1e4).item()
    passed = median_bp is not None and low_bp <= median_bp <= high_bp
    return dg.AssetCheckResult(
        check_name=IMPLAUSIBLE_TARGET_SCALE,
        passed=bool(passed),
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "median_abs_ret_30s_bp": float(median_bp or 0.0),
            "range_bp": f"[{low_bp}, {high_bp}]",
        },
    )


def anchors_finite(arrays: DayArrays) -> dg.AssetCheckResult:
    """Recompute, independently of the anchor rules, that every anchor's window is finite."""
    symbol, second = arrays.anchors[:, 0], arrays.anchors[:, 1]
    length = arrays.config.length
    nonfinite = ~np.isfinite(np.asarray(arrays.x)).all(axis=-1)  # [S, T]
    # window ending at t = columns t-N+1 .. t; sliding_window_view index i covers i .. i+N-1
    any_bad = np.lib.stride_tricks.sliding_window_view(nonfinite, length, axis=1).any(axis=-1)
    too_early = second < length - 1
    bad_windows = int(too_early.sum()) + int(
        any_bad[symbol[~too_early], second[~too_early] - length + 1].sum()
    )
    scalars = np.stack([arrays.target[symbol, second], arrays.sigma[symbol, second]])
    bad_scalars = int((~np.isfinite(scalars)).any(axis=0).sum())
    return dg.AssetCheckResult(
        check_name=NONFINITE_FEATURE_AT_ANCHOR,
        passed=bad_windows == 0 and bad_scalars == 0,
        metadata={"anchors": len(second), "bad_windows": bad_windows, "bad_targets": bad_scalars},
    )


def valid_share(arrays: DayArrays, threshold: float) -> dg.AssetCheckResult:
    share = arrays.valid_share()
    return dg.AssetCheckResult(
        check_name=TOO_FEW_VALID_ANCHORS,
        passed=share >= threshold,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"valid_share": share, "threshold": threshold},
    )
