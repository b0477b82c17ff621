"""Find and read the raw CSV files of a trading day, never failing the day for one bad file.

Each file is read with every column as a string so that a malformed value only condemns its row.
When polars cannot tokenise a file (a line with too many fields, say) the file is re-read as
plain lines and split here, so every other line of that file is still kept.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from diffstock_ml.calendar import DAY_FORMAT, is_session
from diffstock_ml.ingest.schema import NUMBER_COLUMNS, RAW_COLUMNS, RAW_ROWS_SCHEMA, Reason

_LINE_SEPARATOR = "\x1f"  # a byte that never occurs in a bar file: each line becomes one field


@dataclass(frozen=True)
class DayListing:
    """The CSV files of one day folder, and everything else in it that was ignored."""

    folder: Path
    csv_files: tuple[Path, ...]
    ignored: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class RawFile:
    """One file read as text rows, or the reason it could not be used at all."""

    path: Path
    symbol: str
    rows: pl.DataFrame | None  # RAW_ROWS_SCHEMA; None when the file is rejected
    reject_reason: Reason | None = None
    detail: str | None = None


def list_day_folder(folder: Path) -> DayListing:
    """List `*.csv` files of a day folder (sorted); other entries are reported as ignored."""
    if not folder.is_dir():
        raise FileNotFoundError(f"raw day folder {folder} does not exist")
    csv_files, ignored = [], []
    for entry in sorted(folder.iterdir()):
        if entry.is_file() and entry.suffix.lower() == ".csv" and not entry.name.startswith("."):
            csv_files.append(entry)
        else:
            ignored.append(entry.name)
    return DayListing(folder=folder, csv_files=tuple(csv_files), ignored=tuple(ignored))


def list_raw_days(raw_root: Path) -> tuple[list[dt.date], list[str]]:
    """Session days that have a folder under `raw_root`, and the folder names that are not.

    A folder is ignored (second list, with the reason) when its name is not YYYYMMDD or the
    date is not an NYSE session.
    """
    days, ignored = [], []
    for entry in sorted(raw_root.iterdir()) if raw_root.is_dir() else []:
        if not entry.is_dir():
            continue
        try:
            day = dt.datetime.strptime(entry.name, DAY_FORMAT).date()
        except ValueError:
            ignored.append(f"{entry.name}: not a YYYYMMDD folder name")
            continue
        if is_session(day):
            days.append(day)
        else:
            ignored.append(f"{entry.name}: not an NYSE session")
    return days, ignored


def read_raw_file(path: Path) -> RawFile:
    """Read one `SYMBOL.csv` into RAW_ROWS_SCHEMA rows with 1-based line numbers (header = 1).

    Three tiers, each only when the previous cannot read the file: numbers typed by the CSV
    reader (the common, fast case), every field as text (a bad value then only condemns its
    row), and plain lines split here (a line with too many fields only condemns itself).
    """
    if path.stat().st_size == 0:
        return _rejected(path, Reason.EMPTY_FILE, "the file is empty (0 bytes)")
    try:
        frame = _read_typed(path)
    except (pl.exceptions.ComputeError, UnicodeDecodeError):
        frame = None
    if frame is None:
        try:
            frame = pl.read_csv(path, infer_schema=False, row_index_name="_index")
        except pl.exceptions.NoDataError:
            return _rejected(path, Reason.EMPTY_FILE, "the file has no header and no rows")
        except (pl.exceptions.ComputeError, UnicodeDecodeError):
            return _read_as_lines(path)
    header = [_column_name(name) for name in frame.columns[1:]]
    frame.columns = ["_index", *header]
    missing = [c for c in RAW_COLUMNS if c not in header]
    if missing:
        return _rejected(
            path, Reason.MISSING_COLUMNS, f"missing column(s) {missing}; header is {header}"
        )
    if frame.height == 0:
        return _rejected(path, Reason.HEADER_ONLY, "the file has a header but no rows")
    rows = frame.select(
        pl.lit(path.name).alias("file"),
        (pl.col("_index").cast(pl.Int64) + 2).alias("line"),
        *(_text(frame, c) for c in RAW_COLUMNS),
        pl.lit(None, pl.String).alias("raw"),
        *(_number(frame, c) for c in NUMBER_COLUMNS),
    )
    return RawFile(path=path, symbol=path.stem, rows=rows, detail=_extra_columns_note(header))


def _read_typed(path: Path) -> pl.DataFrame | None:
    """The fast tier: numbers parsed by the reader; None when the header is not the plain one."""
    with path.open("rb") as handle:
        first_line = handle.readline().decode("utf-8-sig", errors="replace").strip()
    if [_column_name(c) for c in first_line.split(",")][: len(RAW_COLUMNS)] != list(RAW_COLUMNS):
        return None
    overrides = {
        **dict.fromkeys(RAW_COLUMNS[:3], pl.String),
        **dict.fromkeys(NUMBER_COLUMNS, pl.Float64),
    }
    return pl.read_csv(path, schema_overrides=overrides, row_index_name="_index")


def _column_name(name: str) -> str:
    return name.strip().lstrip("\ufeff").lower()


def _text(frame: pl.DataFrame, column: str) -> pl.Expr:
    if frame.schema[column] == pl.String:
        return pl.col(column).str.strip_chars()
    return pl.lit(None, pl.String).alias(column)  # typed by the reader: see `<column>_num`


def _number(frame: pl.DataFrame, column: str) -> pl.Expr:
    name = f"{column}_num"
    if frame.schema[column] == pl.Float64:
        return pl.col(column).alias(name)
    return pl.lit(None, pl.Float64).alias(name)  # parsed from the text later


def _read_as_lines(path: Path) -> RawFile:
    """Fallback for files polars cannot tokenise: split each line here, keep what parses."""
    lines = pl.read_csv(
        path,
        has_header=False,
        separator=_LINE_SEPARATOR,
        quote_char=None,
        schema={"raw": pl.String},
        encoding="utf8-lossy",
        row_index_name="_index",
    ).with_columns(pl.col("raw").str.strip_chars_end("\r"))
    header = [_column_name(name) for name in (lines["raw"][0] or "").split(",")]
    missing = [c for c in RAW_COLUMNS if c not in header]
    if missing:
        return _rejected(
            path, Reason.MISSING_COLUMNS, f"missing column(s) {missing}; header is {header}"
        )
    body = lines.slice(1)
    if body.height == 0:
        return _rejected(path, Reason.HEADER_ONLY, "the file has a header but no rows")
    fields = pl.col("raw").str.split(",")
    rows = body.select(
        pl.lit(path.name).alias("file"),
        (pl.col("_index").cast(pl.Int64) + 1).alias("line"),
        *[
            # A line with the wrong number of fields keeps all-null fields: quarantined below.
            pl.when(fields.list.len() == len(header))
            .then(fields.list.get(header.index(c), null_on_oob=True).str.strip_chars())
            .alias(c)
            for c in RAW_COLUMNS
        ],
        pl.col("raw"),
        *(pl.lit(None, pl.Float64).alias(f"{c}_num") for c in NUMBER_COLUMNS),
    )
    return RawFile(path=path, symbol=path.stem, rows=rows, detail=_extra_columns_note(header))


def _extra_columns_note(header: list[str]) -> str | None:
    extra = [c for c in header if c not in RAW_COLUMNS]
    return f"extra column(s) ignored: {extra}" if extra else None


def _rejected(path: Path, reason: Reason, detail: str) -> RawFile:
    return RawFile(path=path, symbol=path.stem, rows=None, reject_reason=reason, detail=detail)


def empty_raw_rows() -> pl.DataFrame:
    return pl.DataFrame(schema=RAW_ROWS_SCHEMA)
