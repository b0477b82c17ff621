"""Raw `bob`/`eob` values -> UTC instants, whatever style the export wrote them in.

Each value is read on its own: ISO text `YYYY-MM-DD[ T]HH:MM:SS[.f][Z|±HH[:MM]]`, or an epoch
number (UTC by definition) whose unit - seconds, milliseconds, microseconds or nanoseconds - is
told by its magnitude. Text without an offset is UTC, as the contract says, except in a file
whose naive timestamps only make sense as New York time (`new_york_evidence`): there they are
read as America/New_York and the file's report says so.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
import pyarrow as pa

from diffstock_ml.calendar import NEW_YORK, session_bounds
from diffstock_ml.ingest.read import strip_text
from diffstock_ml.ingest.schema import UTC_US

TIMESTAMP_COLUMNS = ("bob", "eob")
# What may follow `YYYY-MM-DD HH:MM:SS`: fractional seconds, then nothing, Z or ±HH[:MM].
_SUFFIX = r"^(?:\.(\d+))?(?:(Z)|([+-])(\d{2}):?(\d{2})?)?$"
# An epoch number: 9 to 19 digits (1973 in seconds up to the Int64 limit in nanoseconds); a
# fraction is dropped, as fractional seconds of text are only used for the bar length.
_EPOCH = r"^(\d{9,19})(?:\.\d*)?$"
# Naive timestamps are judged by where trading jumps: the open. The jump is the rows in the half
# hour after the open's wall time minus those in the half hour before; a file reads as New York
# time when its jump at 09:30 is at least NEW_YORK_MIN_JUMP rows and more than twice the size
# of its jump (up or down) at the open's UTC wall time, 13:30 or 14:30.
OPEN_WINDOW = dt.timedelta(minutes=30)
NEW_YORK_MIN_JUMP = 10


class Timestamps(NamedTuple):
    """Rows with `bob_utc`, `eob_utc` (whole seconds, UTC) and `bar_us` (`eob - bob`, exact)."""

    rows: pl.DataFrame
    new_york: dict[str, str]  # file -> note, for files whose naive times were read as New York


def with_utc_timestamps(rows: pl.DataFrame, day: dt.date) -> Timestamps:
    """Add `bob_utc`, `eob_utc` and `bar_us`; null where a value cannot be read. `bob`/`eob`
    may come untrimmed: the rows come back with them trimmed.

    The usual export - every value a date-time with seconds and a written offset - is parsed
    by Arrow's ISO 8601 cast (`_with_offsets`), for all rows at once or else file by file (every
    reading below is per value or per file). Anything else goes the general way: a day holds
    only a handful of distinct suffixes (`+00:00`, `Z`, ...), each is parsed once, and every
    value gathers its offset and fraction from that table by the suffix's code.
    """
    fast = _with_offsets(rows)  # Arrow's parse takes no whitespace: the text needs no trim
    if fast is not None:
        return Timestamps(fast, {})
    files = rows.partition_by("file", maintain_order=True) if rows.height else []
    if len(files) > 1:  # file by file: only the files Arrow refuses go the general way
        parts = [with_utc_timestamps(part, day) for part in files]
        new_york = {name: note for part in parts for name, note in part.new_york.items()}
        return Timestamps(pl.concat([part.rows for part in parts], how="vertical"), new_york)
    return _any_style(strip_text(rows, TIMESTAMP_COLUMNS), day)


def _any_style(rows: pl.DataFrame, day: dt.date) -> Timestamps:
    """The general path: every style the module docstring names, value by value."""
    suffixes = rows.select(pl.col(c).str.slice(19).fill_null("") for c in TIMESTAMP_COLUMNS)
    table = _suffix_table(pl.concat(suffixes.get_columns()).unique())
    codes = suffixes.select(pl.all().cast(pl.Enum(table["suffix"])).to_physical())
    parts = rows.with_columns(
        *(_wall_time(c, "%Y-%m-%d %H:%M:%S") for c in TIMESTAMP_COLUMNS),
        *(
            pl.lit(table[name]).gather(codes[c]).alias(f"_{c}_{name}")
            for c in TIMESTAMP_COLUMNS
            for name in ("minutes", "naive", "us")
        ),
    )
    # Only where that left values unread: the `T` separator, then epoch numbers.
    unread = [c for c in TIMESTAMP_COLUMNS if parts.get_column(f"_{c}_wall").null_count() > 0]
    parts = parts.with_columns(
        pl.coalesce(f"_{c}_wall", _wall_time(c, "%Y-%m-%dT%H:%M:%S")) for c in unread
    )
    epoch = [c for c in unread if parts.get_column(f"_{c}_wall").null_count() > 0]
    parts = parts.with_columns(_epoch_micros(c) for c in epoch)
    new_york = new_york_evidence(parts, day)
    exact = parts.with_columns(
        _exact_utc(c, new_york.keys(), has_epoch=c in epoch).alias(f"_{c}")
        for c in TIMESTAMP_COLUMNS
    )
    result = exact.with_columns(
        *(pl.col(f"_{c}").dt.truncate("1s").alias(f"{c}_utc") for c in TIMESTAMP_COLUMNS),
        (pl.col("_eob") - pl.col("_bob")).dt.total_microseconds().alias("bar_us"),
    )
    return Timestamps(result.select(*rows.columns, "bob_utc", "eob_utc", "bar_us"), new_york)


def _with_offsets(rows: pl.DataFrame) -> pl.DataFrame | None:
    """The result of the general path when every `bob`/`eob` is `YYYY-MM-DD[ T]HH:MM:SS[.f]` plus
    `Z` or `±HH[[:]MM]`; None when one value is not (or is blank), so the general path reads it.

    Such values have no naive time to judge, and Arrow's parser agrees with the general one on
    them (`tests/ml/test_ingest_timestamps.py`). Arrow also takes `HH:MM` or `HH` without the
    seconds, which the contract does not: `_has_seconds` turns those away first.
    """
    # Arrow's cast runs on one core: `bob` and `eob` are parsed side by side.
    with ThreadPoolExecutor(max_workers=len(TIMESTAMP_COLUMNS)) as pool:
        columns = [rows.get_column(c) for c in TIMESTAMP_COLUMNS]
        instants = list(pool.map(_iso_instants, columns))
    if any(instant is None for instant in instants):
        return None
    exact = pl.from_arrow(pa.table(dict(zip(("_bob", "_eob"), instants, strict=True))))
    return (
        pl.concat([rows, exact], how="horizontal")
        .lazy()
        .select(
            *rows.columns,
            *(pl.col(f"_{c}").dt.truncate("1s").alias(f"{c}_utc") for c in TIMESTAMP_COLUMNS),
            (pl.col("_eob") - pl.col("_bob")).dt.total_microseconds().alias("bar_us"),
        )
        .collect()
    )


def _iso_instants(column: pl.Series) -> pa.Array | None:
    """Arrow's ISO 8601 parse of a column to UTC instants; None when a value does not take it."""
    text = column.to_arrow()
    if not _has_seconds(text):
        return None
    try:
        return text.cast(pa.timestamp("us", "UTC"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def _has_seconds(text: pa.Array) -> bool:
    """Every non-null value is at least `YYYY-MM-DD?HH:MM:SS?` long with `:` at 13 and 16.

    Read from the Arrow buffers: the offsets give each value's start and length, no copy.
    """
    if text.type != pa.large_string():  # polars hands over large_string already
        text = text.cast(pa.large_string())
    if len(text) == text.null_count:
        return True
    _, offsets, data = text.buffers()
    offsets = np.frombuffer(offsets, np.int64)[text.offset : text.offset + len(text) + 1]
    starts, lengths = offsets[:-1], np.diff(offsets)
    if text.null_count:
        valid = np.asarray(text.is_valid())
        starts, lengths = starts[valid], lengths[valid]
    if lengths.min() < 20:  # 19 characters and an offset of at least `Z`
        return False
    data = np.frombuffer(data, np.uint8)
    if not text.null_count and (lengths == lengths[0]).all():  # the usual export: one width
        chars = data[starts[0] : starts[0] + lengths.sum()].reshape(-1, lengths[0])
        return bool(((chars[:, 13] == ord(":")) & (chars[:, 16] == ord(":"))).all())
    return bool(((data[starts + 13] == ord(":")) & (data[starts + 16] == ord(":"))).all())


def new_york_evidence(parts: pl.DataFrame, day: dt.date) -> dict[str, str]:
    """Files whose naive `bob` values only make sense as New York time, with the evidence.

    Trading jumps at the open: in such a file the rows jump at 09:30 wall time, not at the
    open's UTC wall time (13:30 or 14:30 depending on the clock change). Counting wall times
    in windows needs no conversion. Returns file -> a note for the file's report.
    """
    open_utc, _ = session_bounds(day)
    wall = pl.col("_bob_wall")
    counts = {}
    for name, zone in (("ny", ZoneInfo(NEW_YORK)), ("utc", dt.UTC)):
        opening = open_utc.astimezone(zone).replace(tzinfo=None)
        counts[f"{name}_before"] = wall.is_between(opening - OPEN_WINDOW, opening, closed="left")
        counts[f"{name}_after"] = wall.is_between(opening, opening + OPEN_WINDOW, closed="left")
    jump = {name: pl.col(f"{name}_after") - pl.col(f"{name}_before") for name in ("ny", "utc")}
    evidence = (
        parts.filter(pl.col("_bob_naive") & wall.is_not_null())
        .group_by("file")
        .agg(condition.sum().cast(pl.Int64).alias(name) for name, condition in counts.items())
        .filter((jump["ny"] >= NEW_YORK_MIN_JUMP) & (jump["ny"] > 2 * jump["utc"].abs()))
    )
    return {
        row["file"]: (
            f"timestamps without offset read as {NEW_YORK} time: {row['ny_before']} -> "
            f"{row['ny_after']} rows in the half hours around 09:30 wall time, "
            f"{row['utc_before']} -> {row['utc_after']} around the open's UTC wall time"
        )
        for row in evidence.iter_rows(named=True)
    }


def _suffix_table(suffixes: pl.Series) -> pl.DataFrame:
    """Per distinct suffix: `minutes` east of UTC, `naive` and `us` (fractional second).

    `minutes` is null for a malformed suffix; `naive` means no zone was written (UTC by the
    contract, unless the file reads as New York time).
    """
    parts = suffixes.to_frame("suffix").with_columns(
        pl.col("suffix").str.extract_groups(_SUFFIX).alias("p")
    )
    field = pl.col("p").struct.field
    valid = pl.col("suffix").str.contains(_SUFFIX)
    sign = pl.when(field("3") == "-").then(-1).otherwise(1)
    minutes = sign * (
        field("4").cast(pl.Int64).fill_null(0) * 60 + field("5").cast(pl.Int64).fill_null(0)
    )
    return parts.select(
        "suffix",
        pl.when(valid).then(minutes).alias("minutes"),  # `Z` has no sign or hours: 0
        (valid & field("2").is_null() & field("3").is_null()).alias("naive"),
        field("1").str.pad_end(6, "0").str.slice(0, 6).cast(pl.Int64).fill_null(0).alias("us"),
    )


def _wall_time(column: str, form: str) -> pl.Expr:
    """`_<column>_wall`: the first 19 characters as a naive date-time; null when not `form`."""
    text = pl.col(column).str.slice(0, 19)
    wall = text.str.to_datetime(form, strict=False, time_unit="us")
    return wall.alias(f"_{column}_wall")


def _epoch_micros(column: str) -> pl.Expr:
    """Microseconds since 1970 of an epoch number in any unit; null when it is not one."""
    number = pl.col(column).str.extract(_EPOCH, 1).cast(pl.Int64, strict=False)
    # Each unit is 1000x the previous, so a date in 1973-5138 falls in exactly one band.
    return (
        pl.when(number < 10**11)  # seconds
        .then(number * 1_000_000)
        .when(number < 10**14)  # milliseconds
        .then(number * 1_000)
        .when(number < 10**17)  # microseconds
        .then(number)
        .otherwise(number // 1_000)  # nanoseconds
        .alias(f"_{column}_epoch")
    )


def _exact_utc(column: str, new_york_files: Collection[str], *, has_epoch: bool) -> pl.Expr:
    """The instant to the microsecond, as a UTC datetime."""
    wall = pl.col(f"_{column}_wall")
    fraction = pl.duration(microseconds=pl.col(f"_{column}_us"))
    utc = wall - pl.duration(minutes=pl.col(f"_{column}_minutes"))
    if new_york_files:
        local = (
            wall.dt.replace_time_zone(NEW_YORK, ambiguous="earliest", non_existent="null")
            .dt.convert_time_zone("UTC")
            .dt.replace_time_zone(None)
        )
        in_new_york = pl.col(f"_{column}_naive") & pl.col("file").is_in(list(new_york_files))
        utc = pl.when(in_new_york).then(local).otherwise(utc)
    instant = (utc + fraction).dt.replace_time_zone("UTC").cast(UTC_US)
    if has_epoch:
        epoch = pl.from_epoch(pl.col(f"_{column}_epoch"), time_unit="us")
        instant = pl.coalesce(instant, epoch.dt.replace_time_zone("UTC").cast(UTC_US))
    return instant
