"""Checks on one cleaned day; each is named after the failure it catches.

They run inside `clean_bars` on the frames just written (declared as its `check_specs`), so no
check re-reads the lake and every partition gets its own results.
"""

from __future__ import annotations

import dagster as dg
import polars as pl

from diffstock_assets.metadata import markdown_table
from diffstock_ml.calendar import day_key, session_bounds
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
        blocking=True,
        description="Bars and quarantine have the contracted columns and types.",
    ),
    dg.AssetCheckSpec(
        INCOMPLETE_GRID,
        asset=ASSET,
        blocking=True,
        description="Every symbol has exactly one row per second of the session.",
    ),
    dg.AssetCheckSpec(
        CLOSE_OUTSIDE_HIGH_LOW,
        asset=ASSET,
        blocking=True,
        description="low <= close <= high on every row with a price.",
    ),
    dg.AssetCheckSpec(
        DUPLICATE_SYMBOL_SECOND,
        asset=ASSET,
        blocking=True,
        description="No (symbol, second) appears twice.",
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
    """All checks of one cleaned day; each message starts with the day."""
    day = day_key(result.day)
    return [
        _schema(result, day),
        _grid(result, day),
        _close_within_high_low(result.bars, day),
        _unique_symbol_second(result.bars, day),
        _stale_share(result.bars, day, max_stale_share),
        _quarantine_share(result, day, max_quarantined_share),
    ]


def _schema(result: CleanDay, day: str) -> dg.AssetCheckResult:
    problems = [
        f"{name}: expected {_types(expected)}, got {_types(actual.schema)}"
        for name, expected, actual in (
            ("bars", BARS_SCHEMA, result.bars),
            ("quarantine", QUARANTINE_SCHEMA, result.quarantine),
        )
        if dict(actual.schema) != dict(expected)
    ]
    return dg.AssetCheckResult(
        check_name=SCHEMA_MISMATCH,
        passed=not problems,
        description=f"{day}: " + ("; ".join(problems) or "bars and quarantine as contracted"),
        metadata={"problems": "\n".join(problems)},
    )


def _types(schema) -> str:
    return ", ".join(f"{name}: {dtype}" for name, dtype in dict(schema).items())


def _grid(result: CleanDay, day: str) -> dg.AssetCheckResult:
    expected_seconds = session_seconds(*session_bounds(result.day)).len()
    per_symbol = result.bars.group_by("symbol").agg(
        pl.len().alias("rows"), pl.col("ts").n_unique().alias("seconds")
    )
    short = per_symbol.filter(
        (pl.col("seconds") != expected_seconds) | (pl.col("rows") != expected_seconds)
    ).sort("symbol")
    expected_rows = expected_seconds * per_symbol.height
    passed = short.height == 0 and result.bars.height == expected_rows
    gaps = "; ".join(
        f"{row['symbol']} has {row['rows']:,} rows for {row['seconds']:,} of "
        f"{expected_seconds:,} session seconds"
        for row in short.head(10).iter_rows(named=True)
    )
    return dg.AssetCheckResult(
        check_name=INCOMPLETE_GRID,
        passed=passed,
        description=f"{day}: "
        + (gaps or f"{per_symbol.height} symbols x {expected_seconds:,} seconds"),
        metadata={
            "session_seconds": expected_seconds,
            "symbols": per_symbol.height,
            "expected_rows": expected_rows,
            "rows": result.bars.height,
            "symbols_with_gaps": ", ".join(short["symbol"].to_list()) or "none",
        },
    )


def _close_within_high_low(bars: pl.DataFrame, day: str) -> dg.AssetCheckResult:
    bad = bars.filter((pl.col("close") < pl.col("low")) | (pl.col("close") > pl.col("high")))
    examples = "; ".join(
        f"{row['symbol']} {row['ts']:%H:%M:%S} UTC (close {row['close']}, low {row['low']}, "
        f"high {row['high']})"
        for row in bad.head(5).iter_rows(named=True)
    )
    return dg.AssetCheckResult(
        check_name=CLOSE_OUTSIDE_HIGH_LOW,
        passed=bad.height == 0,
        description=f"{day}: "
        + (
            f"{bad.height} rows with close outside [low, high]: {examples}"
            if bad.height
            else "every close within [low, high]"
        ),
        metadata={"violations": bad.height, "examples": markdown_table(bad.head(5))},
    )


def _unique_symbol_second(bars: pl.DataFrame, day: str) -> dg.AssetCheckResult:
    repeated = bars.group_by("symbol", "ts").len().filter(pl.col("len") > 1).sort("symbol", "ts")
    duplicates = int((repeated["len"] - 1).sum()) if repeated.height else 0
    examples = "; ".join(
        f"{row['symbol']} {row['ts']:%H:%M:%S} UTC x{row['len']}"
        for row in repeated.head(5).iter_rows(named=True)
    )
    return dg.AssetCheckResult(
        check_name=DUPLICATE_SYMBOL_SECOND,
        passed=duplicates == 0,
        description=f"{day}: "
        + (f"{duplicates} duplicated rows: {examples}" if duplicates else "no duplicates"),
        metadata={"duplicates": duplicates},
    )


def _stale_share(bars: pl.DataFrame, day: str, threshold: float) -> dg.AssetCheckResult:
    share = float(bars["stale"].mean() or 0.0) if bars.height else 1.0
    worst = (
        bars.group_by("symbol")
        .agg(pl.col("stale").mean().alias("stale_share"))
        .sort("stale_share", "symbol", descending=[True, False])
        .head(5)
    )
    names = ", ".join(f"{s} {v:.0%}" for s, v in worst.iter_rows())
    return dg.AssetCheckResult(
        check_name=TOO_MANY_STALE_SECONDS,
        passed=share <= threshold,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{day}: {share:.1%} of symbol-seconds stale (threshold {threshold:.0%}); "
        f"most stale: {names or 'no symbols'}",
        metadata={
            "stale_share": share,
            "threshold": threshold,
            "worst_symbols": markdown_table(worst),
        },
    )


def _quarantine_share(result: CleanDay, day: str, threshold: float) -> dg.AssetCheckResult:
    rows_read = int(result.files["rows_read"].sum())
    quarantined = int(result.files["rows_quarantined"].sum())
    rejected = result.files.filter(pl.col("status") == "rejected")
    share = quarantined / rows_read if rows_read else 0.0
    by_file = (
        result.files.filter(pl.col("rows_quarantined") > 0)
        .sort("rows_quarantined", descending=True)
        .head(5)
    )
    parts = [
        f"{quarantined:,} of {rows_read:,} rows quarantined ({share:.2%}, threshold "
        f"{threshold:.0%})"
    ]
    parts += [f"{r['file']}: {r['rows_quarantined']} rows" for r in by_file.iter_rows(named=True)]
    parts += [
        f"{r['file']} rejected ({r['reason']})" for r in rejected.head(5).iter_rows(named=True)
    ]
    return dg.AssetCheckResult(
        check_name=TOO_MANY_QUARANTINED_ROWS,
        passed=share <= threshold and rejected.height == 0,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{day}: " + "; ".join(parts),
        metadata={
            "quarantined_rows": quarantined,
            "quarantined_share": share,
            "threshold": threshold,
            "rejected_files": rejected.height,
            "by_reason": dg.MetadataValue.json(result.quarantine_counts()),
        },
    )
