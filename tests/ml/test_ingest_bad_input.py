"""Bad input: each case gets a clear reason naming file and line, and no good row is lost."""

import datetime as dt
import hashlib
from pathlib import Path

import polars as pl
import pytest
from conftest import HEADER, WriteFile, bar_line, utc

from diffstock_ml.ingest import Reason, clean_day, list_raw_days

DAY = "20251103"
GOOD = [bar_line("AMD", utc(DAY, f"14:30:0{s}"), 10.0 + s / 100) for s in range(5)]


def _clean(raw_root: Path, day: str = DAY):
    return clean_day(raw_root / day, dt.datetime.strptime(day, "%Y%m%d").date())


def _traded(result, symbol: str = "AMD") -> int:
    return result.bars.filter((pl.col("symbol") == symbol) & ~pl.col("filled")).height


def _reasons(result) -> list[tuple[str, int | None, str]]:
    return list(result.quarantine.select("file", "line", "reason").iter_rows())


def test_zero_byte_file_is_rejected_and_other_files_kept(
    write_file: WriteFile, raw_root: Path
) -> None:
    write_file(DAY, "AMD.csv", GOOD)
    write_file(DAY, "IBM.csv", b"")
    result = _clean(raw_root)
    assert _reasons(result) == [("IBM.csv", None, Reason.EMPTY_FILE)]
    assert "0 bytes" in result.quarantine["detail"][0]
    assert _traded(result) == 5
    assert result.files.filter(pl.col("file") == "IBM.csv")["status"].item() == "rejected"


def test_header_only_file(write_file: WriteFile, raw_root: Path) -> None:
    write_file(DAY, "AMD.csv", GOOD)
    write_file(DAY, "IBM.csv", [])
    result = _clean(raw_root)
    assert _reasons(result) == [("IBM.csv", None, Reason.HEADER_ONLY)]
    assert result.symbols == ["AMD"]


def test_missing_column_rejects_the_file_naming_the_column(
    write_file: WriteFile, raw_root: Path
) -> None:
    write_file(DAY, "AMD.csv", GOOD)
    write_file(
        DAY,
        "IBM.csv",
        ["IBM,2025-11-03 14:30:00,2025-11-03 14:30:01,1,1,1,1"],
        header="symbol,bob,eob,close,high,low,volume",
    )
    result = _clean(raw_root)
    assert _reasons(result) == [("IBM.csv", None, Reason.MISSING_COLUMNS)]
    assert "amount" in result.quarantine["detail"][0]
    assert _traded(result) == 5


def test_extra_column_is_ignored_and_noted(write_file: WriteFile, raw_root: Path) -> None:
    lines = [line + ",x" for line in GOOD]
    write_file(DAY, "AMD.csv", lines, header=HEADER + ",venue")
    result = _clean(raw_root)
    assert result.quarantine.height == 0
    assert _traded(result) == 5
    assert "venue" in result.files["detail"][0]


def test_unparsable_line_is_quarantined_with_its_text(
    write_file: WriteFile, raw_root: Path
) -> None:
    bad = "AMD,2025-11-03 14:30:09+00:00,oops,1,2,3,4,5,6,7"
    write_file(DAY, "AMD.csv", [*GOOD[:2], bad, *GOOD[2:]])
    result = _clean(raw_root)
    assert _reasons(result) == [("AMD.csv", 4, Reason.UNPARSABLE_LINE)]
    assert result.quarantine["raw"][0] == bad
    assert _traded(result) == 5


def test_garbage_line_with_too_few_fields(write_file: WriteFile, raw_root: Path) -> None:
    write_file(DAY, "AMD.csv", [*GOOD[:2], "this is not a bar", *GOOD[2:]])
    result = _clean(raw_root)
    assert [r[1:] for r in _reasons(result)] == [(4, Reason.MISSING_FIELD)]
    assert _traded(result) == 5


@pytest.mark.parametrize("price", ["nan", "-10.0", "0", "inf"])
def test_nan_negative_or_zero_price(write_file: WriteFile, raw_root: Path, price: str) -> None:
    bad = f"AMD,2025-11-03 14:30:09+00:00,2025-11-03 14:30:10+00:00,{price},10,10,1,10"
    write_file(DAY, "AMD.csv", [*GOOD, bad])
    result = _clean(raw_root)
    assert _reasons(result) == [("AMD.csv", 7, Reason.BAD_PRICE)]
    assert price.lower() in result.quarantine["detail"][0].lower()
    assert _traded(result) == 5


def test_unparsable_number(write_file: WriteFile, raw_root: Path) -> None:
    bad = "AMD,2025-11-03 14:30:09+00:00,2025-11-03 14:30:10+00:00,10.0,10.0,10.0,lots,10"
    write_file(DAY, "AMD.csv", [*GOOD, bad])
    assert _reasons(_clean(raw_root)) == [("AMD.csv", 7, Reason.BAD_NUMBER)]


def test_high_below_low(write_file: WriteFile, raw_root: Path) -> None:
    bad = bar_line("AMD", utc(DAY, "14:30:09"), 10.0, high=9.9, low=10.1)
    write_file(DAY, "AMD.csv", [*GOOD, bad])
    result = _clean(raw_root)
    assert _reasons(result) == [("AMD.csv", 7, Reason.HIGH_BELOW_LOW)]
    assert "high=9.9 < low=10.1" in result.quarantine["detail"][0]


def test_close_outside_high_low(write_file: WriteFile, raw_root: Path) -> None:
    bad = bar_line("AMD", utc(DAY, "14:30:09"), 10.5, high=10.1, low=10.0)
    write_file(DAY, "AMD.csv", [*GOOD, bad])
    assert _reasons(_clean(raw_root)) == [("AMD.csv", 7, Reason.CLOSE_OUTSIDE_RANGE)]


def test_duplicate_second_with_conflicting_values_keeps_the_last_line(
    write_file: WriteFile, raw_root: Path
) -> None:
    first = bar_line("AMD", utc(DAY, "14:30:09"), 10.1)
    second = bar_line("AMD", utc(DAY, "14:30:09"), 10.2)
    write_file(DAY, "AMD.csv", [*GOOD, first, second, first])
    result = _clean(raw_root)
    # lines 7 and 9 are the same bar; 8 conflicts; the last line (9) wins
    assert _reasons(result) == [
        ("AMD.csv", 7, Reason.DUPLICATE_EXACT),
        ("AMD.csv", 8, Reason.DUPLICATE_CONFLICT),
    ]
    assert "line 9" in result.quarantine["detail"][1]
    kept = result.bars.filter(pl.col("ts") == utc(DAY, "14:30:09"))["close"].item()
    assert kept == 10.1


def test_timestamp_that_cannot_be_parsed(write_file: WriteFile, raw_root: Path) -> None:
    bad = "AMD,03/11/2025 14:30:09,03/11/2025 14:30:10,10,10,10,1,10"
    write_file(DAY, "AMD.csv", [*GOOD, bad])
    result = _clean(raw_root)
    assert _reasons(result) == [("AMD.csv", 7, Reason.BAD_TIMESTAMP)]
    assert "03/11/2025" in result.quarantine["detail"][0]


def test_bom_and_crlf(write_file: WriteFile, raw_root: Path) -> None:
    text = "\ufeff" + "\r\n".join([HEADER, *GOOD]) + "\r\n"
    write_file(DAY, "AMD.csv", text.encode())
    result = _clean(raw_root)
    assert result.quarantine.height == 0
    assert _traded(result) == 5


def test_symbol_column_not_matching_the_file_name(write_file: WriteFile, raw_root: Path) -> None:
    write_file(DAY, "AMD.csv", [*GOOD, bar_line("AMDX", utc(DAY, "14:30:09"), 10.0)])
    result = _clean(raw_root)
    assert _reasons(result) == [("AMD.csv", 7, Reason.SYMBOL_MISMATCH)]
    assert result.symbols == ["AMD"]


def test_rows_dated_another_day(write_file: WriteFile, raw_root: Path) -> None:
    write_file(DAY, "AMD.csv", [*GOOD, bar_line("AMD", utc("20251104", "14:30:09"), 10.0)])
    result = _clean(raw_root)
    assert _reasons(result) == [("AMD.csv", 7, Reason.WRONG_DAY)]
    assert _traded(result) == 5


def test_non_csv_files_are_ignored_and_reported(write_file: WriteFile, raw_root: Path) -> None:
    write_file(DAY, "AMD.csv", GOOD)
    (raw_root / DAY / "README.txt").write_text("notes")
    (raw_root / DAY / "AMD.parquet").write_bytes(b"PAR1")
    result = _clean(raw_root)
    assert set(result.ignored) == {"README.txt", "AMD.parquet"}
    assert result.quarantine.height == 0


def test_folder_for_a_day_that_is_not_a_session(write_file: WriteFile, raw_root: Path) -> None:
    write_file("20251127", "AMD.csv", GOOD)  # Thanksgiving
    write_file(DAY, "AMD.csv", GOOD)
    (raw_root / "notes").mkdir()
    days, ignored = list_raw_days(raw_root)
    assert days == [dt.date(2025, 11, 3)]
    assert ignored == ["20251127: not an NYSE session", "notes: not a YYYYMMDD folder name"]
    with pytest.raises(ValueError, match="20251127 is not an NYSE"):
        _clean(raw_root, "20251127")


def test_session_with_no_folder(raw_root: Path) -> None:
    with pytest.raises(FileNotFoundError, match="20251104 does not exist"):
        _clean(raw_root, "20251104")


def test_single_print_a_hundred_times_away_is_flagged_not_used(
    write_file: WriteFile, raw_root: Path
) -> None:
    lines = [bar_line("AMD", utc(DAY, f"14:30:{s:02d}"), 10.0 + s / 100) for s in range(12)]
    lines[6] = bar_line("AMD", utc(DAY, "14:30:06"), 1006.0)
    write_file(DAY, "AMD.csv", lines)
    result = _clean(raw_root)
    assert _reasons(result) == [("AMD.csv", 8, Reason.PRICE_OUTLIER)]
    assert "99.9x the median 10.07" in result.quarantine["detail"][0]
    at = result.bars.filter(pl.col("ts") == utc(DAY, "14:30:06")).row(0, named=True)
    assert at["close"] == 10.05 and at["filled"]


def test_one_broken_file_never_fails_the_others(write_file: WriteFile, raw_root: Path) -> None:
    write_file(DAY, "AMD.csv", GOOD)
    write_file(DAY, "BAD.csv", b"\xff\xfe\x00garbage\x00\n\x01,\x02")
    write_file(DAY, "IBM.csv", [bar_line("IBM", utc(DAY, "14:30:00"), 100.0)])
    result = _clean(raw_root)
    assert result.symbols == ["AMD", "IBM"]
    assert result.files.filter(pl.col("file") == "BAD.csv")["status"].item() == "rejected"


def test_raw_files_are_never_modified(write_file: WriteFile, raw_root: Path) -> None:
    path = write_file(DAY, "AMD.csv", [*GOOD, "garbage"])
    before = hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns
    _clean(raw_root)
    assert (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns) == before
    assert sorted(p.name for p in (raw_root / DAY).iterdir()) == ["AMD.csv"]


def test_every_read_row_is_either_kept_or_quarantined(
    write_file: WriteFile, raw_root: Path
) -> None:
    lines = [*GOOD, "garbage", bar_line("AMD", utc(DAY, "14:30:00"), 10.0)]
    write_file(DAY, "AMD.csv", lines)
    files = _clean(raw_root).files.row(0, named=True)
    assert files["rows_read"] == len(lines)
    assert files["rows_kept"] + files["rows_quarantined"] == files["rows_read"]
