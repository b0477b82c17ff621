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
        blocking=True,
        description="No NaN or inf in any window, target or scale of a valid anchor.",
    ),
    dg.AssetCheckSpec(
        TOO_FEW_VALID_ANCHORS,
        asset=WINDOWS,
        description="Enough of the day's symbol-seconds are valid anchors (warns).",
    ),
]


def target_scale(
    features: pl.DataFrame, day: str, low_bp: float, high_bp: float
) -> dg.AssetCheckResult:
    median_bp = features.select(pl.col("ret_30s").abs().median() * 1e4).item()
    passed = median_bp is not None and low_bp <= median_bp <= high_bp
    per_symbol = (
        features.group_by("symbol")
        .agg((pl.col("ret_30s").abs().median() * 1e4).alias("bp"))
        .filter(pl.col("bp").is_null() | ~pl.col("bp").is_between(low_bp, high_bp))
        .sort("symbol")
    )
    outside = ", ".join(
        f"{s} {'no returns' if bp is None else f'{bp:.3g} bp'}"
        for s, bp in per_symbol.head(8).rows()
    )
    median_text = "no returns" if median_bp is None else f"{median_bp:.3g} bp"
    return dg.AssetCheckResult(
        check_name=IMPLAUSIBLE_TARGET_SCALE,
        passed=bool(passed),
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{day}: median |ret_30s| {median_text}, plausible [{low_bp}, {high_bp}] bp"
        + (f"; symbols outside: {outside}" if outside else ""),
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
    bad_scalar = (~np.isfinite(scalars)).any(axis=0)
    bad_scalars = int(bad_scalar.sum())
    bad_anchor = bad_scalar.copy()
    bad_anchor[too_early] = True
    bad_anchor[~too_early] |= any_bad[symbol[~too_early], second[~too_early] - length + 1]
    examples = "; ".join(
        f"{arrays.symbols[s]} second {t}" for s, t in arrays.anchors[bad_anchor][:5].tolist()
    )
    return dg.AssetCheckResult(
        check_name=NONFINITE_FEATURE_AT_ANCHOR,
        passed=bad_windows == 0 and bad_scalars == 0,
        description=f"{arrays.day}: "
        + (
            f"{int(bad_anchor.sum())} of {len(second)} anchors with a NaN or inf in their "
            f"window, target or scale: {examples}"
            if bad_anchor.any()
            else f"all {len(second)} anchors finite"
        ),
        metadata={"anchors": len(second), "bad_windows": bad_windows, "bad_targets": bad_scalars},
    )


def valid_share(arrays: DayArrays, threshold: float) -> dg.AssetCheckResult:
    share = arrays.valid_share()
    per_symbol = arrays.anchors_per_symbol()
    seconds = arrays.x.shape[1]
    fewest = ", ".join(
        f"{s} {n / seconds:.0%}" for s, n in sorted(per_symbol.items(), key=lambda kv: kv[1])[:5]
    )
    return dg.AssetCheckResult(
        check_name=TOO_FEW_VALID_ANCHORS,
        passed=share >= threshold,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{arrays.day}: {share:.1%} of symbol-seconds are valid anchors "
        f"(threshold {threshold:.0%}); fewest: {fewest or 'no symbols'}",
        metadata={"valid_share": share, "threshold": threshold},
    )
