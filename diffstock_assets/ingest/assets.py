"""Ingest stage: raw day folders -> `clean_bars` (session grid + quarantine) in the lake."""

from datetime import date

import dagster as dg
import polars as pl

from diffstock_assets.day_range import BACKFILL_POLICY, DayResult, materialize_days
from diffstock_assets.gates import blocking_names, pending_frame, verdict_frame, write_file_verdict
from diffstock_assets.groups import INGEST
from diffstock_assets.ingest.checks import CHECK_SPECS, check_results
from diffstock_assets.ingest.config import CleanBarsConfig
from diffstock_assets.metadata import markdown_table, table_metadata
from diffstock_assets.partitions import trading_days
from diffstock_assets.resources import (
    BARS,
    QUARANTINE,
    RAW_FILES,
    LakeResource,
    RawDataResource,
)
from diffstock_ml.calendar import parse_day, session_bounds
from diffstock_ml.ingest import BARS_SCHEMA, CleanDay, clean_day
from diffstock_ml.ingest.clean import describe

ASSET = "clean_bars"
BLOCKING = blocking_names(CHECK_SPECS)


@dg.asset(
    partitions_def=trading_days,
    group_name=INGEST,
    check_specs=CHECK_SPECS,
    kinds={"polars", "parquet"},
    code_version="1",
    backfill_policy=BACKFILL_POLICY,
)
def clean_bars(
    context: dg.AssetExecutionContext,
    config: CleanBarsConfig,
    raw: RawDataResource,
    lake: LakeResource,
) -> dg.MaterializeResult:
    """Every symbol on the full 1 s grid of the regular session, plus the day's quarantine."""

    def build_day(key: str) -> DayResult:
        day = parse_day(key)
        result = clean_day(raw.day_folder(key), day, config.to_ingest_config())
        context.log.info(describe(result))
        _log_problems(context, result.files, result.quarantine, result.ignored)

        checks = check_results(
            result,
            max_stale_share=config.max_stale_share,
            max_quarantined_share=config.max_quarantined_share,
        )
        # the verdict goes last: until it is written the day reads as unfinished downstream
        write_file_verdict(lake, ASSET, key, pending_frame())
        lake.write_table(QUARANTINE, key, result.quarantine)
        lake.write_table(RAW_FILES, key, result.files)
        if result.bars.height == 0:
            raise dg.Failure(
                description=_no_bars(key, raw.day_folder(key), result), allow_retries=False
            )
        uri = lake.write_table(BARS, key, result.bars)
        write_file_verdict(lake, ASSET, key, verdict_frame(checks, BLOCKING))
        return DayResult(_metadata(result, day, uri), checks)

    return materialize_days(context, build_day)


def _no_bars(key: str, folder, result: CleanDay) -> str:
    files = result.files.height
    if files == 0:
        found = ", ".join(result.ignored) or "nothing"
        return (
            f"{key}: the raw folder {folder} holds no SYMBOL.csv (or .csv.gz) files "
            f"(found: {found}); copy the day's files there and re-run"
        )
    rejected = result.files.filter(pl.col("status") == "rejected")
    return (
        f"{key}: no usable bar in {folder}: {files} files, {rejected.height} rejected, "
        f"{int(result.files['rows_quarantined'].sum())} rows quarantined (see "
        f"clean_bars/{key}/{RAW_FILES.name} and {QUARANTINE.name})"
    )


def _metadata(result: CleanDay, day: date, uri: str) -> dict:
    open_utc, close_utc = session_bounds(day)
    bars = result.bars
    rejected = result.files.filter(pl.col("status") == "rejected")
    return {
        **table_metadata(bars.height, BARS_SCHEMA),
        "rows": bars.height,
        "symbols": len(result.symbols),
        "session_open_utc": open_utc.isoformat(),
        "session_close_utc": close_utc.isoformat(),
        "filled_share": float(bars["filled"].mean() or 0.0) if bars.height else 0.0,
        "stale_share": float(bars["stale"].mean() or 0.0) if bars.height else 0.0,
        "quarantined_rows": result.quarantine.filter(pl.col("line").is_not_null()).height,
        "quarantined_by_reason": dg.MetadataValue.json(result.quarantine_counts()),
        "rejected_files": markdown_table(rejected.select("file", "reason", "detail")),
        "ignored_entries": ", ".join(result.ignored) or "none",
        "files": markdown_table(
            result.files.select(
                "file", "status", "rows_read", "rows_kept", "rows_quarantined", "detail"
            )
        ),
        "preview": markdown_table(bars.filter(~pl.col("filled")).head(5)),
        "path": dg.MetadataValue.path(uri),
    }


def _log_problems(
    context: dg.AssetExecutionContext,
    files: pl.DataFrame,
    quarantine: pl.DataFrame,
    ignored: tuple[str, ...],
) -> None:
    """Name every rejected file and a sample of quarantined rows (file, line, reason)."""
    for row in files.filter(pl.col("status") == "rejected").iter_rows(named=True):
        context.log.warning(f"{row['file']}: rejected ({row['reason']}): {row['detail']}")
    rows = quarantine.filter(pl.col("line").is_not_null())
    for row in rows.head(20).iter_rows(named=True):
        context.log.warning(f"{row['file']} line {row['line']}: {row['reason']}: {row['detail']}")
    if rows.height > 20:
        context.log.warning(f"... and {rows.height - 20} more quarantined rows (see quarantine)")
    for name in ignored:
        context.log.info(f"ignored {name}: not a CSV file")
