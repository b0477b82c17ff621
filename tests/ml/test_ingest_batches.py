"""`clean_day` checks a large day in batches of files: the outputs do not depend on the batches."""

import datetime as dt
import gzip
from pathlib import Path

import pytest
from conftest import WriteFile, bar_line, utc
from polars.testing import assert_frame_equal

from diffstock_ml.ingest import clean, clean_day

DAY = "20251103"


def _day_with_bad_files(write_file: WriteFile) -> Path:
    """Good rows, bad rows, an outlier, duplicates, a second file of a symbol, broken files."""
    lines = [bar_line("AMD", utc(DAY, f"14:30:{s:02d}"), 10.0 + s / 100) for s in range(12)]
    lines[6] = bar_line("AMD", utc(DAY, "14:30:06"), 1006.0)
    write_file(DAY, "AMD.csv", [*lines, lines[3], "garbage"])
    ibm = [bar_line("IBM", utc(DAY, f"13:{m:02d}:00"), 100.0 + m) for m in range(0, 59, 7)]
    write_file(DAY, "IBM.csv", [*ibm, bar_line("IBM", utc(DAY, "14:30:00"), 99.0)])
    write_file(DAY, "BAD.csv", b"\xff\xfe\x00garbage\x00\n\x01,\x02")
    write_file(DAY, "EMPTY.csv", b"")
    f = [bar_line("F", utc(DAY, f"15:00:0{s}"), 12.0) for s in range(4)]
    path = write_file(DAY, "F.csv", f)
    write_file(DAY, "F.csv.gz", gzip.compress(path.read_bytes()))
    write_file(DAY, "ZED.csv", [bar_line("ZZZ", utc(DAY, "14:31:00"), 5.0)])  # wrong symbol
    return path.parent


def test_one_file_per_batch_gives_the_same_day(
    write_file: WriteFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _day_with_bad_files(write_file)
    day = dt.date(2025, 11, 3)
    whole = clean_day(folder, day)
    assert len(clean._file_batches(sorted(folder.iterdir()))) == 1
    monkeypatch.setattr(clean, "BATCH_BYTES", 1)  # a batch per symbol (an empty file joins)
    batches = [[p.name for p in b] for b in clean._file_batches(sorted(folder.iterdir()))]
    assert len(batches) == 5 and ["EMPTY.csv", "F.csv", "F.csv.gz"] in batches
    batched = clean_day(folder, day)
    assert_frame_equal(batched.bars, whole.bars)
    assert_frame_equal(batched.quarantine, whole.quarantine)
    assert_frame_equal(batched.files, whole.files)
    assert whole.quarantine.height > 0 and whole.files["status"].to_list().count("rejected") == 3


@pytest.mark.parametrize("batch_bytes", [clean.BATCH_BYTES, 1], ids=["one_batch", "a_batch_a_file"])
def test_the_grid_is_sorted_by_symbol_when_file_names_are_not(
    write_file: WriteFile, monkeypatch: pytest.MonkeyPatch, batch_bytes: int
) -> None:
    """`A-B.csv` lists before `A.csv`, but the symbol `A` sorts before `A-B`."""
    for symbol in ("A-B", "A", "B"):
        lines = [bar_line(symbol, utc(DAY, f"14:30:0{s}"), 10.0) for s in range(3)]
        folder = write_file(DAY, f"{symbol}.csv", lines).parent
    monkeypatch.setattr(clean, "BATCH_BYTES", batch_bytes)
    bars = clean_day(folder, dt.date(2025, 11, 3)).bars
    assert bars["symbol"].unique(maintain_order=True).to_list() == ["A", "A-B", "B"]
    assert_frame_equal(bars, bars.sort("symbol", "ts"))
