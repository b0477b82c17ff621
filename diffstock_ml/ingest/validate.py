"""Row-level validation of raw bars: parse, normalise to UTC, round to the tick, assign reasons.

Every step is a `LazyFrame -> LazyFrame` function. A row that fails gets the first matching
`Reason` in `reason` (null for good rows) and a `detail` naming the offending value; nothing is
dropped here, so the caller can split good rows from the quarantine without losing any.
"""

from __future__ import annotations

import datetime as dt
import math

import polars as pl

from diffstock_ml.calendar import NEW_YORK
from diffstock_ml.ingest.schema import PRICE_COLUMNS, RAW_COLUMNS, UTC_US, Reason

_OFFSET = r"^(?:(Z)|([+-])(\d{2}):?(\d{2})?)?$"


def utc_timestamp(column: str) -> pl.Expr:
    """Parse `YYYY-MM-DD[ T]HH:MM:SS[.fff][Z|±HH[:MM]]` to UTC; no offset means UTC; else null."""
    text = pl.col(column).str.strip_chars()
    local = (
        text.str.slice(0, 19)
        .str.replace("T", " ", literal=True)
        .str.to_datetime("%Y-%m-%d %H:%M:%S", strict=False, time_unit="us")
    )
    suffix = text.str.slice(19).str.replace(r"^\.\d+", "")
    parts = suffix.str.extract_groups(_OFFSET)
    sign = pl.when(parts.struct.field("2") == "-").then(-1).otherwise(1)
    minutes = sign * (
        parts.struct.field("3").cast(pl.Int64, strict=False).fill_null(0) * 60
        + parts.struct.field("4").cast(pl.Int64, strict=False).fill_null(0)
    )
    utc = (local - pl.duration(minutes=minutes)).dt.replace_time_zone("UTC")
    return pl.when(suffix.str.contains(_OFFSET)).then(utc).otherwise(None).cast(UTC_US)


def round_to_tick(expr: pl.Expr, tick: float) -> pl.Expr:
    """Snap a price to the tick grid, removing float32 export noise (12.3400001 -> 12.34)."""
    decimals = max(0, -math.floor(math.log10(tick)) + 2)
    return ((expr / tick).round(0) * tick).round(decimals)


def parse_fields(rows: pl.LazyFrame, tick: float) -> pl.LazyFrame:
    """Typed columns next to the text ones: `bob_utc`, `eob_utc` and `*_num` numbers."""
    numbers = [
        pl.col(c).cast(pl.Float64, strict=False).alias(f"{c}_num") for c in (*PRICE_COLUMNS,)
    ] + [pl.col(c).cast(pl.Float64, strict=False).alias(f"{c}_num") for c in ("volume", "amount")]
    rounded = [round_to_tick(pl.col(f"{c}_num"), tick).alias(f"{c}_tick") for c in PRICE_COLUMNS]
    return (
        rows.with_columns(
            utc_timestamp("bob").alias("bob_utc"), utc_timestamp("eob").alias("eob_utc")
        )
        .with_columns(numbers)
        .with_columns(rounded)
    )


def assign_reasons(rows: pl.LazyFrame, file_symbol: pl.Expr, day: dt.date) -> pl.LazyFrame:
    """Add `reason`/`detail` for the first rule each row breaks (rules in `Reason` order)."""
    raw = pl.col(list(RAW_COLUMNS))
    price = [pl.col(f"{c}_num") for c in PRICE_COLUMNS]
    rules: list[tuple[pl.Expr, Reason, pl.Expr]] = [
        (
            pl.all_horizontal(raw.is_null()),
            Reason.UNPARSABLE_LINE,
            pl.lit("blank line or wrong number of fields"),
        ),
        (
            pl.any_horizontal(raw.is_null() | (raw == "")),
            Reason.MISSING_FIELD,
            pl.lit("empty field(s): ")
            + pl.concat_str(
                [
                    pl.when(pl.col(c).is_null() | (pl.col(c) == "")).then(pl.lit(c))
                    for c in RAW_COLUMNS
                ],
                separator=" ",
                ignore_nulls=True,
            ),
        ),
        (
            pl.col("bob_utc").is_null() | pl.col("eob_utc").is_null(),
            Reason.BAD_TIMESTAMP,
            pl.format("cannot parse timestamp bob={} eob={}", "bob", "eob"),
        ),
        (
            pl.any_horizontal(
                pl.col(f"{c}_num").is_null() for c in (*PRICE_COLUMNS, "volume", "amount")
            ),
            Reason.BAD_NUMBER,
            pl.format(
                "not a number in close={} high={} low={} volume={} amount={}",
                *PRICE_COLUMNS,
                "volume",
                "amount",
            ),
        ),
        (
            pl.any_horizontal(~p.is_finite() | (p <= 0) for p in price),
            Reason.BAD_PRICE,
            pl.format("price not positive and finite: close={} high={} low={}", *PRICE_COLUMNS),
        ),
        (
            pl.col("high_num") < pl.col("low_num"),
            Reason.HIGH_BELOW_LOW,
            pl.format("high={} < low={}", "high", "low"),
        ),
        (
            (pl.col("close_tick") > pl.col("high_tick"))
            | (pl.col("close_tick") < pl.col("low_tick")),
            Reason.CLOSE_OUTSIDE_RANGE,
            pl.format("close={} outside [low={}, high={}]", "close", "low", "high"),
        ),
        (
            pl.any_horizontal(
                ~pl.col(c).is_finite() | (pl.col(c) < 0) for c in ("volume_num", "amount_num")
            ),
            Reason.BAD_VOLUME,
            pl.format("volume={} amount={} must be finite and non-negative", "volume", "amount"),
        ),
        (
            pl.col("eob_utc") < pl.col("bob_utc"),
            Reason.EOB_BEFORE_BOB,
            pl.format("eob={} is before bob={}", "eob", "bob"),
        ),
        (
            pl.col("symbol") != file_symbol,
            Reason.SYMBOL_MISMATCH,
            pl.format("symbol={} but the file is {}", "symbol", "file"),
        ),
        (
            pl.col("bob_utc").dt.convert_time_zone(NEW_YORK).dt.date() != pl.lit(day),
            Reason.WRONG_DAY,
            pl.format("bob={} is not on the folder's day {}", "bob", pl.lit(day.isoformat())),
        ),
    ]
    reason = pl.when(rules[0][0]).then(pl.lit(rules[0][1].value))
    detail = pl.when(rules[0][0]).then(rules[0][2])
    for condition, code, text in rules[1:]:
        reason = reason.when(condition).then(pl.lit(code.value))
        detail = detail.when(condition).then(text)
    return rows.with_columns(
        reason.otherwise(None).alias("reason"), detail.otherwise(None).alias("detail")
    )


def mark_duplicates(rows: pl.LazyFrame) -> pl.LazyFrame:
    """Among valid rows, one bar per (symbol, second): the last line of the file wins.

    Earlier lines of the same second are quarantined as `duplicate_exact` when every value
    matches the kept row, else as `duplicate_conflict` (the detail names the kept line).
    """
    valid = pl.col("reason").is_null()
    key = ["file", "bob_utc"]
    values = ["close_tick", "high_tick", "low_tick", "volume_num", "amount_num"]
    ranked = rows.with_columns(
        pl.when(valid).then(pl.col("line")).max().over(key).alias("_kept_line")
    )
    kept_values = [
        pl.col(v).filter(pl.col("line") == pl.col("_kept_line")).first().over(key).alias(f"_k_{v}")
        for v in values
    ]
    ranked = ranked.with_columns(kept_values)
    is_dup = valid & (pl.col("line") != pl.col("_kept_line"))
    identical = pl.all_horizontal(pl.col(v) == pl.col(f"_k_{v}") for v in values)
    return ranked.with_columns(
        pl.when(is_dup & identical)
        .then(pl.lit(Reason.DUPLICATE_EXACT.value))
        .when(is_dup)
        .then(pl.lit(Reason.DUPLICATE_CONFLICT.value))
        .otherwise(pl.col("reason"))
        .alias("reason"),
        pl.when(is_dup)
        .then(pl.format("same second as line {}, which is kept", "_kept_line"))
        .otherwise(pl.col("detail"))
        .alias("detail"),
    ).drop("_kept_line", *[f"_k_{v}" for v in values])


def mark_outliers(rows: pl.LazyFrame, factor: float, neighbours: int) -> pl.LazyFrame:
    """Quarantine a print `factor`× away from the median of its neighbouring valid prints."""
    valid = pl.col("reason").is_null()
    # Nulls (invalid rows) are skipped, so the median is over valid prints of the same file.
    with_median = rows.sort("file", "bob_utc", "line").with_columns(
        pl.when(valid)
        .then(pl.col("close_tick"))
        .rolling_median(window_size=2 * neighbours + 1, center=True, min_samples=1)
        .over("file")
        .alias("_median")
    )
    ratio = pl.col("close_tick") / pl.col("_median")
    outlier = valid & ((ratio > factor) | (ratio < 1 / factor))
    return with_median.with_columns(
        pl.when(outlier)
        .then(pl.lit(Reason.PRICE_OUTLIER.value))
        .otherwise(pl.col("reason"))
        .alias("reason"),
        pl.when(outlier)
        .then(
            pl.format(
                "close={} is {}x the median {} of its neighbours",
                "close",
                ratio.round(1),
                "_median",
            )
        )
        .otherwise(pl.col("detail"))
        .alias("detail"),
    ).drop("_median")
