"""Column contracts of the raw input and of the cleaned outputs, and the quarantine reasons."""

from __future__ import annotations

from enum import StrEnum

import polars as pl

RAW_COLUMNS: tuple[str, ...] = ("symbol", "bob", "eob", "close", "high", "low", "volume", "amount")
PRICE_COLUMNS: tuple[str, ...] = ("close", "high", "low")
NUMBER_COLUMNS: tuple[str, ...] = (*PRICE_COLUMNS, "volume", "amount")

UTC_US = pl.Datetime("us", "UTC")

# Raw rows as read, plus where they came from. Each number is either already typed by the CSV
# reader (`<column>_num`, text null) or still text (to be parsed, `<column>_num` null); `raw`
# holds the original line where the reader had to split lines itself.
RAW_ROWS_SCHEMA = pl.Schema(
    {
        "file": pl.String,
        "line": pl.Int64,
        **dict.fromkeys(RAW_COLUMNS, pl.String),
        "raw": pl.String,
        **{f"{c}_num": pl.Float64 for c in NUMBER_COLUMNS},
    }
)

BARS_SCHEMA = pl.Schema(
    {
        "symbol": pl.String,
        "ts": UTC_US,  # bar begin second, UTC
        "close": pl.Float64,  # last trade price, forward-filled over seconds without a trade
        "high": pl.Float64,
        "low": pl.Float64,
        "volume": pl.Float64,
        "amount": pl.Float64,
        "filled": pl.Boolean,  # no trade in this second: values carried from the last trade
        "stale": pl.Boolean,  # last trade older than `stale_after_s` (or none yet today)
    }
)

QUARANTINE_SCHEMA = pl.Schema(
    {
        "file": pl.String,
        "line": pl.Int64,  # 1-based line in the file (the header is line 1); null: whole file
        "symbol": pl.String,  # the symbol the file name says
        "reason": pl.String,
        "detail": pl.String,
        "raw": pl.String,  # the offending line, fields joined by commas
    }
)

FILES_SCHEMA = pl.Schema(
    {
        "file": pl.String,
        "symbol": pl.String,
        "status": pl.String,  # "ok" or "rejected"
        "reason": pl.String,  # why the file was rejected; null when ok
        "detail": pl.String,  # human-readable detail (also notes such as extra columns)
        "rows_read": pl.Int64,
        "rows_kept": pl.Int64,
        "rows_quarantined": pl.Int64,
        "rows_out_of_order": pl.Int64,
    }
)


class Reason(StrEnum):
    """Why a row or a file was quarantined. Row reasons are checked in this order."""

    # whole files
    EMPTY_FILE = "empty_file"
    HEADER_ONLY = "header_only"
    MISSING_COLUMNS = "missing_columns"
    UNREADABLE = "unreadable"  # the reader failed (a corrupt gzip, say): the error is the detail
    DUPLICATE_FILE = "duplicate_file"  # a second file for a symbol (`F.csv` and `F.csv.gz`)
    WRONG_BAR_LENGTH = "wrong_bar_length"  # no bar of the file spans 1 s (a 60 s export)
    PROCESSING_ERROR = "processing_error"  # checking its rows raised: the error is the detail
    # rows
    UNPARSABLE_LINE = "unparsable_line"
    BAD_ENCODING = "bad_encoding"  # a byte that is not UTF-8 (Windows-1252, say) in a used field
    MISSING_FIELD = "missing_field"
    BAD_TIMESTAMP = "bad_timestamp"
    BAD_NUMBER = "bad_number"
    BAD_PRICE = "bad_price"
    HIGH_BELOW_LOW = "high_below_low"
    CLOSE_OUTSIDE_RANGE = "close_outside_range"
    BAD_VOLUME = "bad_volume"
    EOB_BEFORE_BOB = "eob_before_bob"
    NOT_ONE_SECOND_BAR = "not_one_second_bar"  # eob - bob is not in (0, 1 s]
    SYMBOL_MISMATCH = "symbol_mismatch"
    WRONG_DAY = "wrong_day"
    DUPLICATE_EXACT = "duplicate_exact"
    DUPLICATE_CONFLICT = "duplicate_conflict"
    PRICE_OUTLIER = "price_outlier"
