"""Checks on one cleaned day; each is named after the failure it catches.

They run inside `clean_bars` on the frames just written (declared as its `check_specs`), so no
check re-reads the lake and every partition gets its own results.
"""

from __future__ import annotations

import dagster as dg
import polars as pl

from diffstock_assets.metadata import markdown_table
from diffstock_ml.calendar import session_bounds
from diffstock_ml.ingest import BARS_SCHEMA, QUARANTINE_SCHEMA, CleanDay
from diffstock_ml.ingest.grid import session_seconds

ASSET = dg.AssetKey("clean_bars")

SCHEMA_MISMATCH = "schema_mismatch"
INCOMPLETE_GRID = "incomplete_grid"
CLOSE_OUTSIDE_HIGH_LOW = "close_outside_high_low"
DUPLICATE_SYMBOL_SECOND = "duplicate_symbol_second"
TOO_MANY_STALE_SECONDS = "too_many_stale_seconds"
TOO_MANY_QUARANTINED_ROWS = "too_many_quarantined_rows"

CHECK_SPECS = [
    dg.AssetCheckSpec(
        SCHEMA_MISMATCH,
        asset=ASSET,
        description="Bars and quarantine have the contracted columns and types.",
    ),
    dg.AssetCheckSpec(
        INCOMPLETE_GRID,
        asset=ASSET,
        description="Every symbol has exactly one row per second of the session.",
    ),
    dg.AssetCheckSpec(
        CLOSE_OUTSIDE_HIGH_LOW,
        asset=ASSET,
        description="low <= close <= high on every row with a price.",
    ),
    dg.AssetCheckSpec(
        DUPLICATE_SYMBOL_SECOND, asset=ASSET, description="No (symbol, second) appears twice."
    ),
    dg.AssetCheckSpec(
        TOO_MANY_STALE_SECONDS,
        asset=ASSET,
        description="Share of stale seconds is under the configured threshold (warns).",
    ),
    dg.AssetCheckSpec(
        TOO_MANY_QUARANTINED_ROWS,
        asset=ASSET,
        description="Few rows quarantined and no file rejected (warns).",
    ),
]


def check_results(
    result: CleanDay, *, max_stale_share: float, max_quarantined_share: float
) -> list[dg.AssetCheckResult]:
    """All checks of one cleaned day."""
    return [
        _schema(result),
        _grid(result),
        _close_within_high_low(result.bars),
        _unique_symbol_second(result.bars),
        _stale_share(result.bars, max_stale_share),
        _quarantine_share(result, max_quarantined_share),
    ]


def _schema(result: CleanDay) -> dg.AssetCheckResult:
    problems = [
        f"{name}: expected {expected}, got {dict(actual.schema)}"
        for name, expected, actual in (
            ("bars", BARS_SCHEMA, result.bars),
            ("quarantine", QUARANTINE_SCHEMA, result.quarantine),
        )
        if dict(actual.schema) != dict(expected)
    ]
    return dg.AssetCheckResult(
        check_name=SCHEMA_MISMATCH, passed=not problems, metadata={"problems": "\n".join(problems)}
    )


def _grid(result: CleanDay) -> dg.AssetCheckResult:
    expected_seconds = session_seconds(*session_bounds(result.day)).len()
    per_symbol = result.bars.group_by("symbol").agg(pl.col("ts").n_unique().alias("seconds"))
    short = per_symbol.filter(pl.col("seconds") != expected_seconds)
    expected_rows = expected_seconds * per_symbol.height
    passed = short.height == 0 and result.bars.height == expected_rows
    return dg.AssetCheckResult(
        check_name=INCOMPLETE_GRID,
        passed=passed,
        metadata={
            "session_seconds": expected_seconds,
            "symbols": per_symbol.height,
            "expected_rows": expected_rows,
            "rows": result.bars.height,
            "symbols_with_gaps": ", ".join(short["symbol"].to_list()) or "none",
        },
    )


def _close_within_high_low(bars: pl.DataFrame) -> dg.AssetCheckResult:
    bad = bars.filter((pl.col("close") < pl.col("low")) | (pl.col("close") > pl.col("high")))
    return dg.AssetCheckResult(
        check_name=CLOSE_OUTSIDE_HIGH_LOW,
        passed=bad.height == 0,
        metadata={"violations": bad.height, "examples": markdown_table(bad.head(5))},
    )


def _unique_symbol_second(bars: pl.DataFrame) -> dg.AssetCheckResult:
    duplicates = bars.height - bars.select("symbol", "ts").n_unique()
    return dg.AssetCheckResult(
        check_name=DUPLICATE_SYMBOL_SECOND,
        passed=duplicates == 0,
        metadata={"duplicates": duplicates},
    )


def _stale_share(bars: pl.DataFrame, threshold: float) -> dg.AssetCheckResult:
    share = float(bars["stale"].mean() or 0.0) if bars.height else 1.0
    worst = (
        bars.group_by("symbol")
        .agg(pl.col("stale").mean().alias("stale_share"))
        .sort("stale_share", descending=True)
        .head(5)
    )
    return dg.AssetCheckResult(
        check_name=TOO_MANY_STALE_SECONDS,
        passed=share <= threshold,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "stale_share": share,
            "threshold": threshold,
            "worst_symbols": markdown_table(worst),
        },
    )


def _quarantine_share(result: CleanDay, threshold: float) -> dg.AssetCheckResult:
    rows_read = int(result.files["rows_read"].sum())
    quarantined = int(result.files["rows_quarantined"].sum())
    rejected = result.files.filter(pl.col("status") == "rejected")
    share = quarantined / rows_read if rows_read else 0.0
    return dg.AssetCheckResult(
        check_name=TOO_MANY_QUARANTINED_ROWS,
        passed=share <= threshold and rejected.height == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "quarantined_rows": quarantined,
            "quarantined_share": share,
            "threshold": threshold,
            "rejected_files": rejected.height,
            "by_reason": dg.MetadataValue.json(result.quarantine_counts()),
        },
    )
