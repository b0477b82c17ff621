"""Find and read the raw CSV files of a trading day, never failing the day for one bad file.

A bar file is `SYMBOL.csv` or `SYMBOL.csv.gz` (any case). Each file is read with every column as
a string so that a malformed value only condemns its row; bytes that are not UTF-8 are decoded
as U+FFFD, which condemns only the row they sit in (`bad_encoding`). When polars cannot tokenise
a file (a line with too many fields, say) the file is re-read as plain lines and split here, so
every other line of that file is still kept.
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import re
import zlib
from collections.abc import Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from diffstock_ml.calendar import DAY_FORMAT, is_session
from diffstock_ml.ingest.schema import NUMBER_COLUMNS, RAW_COLUMNS, RAW_ROWS_SCHEMA, Reason

_LINE_SEPARATOR = "\x1f"  # a byte that never occurs in a bar file: each line becomes one field
BAR_FILE_SUFFIX = r"(?i)\.csv(?:\.gz)?$"
# What one file may raise without failing the day. A polars (Rust) panic derives from
# BaseException, so it is named here; KeyboardInterrupt and SystemExit still stop the run.
FILE_ERRORS: tuple[type[BaseException], ...] = (Exception, pl.exceptions.PanicException)
READ_THREADS = 4  # files read at once (`read_day_files`)


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
    # RAW_ROWS_SCHEMA, text as written (`strip_text` trims a whole batch's at once: one pass
    # over 500k rows costs what 18 per-file passes cost in overhead alone); None when the
    # file could not be read
    rows: pl.DataFrame | None
    reject_reason: Reason | None = None  # also set for a file rejected after its rows were read
    detail: str | None = None
    # Read with bytes that are not UTF-8 decoded as U+FFFD (the text tiers); a file the typed
    # tier read is valid UTF-8, so its rows need no check for them
    lossy: bool = False


def symbol_of(name: str) -> str:
    """`AMD.csv`, `AMD.CSV` or `AMD.csv.gz` -> `AMD`."""
    return re.sub(BAR_FILE_SUFFIX, "", name)


def list_day_folder(folder: Path) -> DayListing:
    """List the bar files of a day folder (sorted); other entries are reported as ignored."""
    if not folder.is_dir():
        raise FileNotFoundError(f"raw day folder {folder} does not exist")
    csv_files, ignored = [], []
    for entry in sorted(folder.iterdir()):
        name = entry.name
        if entry.is_file() and re.search(BAR_FILE_SUFFIX, name) and not name.startswith("."):
            csv_files.append(entry)
        else:
            ignored.append(name)
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


def read_day_files(paths: Sequence[Path]) -> list[RawFile]:
    """Read every bar file of a day, in `paths` order; whatever one file raises only rejects
    that file.

    Only the first file of a symbol in name order is read (`F.csv` before `F.csv.gz`); a
    second one is rejected as `duplicate_file`, as its rows would be the same seconds again.
    Files are read READ_THREADS at a time: polars keeps about 1.4 cores busy reading one file
    of a day, and several at once fill the machine (0.69 -> 0.47 s a day on 2 cores).
    """
    first: dict[str, str] = {}
    with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
        pending = []
        for path in paths:
            symbol = symbol_of(path.name)
            if symbol in first:
                detail = f"{first[symbol]} already holds {symbol}: only the first file is read"
                pending.append(rejected_file(path, Reason.DUPLICATE_FILE, detail))
            else:
                first[symbol] = path.name
                pending.append(pool.submit(_read_or_reject, path))
        return [p if isinstance(p, RawFile) else p.result() for p in pending]


def _read_or_reject(path: Path) -> RawFile:
    try:
        return read_raw_file(path)
    except FILE_ERRORS as error:
        return rejected_file(path, Reason.UNREADABLE, describe_error(error))


def describe_error(error: BaseException) -> str:
    """`Type: message` on one line, for a file's `detail`."""
    message = " ".join(str(error).split())
    return f"{type(error).__name__}: {message}"[:500]


def read_raw_file(path: Path) -> RawFile:
    """Read one bar file into RAW_ROWS_SCHEMA rows with 1-based line numbers (header = 1).

    Three tiers, each only when the previous cannot read the file: numbers typed by the CSV
    reader (the common, fast case), every field as text (a bad value then only condemns its
    row), and plain lines split here (a line with too many fields only condemns itself).
    Header names match whatever their case, surrounding spaces or byte-order mark.
    """
    try:
        source = _source(path)
    except (OSError, EOFError, zlib.error) as error:
        detail = f"cannot decompress: {describe_error(error)}"
        return rejected_file(path, Reason.UNREADABLE, detail)
    if (path.stat().st_size if isinstance(source, Path) else len(source)) == 0:
        return rejected_file(path, Reason.EMPTY_FILE, "the file is empty (0 bytes)")
    try:
        frame = _read_typed(source)
    except FILE_ERRORS:
        frame = None  # the next tier reads every field as text
    lossy = frame is None
    if lossy:
        try:
            frame = pl.read_csv(
                source, infer_schema=False, encoding="utf8-lossy", row_index_name="_index"
            )
        except pl.exceptions.NoDataError:
            return rejected_file(path, Reason.EMPTY_FILE, "the file has no header and no rows")
        except FILE_ERRORS:
            return _read_as_lines(path, source)
    header = [_column_name(name) for name in frame.columns[1:]]
    frame.columns = ["_index", *header]
    missing = [c for c in RAW_COLUMNS if c not in header]
    if missing:
        detail = f"missing column(s) {missing}; header is {header}"
        return rejected_file(path, Reason.MISSING_COLUMNS, detail)
    if frame.height == 0:
        return rejected_file(path, Reason.HEADER_ONLY, "the file has a header but no rows")
    rows = frame.select(
        pl.lit(path.name).alias("file"),
        (pl.col("_index").cast(pl.Int64) + 2).alias("line"),
        *(_text(frame, c) for c in RAW_COLUMNS),
        pl.lit(None, pl.String).alias("raw"),
        *(_number(frame, c) for c in NUMBER_COLUMNS),
    )
    detail = _extra_columns_note(header)
    return RawFile(path, symbol_of(path.name), rows, detail=detail, lossy=lossy)


def _source(path: Path) -> Path | bytes:
    """The file itself, or its decompressed bytes for `.gz` (a day file fits in memory)."""
    if path.name.lower().endswith(".gz"):
        return gzip.decompress(path.read_bytes())
    return path


def _read_typed(source: Path | bytes) -> pl.DataFrame | None:
    """The fast tier: numbers parsed by the reader; None when the header is not the plain one."""
    if isinstance(source, Path):
        with source.open("rb") as handle:
            first_line = handle.readline()
    else:
        first_line = io.BytesIO(source).readline()
    header = [_column_name(c) for c in first_line.decode("utf-8-sig", "replace").split(",")]
    if header[: len(RAW_COLUMNS)] != list(RAW_COLUMNS):
        return None
    overrides = {
        **dict.fromkeys(RAW_COLUMNS[:3], pl.String),
        **dict.fromkeys(NUMBER_COLUMNS, pl.Float64),
    }
    return pl.read_csv(
        source, new_columns=header, schema_overrides=overrides, row_index_name="_index"
    )


def _column_name(name: str) -> str:
    return name.strip().lstrip("\ufeff").lower()


def _text(frame: pl.DataFrame, column: str) -> pl.Expr:
    if frame.schema[column] == pl.String:  # as written: a batch's rows are stripped at once
        return pl.col(column)
    return pl.lit(None, pl.String).alias(column)  # typed by the reader: see `<column>_num`


def _number(frame: pl.DataFrame, column: str) -> pl.Expr:
    name = f"{column}_num"
    if frame.schema[column] == pl.Float64:
        return pl.col(column).alias(name)
    return pl.lit(None, pl.Float64).alias(name)  # parsed from the text later


def _read_as_lines(path: Path, source: Path | bytes) -> RawFile:
    """Fallback for files polars cannot tokenise: split each line here, keep what parses."""
    lines = pl.read_csv(
        source,
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
        detail = f"missing column(s) {missing}; header is {header}"
        return rejected_file(path, Reason.MISSING_COLUMNS, detail)
    body = lines.slice(1)
    if body.height == 0:
        return rejected_file(path, Reason.HEADER_ONLY, "the file has a header but no rows")
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
    detail = _extra_columns_note(header)
    return RawFile(path, symbol_of(path.name), rows, detail=detail, lossy=True)


def _extra_columns_note(header: list[str]) -> str | None:
    extra = [c for c in header if c not in RAW_COLUMNS]
    return f"extra column(s) ignored: {extra}" if extra else None


def strip_text(rows: pl.DataFrame, columns: Collection[str] = RAW_COLUMNS) -> pl.DataFrame:
    """The rows with surrounding whitespace trimmed from the text fields `columns` (numbers
    the reader typed have none: their text is null)."""
    return rows.lazy().with_columns(pl.col(c).str.strip_chars() for c in columns).collect()


def rejected_file(path: Path, reason: Reason, detail: str) -> RawFile:
    """A file none of whose rows is read, with the reason."""
    return RawFile(
        path=path, symbol=symbol_of(path.name), rows=None, reject_reason=reason, detail=detail
    )


def empty_raw_rows() -> pl.DataFrame:
    return pl.DataFrame(schema=RAW_ROWS_SCHEMA)
