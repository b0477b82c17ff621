"""`clean_day`: one raw day folder -> cleaned session grid, quarantine and a per-file report."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import polars as pl

from diffstock_ml.calendar import day_key, session_bounds
from diffstock_ml.config import IngestConfig
from diffstock_ml.ingest.grid import build_grid, empty_bars
from diffstock_ml.ingest.read import (
    BAR_FILE_SUFFIX,
    FILE_ERRORS,
    RawFile,
    describe_error,
    empty_raw_rows,
    list_day_folder,
    read_day_files,
    rejected_file,
    strip_text,
    symbol_of,
)
from diffstock_ml.ingest.schema import FILES_SCHEMA, QUARANTINE_SCHEMA, RAW_COLUMNS, Reason
from diffstock_ml.ingest.timestamps import TIMESTAMP_COLUMNS, with_utc_timestamps
from diffstock_ml.ingest.validate import (
    assign_reasons,
    describe_reasons,
    mark_duplicates,
    mark_outliers,
    parse_fields,
    wrong_bar_lengths,
)

FILE_ID = pl.Int32  # `file_id`: the position of a row's file among the files checked together
# Raw CSV bytes read and checked at once (a full synthetic day of 54 symbols is ~200 MB).
BATCH_BYTES = 32 * 2**20
# Text fields trimmed for the whole batch; `with_utc_timestamps` trims `bob`/`eob` when needed.
TEXT_NOT_TIMESTAMPS = tuple(c for c in RAW_COLUMNS if c not in TIMESTAMP_COLUMNS)


@dataclass(frozen=True)
class CleanDay:
    """Everything `clean_day` produced for one session."""

    day: dt.date
    bars: pl.DataFrame  # BARS_SCHEMA, sorted by symbol, ts
    quarantine: pl.DataFrame  # QUARANTINE_SCHEMA: rejected rows and rejected files
    files: pl.DataFrame  # FILES_SCHEMA: one row per CSV file
    ignored: tuple[str, ...]  # folder entries that are not CSV files

    @property
    def symbols(self) -> list[str]:
        return self.bars.get_column("symbol").unique().sort().to_list()

    def quarantine_counts(self) -> dict[str, int]:
        """Quarantined rows (and rejected files) per reason."""
        counts = self.quarantine.group_by("reason").len().sort("reason")
        return dict(zip(counts["reason"], counts["len"], strict=True))


class _Checked(NamedTuple):
    """What checking some files produced."""

    bars: pl.DataFrame  # BARS_SCHEMA: the session grid of the files' symbols
    quarantine: pl.DataFrame  # QUARANTINE_SCHEMA
    files: pl.DataFrame  # FILES_SCHEMA


def clean_day(folder: Path, day: dt.date, config: IngestConfig | None = None) -> CleanDay:
    """Clean every bar file (`SYMBOL.csv`, `SYMBOL.csv.gz`) in `folder`, the folder of `day`.

    Raises ValueError when `day` is not a session and FileNotFoundError when the folder is
    missing. Bad rows and bad files never raise: they land in `quarantine` with a reason, and
    whatever one file raises (a polars panic included) only rejects that file.
    """
    config = config or IngestConfig()
    session_bounds(day)  # raises when `day` is not a session
    listing = list_day_folder(folder)
    parts = list(_checked_batches(_file_batches(listing.csv_files), day, config))
    checked = _concat(parts) if parts else _check_files([], day, config)
    listed = {path.name: i for i, path in enumerate(listing.csv_files)}
    return CleanDay(
        day=day,
        bars=checked.bars,
        quarantine=checked.quarantine.sort("file", "line", nulls_last=False),
        files=checked.files.sort(pl.col("file").replace_strict(listed, return_dtype=pl.Int64)),
        ignored=listing.ignored,
    )


def _file_batches(paths: Sequence[Path]) -> list[list[Path]]:
    """The files in batches of about BATCH_BYTES, every file of a symbol in the same batch.

    Every check is per file and the grid is per symbol, so batches give the same rows as the
    whole day at once; only two batches' raw text is held at a time, which bounds the memory of
    a large day.
    """
    by_symbol: dict[str, list[Path]] = {}
    for path in paths:
        by_symbol.setdefault(symbol_of(path.name), []).append(path)
    batches, size = [[]], 0
    for files in by_symbol.values():
        if size >= BATCH_BYTES:
            batches, size = [*batches, []], 0
        batches[-1].extend(files)
        size += sum(_size(path) for path in files)
    return [batch for batch in batches if batch]


def _size(path: Path) -> int:
    """Bytes of a file; 0 when it cannot be read (its reader rejects it with the reason)."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _checked_batches(
    batches: list[list[Path]], day: dt.date, config: IngestConfig
) -> Iterator[_Checked]:
    """Each batch read and checked; the next batch is read while one is checked (the checks
    leave cores idle), so at most two batches' raw text is held at a time."""
    with ThreadPoolExecutor(max_workers=1) as reader:
        upcoming = [reader.submit(read_day_files, paths) for paths in batches[:1]]
        for i in range(len(batches)):
            raw_files = upcoming.pop().result()
            if i + 1 < len(batches):
                upcoming.append(reader.submit(read_day_files, batches[i + 1]))
            yield _check_batch(raw_files, day, config)


def _check_batch(raw_files: list[RawFile], day: dt.date, config: IngestConfig) -> _Checked:
    """Check the files of a batch; whatever one file raises only rejects that file."""
    try:
        return _check_files(raw_files, day, config)
    except FILE_ERRORS:
        return _check_one_by_one(raw_files, day, config)


def _check_files(raw_files: list[RawFile], day: dt.date, config: IngestConfig) -> _Checked:
    """Check the rows of all `raw_files` in one pass (the fast path: a whole batch at once)."""
    good, quarantine, files = validate_files(raw_files, day, config)
    bars = build_grid(good.lazy(), *session_bounds(day), config.stale_after_s).collect()
    return _Checked(bars, quarantine, files)


class Validated(NamedTuple):
    """What checking the rows of some files produced."""

    good: pl.DataFrame  # symbol, ts, close, high, low, volume, amount: rows for the grid
    quarantine: pl.DataFrame  # QUARANTINE_SCHEMA: rejected rows and rejected files
    files: pl.DataFrame  # FILES_SCHEMA


def validate_files(raw_files: list[RawFile], day: dt.date, config: IngestConfig) -> Validated:
    """Every row of `raw_files` checked: the good rows, the quarantine and the files' report."""
    timestamps = with_utc_timestamps(_concat_rows(raw_files), day)
    lossy = any(f.lossy for f in raw_files)
    checked = _checked_rows(timestamps.rows, day, config, lossy=lossy)
    raw_files = _with_verdicts(raw_files, timestamps.new_york, wrong_bar_lengths(checked))
    good = (
        checked.lazy()
        .filter(pl.col("reason").is_null())
        .select(
            pl.col("symbol"),
            pl.col("bob_utc").alias("ts"),
            pl.col("close_tick").alias("close"),
            pl.col("high_tick").alias("high"),
            pl.col("low_tick").alias("low"),
            pl.col("volume_num").alias("volume"),
            pl.col("amount_num").alias("amount"),
        )
        .collect()
    )
    quarantine = pl.concat(
        [_row_quarantine(checked, day), _file_quarantine(raw_files)], how="vertical"
    )
    return Validated(good, quarantine, _file_report(raw_files, checked))


def _concat_rows(raw_files: list[RawFile]) -> pl.DataFrame:
    """The rows of every file that was read, file after file (RAW_ROWS_SCHEMA), and `file_id`:
    0 for the first file's rows, 1 for the next, ... (a cheap key for the checks by file)."""
    texts = [f.rows for f in _read_files(raw_files)]
    if not texts:
        return empty_raw_rows().with_columns(pl.lit(None, FILE_ID).alias("file_id"))
    runs = np.repeat(np.arange(len(texts)), [t.height for t in texts])
    rows = pl.concat(texts, how="vertical").hstack([pl.Series("file_id", runs, FILE_ID)])
    # `bob`/`eob` are trimmed by `with_utc_timestamps`, and only when Arrow's strict parse
    # refused them: it takes no whitespace, so on the usual export there is none to trim
    return strip_text(rows, TEXT_NOT_TIMESTAMPS)


def _read_files(raw_files: list[RawFile]) -> list[RawFile]:
    """The files whose rows were read, in `file_id` order."""
    return [f for f in raw_files if f.rows is not None]


def _check_one_by_one(raw_files: list[RawFile], day: dt.date, config: IngestConfig) -> _Checked:
    """The day-wide pass raised: check each file alone; a file that still raises is rejected."""
    parts = []
    for raw in raw_files:
        try:
            parts.append(_check_files([raw], day, config))
        except FILE_ERRORS as error:
            failed = rejected_file(raw.path, Reason.PROCESSING_ERROR, describe_error(error))
            parts.append(_check_files([failed], day, config))
    if not parts:
        return _check_files([], day, config)
    return _concat(parts)


def _by_symbol(grids: list[pl.DataFrame]) -> pl.DataFrame:
    """The grids of all batches, each sorted by (symbol, ts), as one grid sorted so.

    Each batch holds its own symbols, and batches follow the files' names, which sort as their
    symbols but for rare names (`A-B.csv` before `A.csv`): only then is the whole grid sorted.
    """
    grids = [grid for grid in grids if grid.height]
    if not grids:
        return empty_bars()
    ends = [(grid.item(0, "symbol"), grid.item(-1, "symbol")) for grid in grids]
    if all(last < first for (_, last), (first, _) in itertools.pairwise(ends)):
        return pl.concat(grids, how="vertical")
    return pl.concat(grids, how="vertical").sort("symbol", "ts", maintain_order=True)


def _concat(parts: list[_Checked]) -> _Checked:
    bars, quarantine, files = zip(*parts, strict=True)
    quarantine, files = (pl.concat(frames, how="vertical") for frames in (quarantine, files))
    return _Checked(_by_symbol(list(bars)), quarantine, files)


def _with_verdicts(
    raw_files: list[RawFile], new_york: dict[str, str], wrong_lengths: dict[str, str]
) -> list[RawFile]:
    """The files as read, plus what their rows told: a note, or a rejection of the whole file."""
    updated = []
    for raw in raw_files:
        name = raw.path.name
        if name in wrong_lengths:
            detail = _join(raw.detail, wrong_lengths[name])
            raw = dataclasses.replace(raw, reject_reason=Reason.WRONG_BAR_LENGTH, detail=detail)
        if name in new_york:
            raw = dataclasses.replace(raw, detail=_join(raw.detail, new_york[name]))
        updated.append(raw)
    return updated


def _join(*notes: str | None) -> str | None:
    return "; ".join(n for n in notes if n) or None


def _file_symbol() -> pl.Expr:
    return pl.col("file").str.replace(BAR_FILE_SUFFIX, "")


def _checked_rows(
    rows: pl.DataFrame, day: dt.date, config: IngestConfig, *, lossy: bool
) -> pl.DataFrame:
    """Every row with its `reason` (null when good) and `out_of_order` (its second is before
    the previous line's), good rows sorted by (file, second, line)."""
    # Each file's rows take their symbol from a table of the files (by `file_id`), which is
    # much cheaper than a regular expression on every row.
    names = rows.lazy().select(pl.col("file").filter(pl.col("file_id").is_first_distinct()))
    names = names.collect()
    run_symbols = pl.Series([symbol_of(name) for name in names.to_series()], dtype=pl.String)
    file_symbol = pl.lit(run_symbols).gather(pl.col("file_id"))
    same_file = pl.col("file_id") == pl.col("file_id").shift(1)
    out_of_order = same_file & (pl.col("bob_utc").diff() < 0)
    parsed = (
        rows.lazy()
        .pipe(parse_fields, config.tick)
        .pipe(assign_reasons, file_symbol, day, lossy=lossy)
        .with_columns(
            out_of_order.fill_null(False).alias("out_of_order"),
            pl.lit(None, pl.Int64).alias("kept_line"),  # set by `mark_duplicates`
            pl.lit(None, pl.Float64).alias("neighbour_median"),  # set by `mark_outliers`
        )
    )
    checked = parsed.collect()
    if checked.get_column("reason").null_count() == checked.height:  # the usual day: no copy
        valid, invalid = checked, checked.clear()
        unsorted = valid.get_column("out_of_order").any()
    else:
        valid = checked.lazy().filter(pl.col("reason").is_null()).collect()
        invalid = checked.lazy().filter(pl.col("reason").is_not_null()).collect()
        unsorted = valid.lazy().select(out_of_order.any()).collect().item()
    del checked  # only `valid` and `invalid` from here: one copy of the rows at a time
    if unsorted:
        valid = valid.sort("file_id", "bob_utc", "line")
    valid = mark_outliers(mark_duplicates(valid), config.outlier_factor, config.outlier_neighbours)
    return pl.concat([valid, invalid], how="vertical")


def _row_quarantine(checked: pl.DataFrame, day: dt.date) -> pl.DataFrame:
    # Filtered eagerly into one chunk: polars' streaming `pl.format` panics ("assertion failed:
    # i < self.len()") on a lazily filtered frame whose first chunks keep no row, which is what
    # a day of several files with bad rows in a later file used to be.
    if checked.get_column("reason").null_count() == checked.height:  # no details to build
        return pl.DataFrame(schema=QUARANTINE_SCHEMA)
    bad = checked.lazy().filter(pl.col("reason").is_not_null()).collect().rechunk()
    return (
        bad.lazy()
        .pipe(describe_reasons, _file_symbol(), day)
        .select(
            "file",
            "line",
            _file_symbol().alias("symbol"),
            "reason",
            "detail",
            pl.coalesce(
                "raw", pl.concat_str([pl.col(c).fill_null("") for c in RAW_COLUMNS], separator=",")
            ).alias("raw"),
        )
        .collect()
    )


def _file_quarantine(raw_files: list[RawFile]) -> pl.DataFrame:
    rejected = [f for f in raw_files if f.reject_reason is not None]
    return pl.DataFrame(
        {
            "file": [f.path.name for f in rejected],
            "line": [None] * len(rejected),
            "symbol": [f.symbol for f in rejected],
            "reason": [str(f.reject_reason) for f in rejected],
            "detail": [f.detail for f in rejected],
            "raw": [None] * len(rejected),
        },
        schema=QUARANTINE_SCHEMA,
    )


def _file_report(raw_files: list[RawFile], checked: pl.DataFrame) -> pl.DataFrame:
    """FILES_SCHEMA rows: each file's status and counts. Only the few quarantined or
    out-of-order rows are grouped, by `file_id` (the name column is a constant per file that
    costs a string per row once materialised); the rows read are the files' own counts."""
    read = [f.path.name for f in _read_files(raw_files)]
    flags = checked.lazy().select("file_id", "reason", "out_of_order")
    quarantined, out_of_order = (
        flags.filter(condition)
        .group_by("file_id")
        .len()
        .select(
            pl.col("file_id")
            .replace_strict(range(len(read)), read, return_dtype=pl.String)
            .alias("file"),
            "len",
        )
        .collect()
        for condition in (pl.col("reason").is_not_null(), pl.col("out_of_order"))
    )
    listing = pl.DataFrame(
        {
            "file": [f.path.name for f in raw_files],
            "symbol": [f.symbol for f in raw_files],
            "status": ["rejected" if f.reject_reason else "ok" for f in raw_files],
            "reason": [str(f.reject_reason) if f.reject_reason else None for f in raw_files],
            "detail": [f.detail for f in raw_files],
            "rows_read": [0 if f.rows is None else f.rows.height for f in raw_files],
        },
        schema={k: FILES_SCHEMA[k] for k in list(FILES_SCHEMA)[:6]},  # file ... rows_read
    )
    counts = pl.col("rows_quarantined", "rows_out_of_order").fill_null(0).cast(pl.Int64)
    return (
        listing.join(quarantined.rename({"len": "rows_quarantined"}), on="file", how="left")
        .join(out_of_order.rename({"len": "rows_out_of_order"}), on="file", how="left")
        .with_columns(counts)
        .with_columns((pl.col("rows_read") - pl.col("rows_quarantined")).alias("rows_kept"))
        .select(list(FILES_SCHEMA))
    )


def describe(result: CleanDay) -> str:
    """One line for logs: how the day went."""
    rejected = result.files.filter(pl.col("status") == "rejected").height
    return (
        f"{day_key(result.day)}: {len(result.symbols)} symbols, {result.bars.height} grid rows, "
        f"{result.quarantine.height} quarantined, {rejected} file(s) rejected"
    )


__all__ = ["CleanDay", "clean_day", "describe"]
