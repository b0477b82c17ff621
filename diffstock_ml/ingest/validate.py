"""Row-level validation of raw bars: parse numbers, round to the tick, assign reasons.

Every step is a `LazyFrame -> LazyFrame` function. A failing row gets the first matching
`Reason` in `reason` (null for good rows); nothing is dropped here, so the caller splits good rows
from the quarantine without losing any. Human-readable details are written only for the
quarantined rows (`describe_reasons`), which keeps the hot path to a few cheap expressions.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

from diffstock_ml.calendar import NEW_YORK
from diffstock_ml.ingest.schema import NUMBER_COLUMNS, PRICE_COLUMNS, RAW_COLUMNS, Reason

ONE_SECOND_US = 1_000_000
# A byte that is not UTF-8 is decoded as U+FFFD (the reader is lossy): its field is condemned.
_REPLACEMENT = "\ufffd"


def round_to_tick(expr: pl.Expr, tick: float) -> pl.Expr:
    """Snap a price to the tick grid, removing float32 export noise (12.3400001 -> 12.34)."""
    decimals = max(0, -math.floor(math.log10(tick)) + 2)
    return ((expr / tick).round(0) * tick).round(decimals)


def parse_fields(rows: pl.LazyFrame, tick: float) -> pl.LazyFrame:
    """Typed columns `*_num` (from the reader or the text) and `*_tick` beside the timestamps."""
    numbers = [
        pl.coalesce(f"{c}_num", pl.col(c).cast(pl.Float64, strict=False)).alias(f"{c}_num")
        for c in NUMBER_COLUMNS
    ]
    rounded = [round_to_tick(pl.col(f"{c}_num"), tick).alias(f"{c}_tick") for c in PRICE_COLUMNS]
    return rows.with_columns(numbers).with_columns(rounded)


def new_york_day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """UTC instants of midnight New York at the start of `day` and of the next day."""
    zone = ZoneInfo(NEW_YORK)
    start = dt.datetime.combine(day, dt.time(), tzinfo=zone)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=zone)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


Rule = tuple[Reason, pl.Expr, pl.Expr]  # (reason, condition, detail)


_FILE_SYMBOL = "_file_symbol"  # the symbol of the row's file, added for the rules


@functools.lru_cache(maxsize=8)
def _rules(day: dt.date, *, lossy: bool = True) -> tuple[Rule, ...]:
    """(reason, condition, detail) in priority order; details are only built for bad rows.

    Built once per day (building them costs more than some of the checks on a batch).
    """
    return (*_field_rules(lossy=lossy), *_value_rules(pl.col(_FILE_SYMBOL), day))


def _field_rules(*, lossy: bool) -> list[Rule]:
    """Rules on the fields as read: present, decodable, parsable.

    Only text decoded lossily (`lossy`) can hold the U+FFFD of a byte that is not UTF-8; on
    strictly decoded text the check, the dearest of the rules, is skipped.
    """
    blank = {c: pl.col(c).is_null() | (pl.col(c) == "") for c in RAW_COLUMNS}
    # A number typed by the reader has no text: it is missing only when its value is null too.
    missing = {
        c: blank[c] & pl.col(f"{c}_num").is_null() if c in NUMBER_COLUMNS else blank[c]
        for c in RAW_COLUMNS
    }
    names = [pl.when(missing[c]).then(pl.lit(c)) for c in RAW_COLUMNS]
    # Numbers typed by the reader come from valid UTF-8 only: their text is null.
    garbled = {
        c: pl.col(c).str.contains(_REPLACEMENT, literal=True) if lossy else pl.lit(False)
        for c in RAW_COLUMNS
    }
    garbled_names = [pl.when(garbled[c]).then(pl.lit(c)) for c in RAW_COLUMNS]
    return [
        (
            Reason.UNPARSABLE_LINE,
            pl.all_horizontal(missing.values()),
            pl.lit("blank line or wrong number of fields"),
        ),
        (
            Reason.BAD_ENCODING,
            pl.any_horizontal(garbled.values()).fill_null(False),
            pl.lit("bytes that are not UTF-8 (Windows-1252?) in field(s): ")
            + pl.concat_str(garbled_names, separator=" ", ignore_nulls=True),
        ),
        (
            Reason.MISSING_FIELD,
            pl.any_horizontal(missing.values()),
            pl.lit("empty field(s): ") + pl.concat_str(names, separator=" ", ignore_nulls=True),
        ),
        (
            Reason.BAD_TIMESTAMP,
            pl.col("bob_utc").is_null() | pl.col("eob_utc").is_null(),
            pl.format("cannot parse timestamp bob={} eob={}", "bob", "eob"),
        ),
        (
            Reason.BAD_NUMBER,
            pl.any_horizontal(pl.col(f"{c}_num").is_null() for c in NUMBER_COLUMNS),
            pl.format(
                "not a number in close={} high={} low={} volume={} amount={}", *NUMBER_COLUMNS
            ),
        ),
    ]


def _value_rules(file_symbol: pl.Expr, day: dt.date) -> list[Rule]:
    """Rules on the parsed values: prices, volumes, the bar's span, its file and its day."""
    day_start, day_end = new_york_day_bounds(day)
    price = [pl.col(f"{c}_num") for c in PRICE_COLUMNS]
    bar_us = pl.col("bar_us")
    bar_s = (
        pl.when(bar_us % ONE_SECOND_US == 0)
        .then((bar_us // ONE_SECOND_US).cast(pl.String))
        .otherwise((bar_us / ONE_SECOND_US).round(6).cast(pl.String))
    )
    return [
        (
            Reason.BAD_PRICE,
            pl.any_horizontal(~p.is_finite() | (p <= 0) for p in price),
            pl.format("price not positive and finite: close={} high={} low={}", *PRICE_COLUMNS),
        ),
        (
            Reason.HIGH_BELOW_LOW,
            pl.col("high_num") < pl.col("low_num"),
            pl.format("high={} < low={}", "high", "low"),
        ),
        (
            Reason.CLOSE_OUTSIDE_RANGE,
            (pl.col("close_tick") > pl.col("high_tick"))
            | (pl.col("close_tick") < pl.col("low_tick")),
            pl.format("close={} outside [low={}, high={}]", "close", "low", "high"),
        ),
        (
            Reason.BAD_VOLUME,
            pl.any_horizontal(
                ~pl.col(c).is_finite() | (pl.col(c) < 0) for c in ("volume_num", "amount_num")
            ),
            pl.format("volume={} amount={} must be finite and non-negative", "volume", "amount"),
        ),
        (
            Reason.EOB_BEFORE_BOB,
            pl.col("bar_us") < 0,
            pl.format("eob={} is before bob={}", "eob", "bob"),
        ),
        (
            Reason.NOT_ONE_SECOND_BAR,
            ~pl.col("bar_us").is_between(1, ONE_SECOND_US),
            pl.format("eob - bob = {} s, not a 1 s bar (bob={} eob={})", bar_s, "bob", "eob"),
        ),
        (
            Reason.SYMBOL_MISMATCH,
            pl.col("symbol") != file_symbol,
            pl.format("symbol={} but the file is {}", "symbol", "file"),
        ),
        (
            Reason.WRONG_DAY,
            (pl.col("bob_utc") < day_start) | (pl.col("bob_utc") >= day_end),
            pl.format("bob={} is not on the folder's day {}", "bob", pl.lit(day.isoformat())),
        ),
    ]


def assign_reasons(
    rows: pl.LazyFrame, file_symbol: pl.Expr, day: dt.date, *, lossy: bool = True
) -> pl.LazyFrame:
    """Add `reason`: the first rule (in `Reason` order) that the row breaks, else null.

    `lossy`: some text was decoded with U+FFFD for bytes that are not UTF-8 (`RawFile.lossy`).
    """
    rules = _rules(day, lossy=lossy)
    reason = pl.when(rules[0][1]).then(pl.lit(rules[0][0].value))
    for code, condition, _ in rules[1:]:
        reason = reason.when(condition).then(pl.lit(code.value))
    return (
        rows.with_columns(file_symbol.alias(_FILE_SYMBOL))
        .with_columns(reason.otherwise(None).alias("reason"))
        .drop(_FILE_SYMBOL)
    )


def wrong_bar_lengths(checked: pl.DataFrame) -> dict[str, str]:
    """Files none of whose bars spans 1 s (a 60 s export, say), with the lengths found.

    Only rows whose `eob - bob` could be read count; such a file has no row left to keep.
    """
    one_second = pl.col("bar_us").is_between(1, ONE_SECOND_US)
    if checked.lazy().select(one_second.or_(pl.col("bar_us").is_null()).all()).collect().item():
        return {}  # the usual day: every bar that could be read spans 1 s
    lengths = (
        checked.lazy()
        .filter(pl.col("bar_us").is_not_null())
        .group_by("file")
        .agg(
            one_second.any().alias("any_one_second"),
            pl.len().alias("n"),
            (pl.col("bar_us") / ONE_SECOND_US)
            .round(3)
            .alias("s")
            .value_counts(sort=True)
            .alias("lengths"),
        )
        .filter(~pl.col("any_one_second"))
        .collect()
    )
    return {
        row["file"]: f"none of its {row['n']} bars spans 1 s: eob - bob = "
        + ", ".join(f"{v['s']:g} s ({v['count']} bars)" for v in row["lengths"][:3])
        for row in lengths.iter_rows(named=True)
    }


def mark_duplicates(valid: pl.DataFrame) -> pl.DataFrame:
    """Among valid rows sorted by (file_id, bob_utc, line), one bar per second: the last line wins.

    Earlier lines of the same second become `duplicate_exact` when every value matches the kept
    row, else `duplicate_conflict`; `kept_line` (null until then) names the line that was kept.
    Duplicates are adjacent after the sort, so only the few rows equal to a neighbour are
    compared.
    """
    key = ["file_id", "bob_utc"]
    values = ["close_tick", "high_tick", "low_tick", "volume_num", "amount_num"]
    same = (pl.col("file_id") == pl.col("file_id").shift(1)) & (
        pl.col("bob_utc") == pl.col("bob_utc").shift(1)
    )
    candidate = (same | same.shift(-1)).fill_null(False)
    # (`lazy()` for every query of the wide frame: an eager one re-aligns all its columns)
    if not valid.lazy().select(candidate.any()).collect().item():  # the usual day
        return valid
    valid = valid.with_columns(candidate.alias("_candidate"))
    groups = valid.filter("_candidate")
    kept = groups.group_by(key).agg(
        pl.col("line").max().alias("_kept"),
        *(pl.col(v).sort_by("line").last().alias(f"_k_{v}") for v in values),
    )
    identical = pl.all_horizontal(pl.col(v) == pl.col(f"_k_{v}") for v in values)
    is_dup = pl.col("line") != pl.col("_kept")
    resolved = (
        groups.join(kept, on=key, how="left")
        .with_columns(
            pl.when(is_dup & identical)
            .then(pl.lit(Reason.DUPLICATE_EXACT.value))
            .when(is_dup)
            .then(pl.lit(Reason.DUPLICATE_CONFLICT.value))
            .otherwise(pl.col("reason"))
            .alias("reason"),
            pl.when(is_dup).then(pl.col("_kept")).alias("kept_line"),
        )
        .drop("_kept", *(f"_k_{v}" for v in values))
    )
    return (
        pl.concat([valid.filter(~pl.col("_candidate")), resolved], how="vertical")
        .sort("file_id", "bob_utc", "line")
        .drop("_candidate")
    )


def mark_outliers(valid: pl.DataFrame, factor: float, neighbours: int) -> pl.DataFrame:
    """`price_outlier`: a print `factor`x away from the median of its neighbouring prints.

    `valid` is sorted by (file_id, bob_utc, line). The median runs over the still-valid prints of
    the same file, `neighbours` on each side and the print itself. Only prints more than
    `factor`^(1/3) away from the day's median price of their file are examined (a real stock does
    not move that far in a day), which keeps this cheap; `neighbour_median` (null until then) is
    kept for the detail.
    """
    ok = pl.col("reason").is_null()
    day_median = pl.col("close_tick").filter(ok).median().over("file_id")
    bound = factor ** (1 / 3)
    suspect = ok & (
        (pl.col("close_tick") > day_median * bound) | (pl.col("close_tick") < day_median / bound)
    )
    rows = valid.lazy().select(suspect.fill_null(False)).collect().to_series().to_numpy()
    rows = np.flatnonzero(rows)
    if len(rows) == 0:
        return valid
    close = valid["close_tick"].to_numpy()
    usable = valid.get_column("reason").is_null().to_numpy()
    file_id = valid.get_column("file_id").to_numpy()
    window = np.clip(rows[:, None] + np.arange(-neighbours, neighbours + 1), 0, len(close) - 1)
    same_file = file_id[window] == file_id[rows][:, None]
    prices = np.where(same_file & usable[window], close[window], np.nan)
    median = np.nanmedian(prices, axis=1)
    ratio = close[rows] / median
    outliers = rows[(ratio > factor) | (ratio < 1 / factor)]
    flags = np.zeros(len(close), dtype=bool)
    flags[outliers] = True
    medians = np.full(len(close), np.nan)
    medians[rows] = median
    return valid.with_columns(
        pl.when(pl.Series(flags))
        .then(pl.lit(Reason.PRICE_OUTLIER.value))
        .otherwise(pl.col("reason"))
        .alias("reason"),
        pl.Series("neighbour_median", medians).fill_nan(None),
    )


def describe_reasons(bad: pl.LazyFrame, file_symbol: pl.Expr, day: dt.date) -> pl.LazyFrame:
    """Add `detail`, a sentence naming the offending values, to quarantined rows.

    Numbers the reader typed get their text back first, so details and `raw` show every field.
    """
    bad = bad.with_columns(
        pl.coalesce(c, pl.col(f"{c}_num").cast(pl.String)).alias(c) for c in NUMBER_COLUMNS
    )
    detail = pl.when(pl.col("reason") == Reason.DUPLICATE_EXACT.value).then(
        pl.format("same bar as line {}, which is kept", "kept_line")
    )
    detail = detail.when(pl.col("reason") == Reason.DUPLICATE_CONFLICT.value).then(
        pl.format("same second as line {} (kept) with different values", "kept_line")
    )
    detail = detail.when(pl.col("reason") == Reason.PRICE_OUTLIER.value).then(
        pl.format(
            "close={} is {}x the median {} of its neighbours",
            "close",
            (pl.col("close_tick") / pl.col("neighbour_median")).round(1),
            "neighbour_median",
        )
    )
    for code, _, text in _rules(day):
        detail = detail.when(pl.col("reason") == code.value).then(text)
    return (
        bad.with_columns(file_symbol.alias(_FILE_SYMBOL))
        .with_columns(detail.otherwise(None).alias("detail"))
        .drop(_FILE_SYMBOL)
    )
