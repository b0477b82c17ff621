"""Features stage: `clean_bars` -> causal `features` -> model-ready `windows` (both per day)."""

from pathlib import Path

import dagster as dg
import polars as pl

from diffstock_assets.day_range import BACKFILL_POLICY, DayResult, materialize_days
from diffstock_assets.features.checks import (
    FEATURES_CHECKS,
    WINDOWS_CHECKS,
    anchors_finite,
    target_scale,
    valid_share,
)
from diffstock_assets.features.config import FeaturesConfig, WindowsConfig
from diffstock_assets.gates import VERDICT_FILE, blocking_names, require_passed, verdict_frame
from diffstock_assets.groups import FEATURES
from diffstock_assets.ingest.assets import clean_bars
from diffstock_assets.metadata import markdown_table, table_metadata
from diffstock_assets.partitions import trading_days
from diffstock_assets.resources import BARS, FEATURE_ROWS, WINDOWS, LakeResource
from diffstock_ml.features import (
    FEATURE_COLUMNS,
    FEATURE_TABLE,
    FEATURES_SCHEMA,
    OUTPUT_TABLE,
    build_features,
)
from diffstock_ml.windows import ARRAY_TABLE, build_day_arrays, save_day_arrays

WINDOWS_BLOCKING = blocking_names(WINDOWS_CHECKS)


@dg.asset(
    partitions_def=trading_days,
    group_name=FEATURES,
    deps=[clean_bars],
    check_specs=FEATURES_CHECKS,
    kinds={"polars", "parquet"},
    code_version="1",
    backfill_policy=BACKFILL_POLICY,
)
def features(
    context: dg.AssetExecutionContext, config: FeaturesConfig, lake: LakeResource
) -> dg.MaterializeResult:
    """Causal per-symbol features of the day and the target ret_30s on the session grid."""

    def build_day(key: str) -> DayResult:
        require_passed(lake, "clean_bars", key, needed_by=f"features {key}")
        bars = lake.read_table(BARS, key)
        frame = build_features(bars.lazy(), config.to_feature_config()).collect()
        uri = lake.write_table(FEATURE_ROWS, key, frame)
        nulls = frame.select(pl.col(FEATURE_COLUMNS).null_count() / max(frame.height, 1))
        null_share = nulls.unpivot(variable_name="feature", value_name="null_share").sort(
            "null_share", descending=True
        )
        sigma_bp = frame.select(pl.col("sigma_30s").median() * 1e4).item()
        metadata = {
            **table_metadata(frame.height, FEATURES_SCHEMA, {**FEATURE_TABLE, **OUTPUT_TABLE}),
            "rows": frame.height,
            "symbols": frame["symbol"].n_unique(),
            "features": len(FEATURE_COLUMNS),
            "median_sigma_30s_bp": float(sigma_bp or 0.0),
            "null_share_by_feature": markdown_table(null_share.head(8)),
            "path": dg.MetadataValue.path(uri),
        }
        low, high = config.min_median_abs_return_bp, config.max_median_abs_return_bp
        return DayResult(metadata, [target_scale(frame, key, low, high)])

    return materialize_days(context, build_day)


@dg.asset(
    partitions_def=trading_days,
    group_name=FEATURES,
    deps=[features],
    check_specs=WINDOWS_CHECKS,
    kinds={"numpy"},
    code_version="1",
    backfill_policy=BACKFILL_POLICY,
)
def windows(
    context: dg.AssetExecutionContext, config: WindowsConfig, lake: LakeResource
) -> dg.MaterializeResult:
    """The day's float32 arrays [symbol, second, feature] and the index of valid anchors."""

    def build_day(key: str) -> DayResult:
        require_passed(lake, "clean_bars", key, needed_by=f"windows {key}")
        frame = lake.read_table(FEATURE_ROWS, key)
        arrays = build_day_arrays(frame, key, config.to_window_config())
        checks = [anchors_finite(arrays), valid_share(arrays, config.min_valid_share)]
        verdict = verdict_frame(checks, WINDOWS_BLOCKING)

        def publish(folder: Path) -> None:
            save_day_arrays(arrays, folder)
            verdict.write_parquet(folder / VERDICT_FILE)

        uri = lake.write_folder(WINDOWS, key, publish)
        per_symbol = pl.DataFrame(
            list(arrays.anchors_per_symbol().items()), schema=["symbol", "anchors"], orient="row"
        )
        metadata = {
            **_array_metadata(len(arrays.anchors)),
            "anchors": len(arrays.anchors),
            "valid_share": arrays.valid_share(),
            "bytes": arrays.nbytes,
            "shape": str(tuple(arrays.x.shape)),
            "window_length": arrays.config.length,
            "anchors_per_symbol": markdown_table(per_symbol),
            "path": dg.MetadataValue.path(uri),
        }
        return DayResult(metadata, checks)

    return materialize_days(context, build_day)


def _array_metadata(anchors: int) -> dict[str, object]:
    """The day's array files as the catalog's columns; its rows are the valid anchors."""
    types = {name: kind for name, (kind, _) in ARRAY_TABLE.items()}
    meanings = {name: meaning for name, (_, meaning) in ARRAY_TABLE.items()}
    return table_metadata(anchors, types, meanings)
