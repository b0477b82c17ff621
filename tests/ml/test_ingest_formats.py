"""Real export formats: each hostile file beside two good ones is read or rejected with a reason.

Every test also checks that both good files are kept whole and that `rows_read = rows_kept +
rows_quarantined` for every file; nothing may raise.
"""

import datetime as dt
import gzip
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from conftest import HEADER, WriteFile, bar_line

import diffstock_ml.ingest.clean as clean_module
import diffstock_ml.ingest.read as read_module
from diffstock_ml.calendar import session_bounds
from diffstock_ml.ingest import CleanDay, Reason, clean_day

DAY = "20251103"  # the Monday after the clock change: New York is UTC-5
BEFORE_CHANGE = "20251031"  # the Friday before it: New York is UTC-4
NEW_YORK = ZoneInfo("America/New_York")
NAIVE = "{:%Y-%m-%d %H:%M:%S}"
Clean = Callable[..., CleanDay]


def _date(day: str) -> dt.date:
    return dt.datetime.strptime(day, "%Y%m%d").date()


def _open(day: str = DAY) -> dt.datetime:
    return session_bounds(_date(day))[0]


def _bars(symbol: str, day: str = DAY, n: int = 5, price: float = 10.0) -> list[str]:
    """`n` one-second bars from the open, UTC with an offset."""
    return [
        bar_line(symbol, _open(day) + dt.timedelta(seconds=i), price + i / 100) for i in range(n)
    ]


def _text(lines: list[str], header: str = HEADER) -> bytes:
    return ("\n".join([header, *lines]) + "\n").encode()


@pytest.fixture
def beside_two_good(write_file: WriteFile, raw_root: Path) -> Clean:
    """Write AMD.csv and IBM.csv (5 good bars each) and the hostile file, then clean the day."""

    def clean(
        name: str, content: list[str] | bytes, *, day: str = DAY, good_header: str = HEADER
    ) -> CleanDay:
        for symbol, price in (("AMD", 10.0), ("IBM", 100.0)):
            write_file(day, f"{symbol}.csv", _bars(symbol, day, price=price), header=good_header)
        write_file(day, name, content)
        result = clean_day(raw_root / day, _date(day))
        _assert_good_files_whole(result)
        return result

    return clean


def _assert_good_files_whole(result: CleanDay) -> None:
    files = result.files
    assert (files["rows_kept"] + files["rows_quarantined"] == files["rows_read"]).all()
    good = files.filter(pl.col("file").is_in(["AMD.csv", "IBM.csv"]))
    assert good.select("status", "rows_read", "rows_kept").rows() == [("ok", 5, 5)] * 2
    assert _traded(result, "AMD") == 5 and _traded(result, "IBM") == 5


def _traded(result: CleanDay, symbol: str) -> int:
    return result.bars.filter((pl.col("symbol") == symbol) & ~pl.col("filled")).height


def _file(result: CleanDay, name: str) -> dict:
    return result.files.filter(pl.col("file") == name).row(0, named=True)


def _quarantined(result: CleanDay, name: str) -> list[tuple[int | None, str]]:
    return result.quarantine.filter(pl.col("file") == name).select("line", "reason").rows()


# --- epoch timestamps -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bob_scale", "eob_scale"),
    [(1, 1), (10**3, 10**3), (10**6, 10**6), (10**9, 10**9), (10**3, 1)],
    ids=["s", "ms", "us", "ns", "ms-and-s"],
)
def test_epoch_timestamps_in_any_unit_are_read_as_utc(
    beside_two_good: Clean, bob_scale: int, eob_scale: int
) -> None:
    start = int(_open().timestamp())
    lines = [
        f"F,{(start + i) * bob_scale},{(start + i + 1) * eob_scale},12.0,12.0,12.0,100,1200.0"
        for i in range(5)
    ]
    result = beside_two_good("F.csv", lines)
    assert _file(result, "F.csv")["rows_kept"] == 5
    traded = result.bars.filter((pl.col("symbol") == "F") & ~pl.col("filled"))["ts"]
    assert traded.to_list() == [_open() + dt.timedelta(seconds=i) for i in range(5)]


def test_numbers_that_are_no_epoch_are_bad_timestamps(beside_two_good: Clean) -> None:
    start = int(_open().timestamp())
    lines = [f"F,{start},{start + 1},12,12,12,1,12", f"F,1234,{start + 2},12,12,12,1,12"]
    result = beside_two_good("F.csv", lines)
    assert _quarantined(result, "F.csv") == [(3, Reason.BAD_TIMESTAMP)]


# --- file names and compression -------------------------------------------------------------


@pytest.mark.parametrize("name", ["F.csv.gz", "F.CSV", "F.Csv.GZ"])
def test_gzip_and_upper_case_names_are_read_like_csv(beside_two_good: Clean, name: str) -> None:
    content = _text(_bars("F", price=12.0))
    result = beside_two_good(
        name, gzip.compress(content) if name.lower().endswith("gz") else content
    )
    assert _file(result, name)["symbol"] == "F"
    assert _traded(result, "F") == 5 and result.quarantine.height == 0


def test_corrupt_gzip_is_rejected_as_unreadable(beside_two_good: Clean) -> None:
    result = beside_two_good("F.csv.gz", b"\x1f\x8b\x08\x00garbage")
    assert _quarantined(result, "F.csv.gz") == [(None, Reason.UNREADABLE)]
    assert "cannot decompress" in _file(result, "F.csv.gz")["detail"]


def test_csv_and_gzip_of_one_symbol_read_only_the_first(
    beside_two_good: Clean, write_file: WriteFile
) -> None:
    write_file(DAY, "F.csv.gz", gzip.compress(_text(_bars("F", price=12.0))))
    result = beside_two_good("F.csv", _bars("F", price=12.0))
    assert _quarantined(result, "F.csv.gz") == [(None, Reason.DUPLICATE_FILE)]
    assert "F.csv already holds F" in _file(result, "F.csv.gz")["detail"]
    assert _file(result, "F.csv")["rows_kept"] == 5 and _traded(result, "F") == 5


# --- headers and encodings ------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [HEADER.upper(), "\ufeff Symbol , Bob , Eob ,Close,High,Low,Volume,Amount ", HEADER.title()],
)
@pytest.mark.parametrize("bad_row", [False, True], ids=["typed", "text"])
def test_header_names_match_whatever_their_case(
    beside_two_good: Clean, header: str, bad_row: bool
) -> None:
    lines = _bars("F", price=12.0)
    if bad_row:  # a value the typed reader cannot parse sends the file to the text tier
        lines.append(lines[-1].replace(",100,", ",lots,"))
    result = beside_two_good("F.csv", _text(lines, header))
    assert _file(result, "F.csv")["rows_kept"] == 5
    assert _quarantined(result, "F.csv") == ([(7, Reason.BAD_NUMBER)] if bad_row else [])


@pytest.mark.parametrize("good_header", [HEADER, HEADER.upper()])
def test_a_windows_1252_byte_costs_only_its_row(beside_two_good: Clean, good_header: str) -> None:
    content = _text(_bars("F", price=12.0))
    garbled = content.replace(b",1201.0\n", b",1201.0\xe9\n", 1)  # the second bar, line 3
    assert garbled != content
    result = beside_two_good("F.csv", garbled, good_header=good_header)
    assert _quarantined(result, "F.csv") == [(3, Reason.BAD_ENCODING)]
    assert "amount" in result.quarantine.filter(pl.col("file") == "F.csv")["detail"][0]
    assert _file(result, "F.csv")["rows_kept"] == 4


def test_a_windows_1252_byte_in_an_ignored_column_costs_nothing(beside_two_good: Clean) -> None:
    lines = [line + ",Soci\xe9t\xe9" for line in _bars("F", price=12.0)]
    content = _text(lines, HEADER + ",venue").decode().encode("cp1252")
    result = beside_two_good("F.csv", content)
    assert _file(result, "F.csv")["rows_kept"] == 5 and _quarantined(result, "F.csv") == []


# --- naive New York time --------------------------------------------------------------------


def _naive_lines(symbol: str, moments: list[dt.datetime], zone: dt.tzinfo) -> list[str]:
    """Bars at UTC `moments`, written as wall-clock time in `zone` without an offset."""
    return [
        bar_line(symbol, t.astimezone(zone).replace(tzinfo=dt.UTC), 12.0, style=NAIVE)
        for t in moments
    ]


def _extended_day(day: str, until: dt.time = dt.time(20)) -> list[dt.datetime]:
    """A bar every 10 s from 04:00 New York, every 5 s in the session, every 10 s after it.

    Busy extended hours, as real exports have: as UTC, such a day read from New York wall
    times still puts 30-40 % of its rows in the session.
    """
    midnight = dt.datetime.combine(_date(day), dt.time(), NEW_YORK)
    end = dt.datetime.combine(_date(day), until, NEW_YORK)
    open_, close = session_bounds(_date(day))
    pre = [midnight + dt.timedelta(hours=4, seconds=s) for s in range(0, 19_800, 10)]
    regular = [open_ + dt.timedelta(seconds=s) for s in range(0, 23_400, 5)]
    post = [close + dt.timedelta(seconds=s) for s in range(0, 14_400, 10)]
    return [t.astimezone(dt.UTC) for t in (*pre, *regular, *post) if t < end]


@pytest.mark.parametrize("day", [BEFORE_CHANGE, DAY])
def test_naive_new_york_open_is_read_as_new_york_time(beside_two_good: Clean, day: str) -> None:
    moments = [_open(day) + dt.timedelta(seconds=s) for s in range(600)]
    result = beside_two_good("F.csv", _naive_lines("F", moments, NEW_YORK), day=day)
    report = _file(result, "F.csv")
    assert (report["status"], report["rows_kept"]) == ("ok", 600)
    assert "America/New_York" in report["detail"] and "0 -> 600 rows" in report["detail"]
    traded = result.bars.filter((pl.col("symbol") == "F") & ~pl.col("filled"))["ts"]
    assert traded.min() == _open(day) and traded.len() == 600


@pytest.mark.parametrize("day", ["20250801", BEFORE_CHANGE, DAY])
def test_naive_new_york_day_with_extended_hours_is_read_as_new_york_time(
    beside_two_good: Clean, day: str
) -> None:
    result = beside_two_good("F.csv", _naive_lines("F", _extended_day(day), NEW_YORK), day=day)
    assert "America/New_York" in _file(result, "F.csv")["detail"]
    assert _quarantined(result, "F.csv") == []
    traded = result.bars.filter((pl.col("symbol") == "F") & ~pl.col("filled"))["ts"]
    assert traded.min() == _open(day) and traded.len() == 23_400 // 5


@pytest.mark.parametrize("day", ["20250801", BEFORE_CHANGE, DAY])
def test_naive_utc_day_is_left_as_utc(beside_two_good: Clean, day: str) -> None:
    result = beside_two_good("F.csv", _naive_lines("F", _extended_day(day), dt.UTC), day=day)
    assert _file(result, "F.csv")["detail"] is None
    assert _quarantined(result, "F.csv") == []
    assert _traded(result, "F") == 23_400 // 5


@pytest.mark.parametrize("until", [dt.time(9, 45), dt.time(9, 30)], ids=["morning", "pre-market"])
def test_a_naive_utc_export_of_part_of_the_day_stays_utc(
    beside_two_good: Clean, until: dt.time
) -> None:
    # Read as New York time, most of these rows would sit in the session (and all of a
    # morning export would): only the jump at the open tells the zone.
    moments = _extended_day(DAY, until)
    result = beside_two_good("F.csv", _naive_lines("F", moments, dt.UTC))
    assert _file(result, "F.csv")["detail"] is None
    assert _file(result, "F.csv")["rows_kept"] == len(moments)
    assert _traded(result, "F") == (180 if until == dt.time(9, 45) else 0)


# --- bar length -----------------------------------------------------------------------------


def _bar(bob: dt.datetime, eob: dt.datetime, style: str = "{:%Y-%m-%d %H:%M:%S}+00:00") -> str:
    return f"F,{style.format(bob)},{style.format(eob)},12.0,12.0,12.0,100,1200.0"


def test_a_sixty_second_export_is_rejected_naming_the_bar_length(beside_two_good: Clean) -> None:
    bobs = [_open() + dt.timedelta(minutes=m) for m in range(5)]
    result = beside_two_good("F.csv", [_bar(t, t + dt.timedelta(seconds=60)) for t in bobs])
    report = _file(result, "F.csv")
    assert (report["status"], report["reason"]) == ("rejected", Reason.WRONG_BAR_LENGTH)
    assert "60 s (5 bars)" in report["detail"]
    assert (report["rows_read"], report["rows_kept"], report["rows_quarantined"]) == (5, 0, 5)
    assert _quarantined(result, "F.csv") == [
        (None, Reason.WRONG_BAR_LENGTH),
        *((line, Reason.NOT_ONE_SECOND_BAR) for line in range(2, 7)),
    ]
    assert result.symbols == ["AMD", "IBM"]


def test_one_long_bar_among_one_second_bars_costs_its_row(beside_two_good: Clean) -> None:
    later = _open() + dt.timedelta(seconds=30)
    lines = [*_bars("F", price=12.0), _bar(later, later + dt.timedelta(seconds=60))]
    result = beside_two_good("F.csv", lines)
    assert _file(result, "F.csv")["status"] == "ok"
    assert _quarantined(result, "F.csv") == [(7, Reason.NOT_ONE_SECOND_BAR)]
    assert "= 60 s" in result.quarantine.filter(pl.col("file") == "F.csv")["detail"][0]


@pytest.mark.parametrize(
    ("eob_after_us", "kept"), [(999_000, True), (1_000_000, True), (0, False), (1_001_000, False)]
)
def test_bar_length_is_measured_to_the_microsecond(
    beside_two_good: Clean, eob_after_us: int, kept: bool
) -> None:
    style = "{:%Y-%m-%dT%H:%M:%S.%f}Z"
    later = _open() + dt.timedelta(seconds=30)
    odd = _bar(later, later + dt.timedelta(microseconds=eob_after_us), style)
    result = beside_two_good("F.csv", [*_bars("F", price=12.0), odd])
    expected = [] if kept else [(7, Reason.NOT_ONE_SECOND_BAR)]
    assert _quarantined(result, "F.csv") == expected


# --- failures inside one file ---------------------------------------------------------------


def test_several_bad_timestamps_in_a_later_file_do_not_panic(beside_two_good: Clean) -> None:
    # polars' streaming `pl.format` used to panic on this day while describing the bad rows
    lines = [f"XOM,03/11/2025 14:30:0{s},03/11/2025 14:30:0{s + 1},1,1,1,1,1" for s in range(5)]
    result = beside_two_good("XOM.csv", lines)
    assert _quarantined(result, "XOM.csv") == [(line, Reason.BAD_TIMESTAMP) for line in range(2, 7)]


@pytest.mark.parametrize(
    "error", [pl.exceptions.PanicException("boom"), ValueError("boom")], ids=["panic", "error"]
)
def test_a_failure_checking_one_file_rejects_only_that_file(
    beside_two_good: Clean, monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    checked_rows = clean_module._checked_rows

    def fail_on_f(rows: pl.DataFrame, *args: object, **kwargs: object) -> pl.DataFrame:
        if "F.csv" in rows["file"]:
            raise error
        return checked_rows(rows, *args, **kwargs)

    monkeypatch.setattr(clean_module, "_checked_rows", fail_on_f)
    result = beside_two_good("F.csv", _bars("F", price=12.0))
    assert _quarantined(result, "F.csv") == [(None, Reason.PROCESSING_ERROR)]
    assert _file(result, "F.csv")["detail"] == f"{type(error).__name__}: boom"


def test_a_panic_reading_one_file_rejects_only_that_file(
    beside_two_good: Clean, monkeypatch: pytest.MonkeyPatch
) -> None:
    read_raw_file = read_module.read_raw_file

    def panic_on_f(path: Path) -> read_module.RawFile:
        if path.name == "F.csv":
            raise pl.exceptions.PanicException("boom")
        return read_raw_file(path)

    monkeypatch.setattr(read_module, "read_raw_file", panic_on_f)
    result = beside_two_good("F.csv", _bars("F", price=12.0))
    assert _quarantined(result, "F.csv") == [(None, Reason.UNREADABLE)]
    assert _file(result, "F.csv")["detail"] == "PanicException: boom"


def test_keyboard_interrupt_is_not_swallowed(
    write_file: WriteFile, raw_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupt(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(clean_module, "_checked_rows", interrupt)
    write_file(DAY, "AMD.csv", _bars("AMD"))
    with pytest.raises(KeyboardInterrupt):
        clean_day(raw_root / DAY, _date(DAY))


@pytest.mark.parametrize("typed", [True, False], ids=["typed", "text"])
def test_spaces_around_fields_are_trimmed_and_cost_nothing(
    beside_two_good: Clean, typed: bool
) -> None:
    """Padding in the text fields (and, in the text tier, the numbers) is trimmed: every bar
    is kept with the values of the unpadded file."""
    plain = _bars("F", price=12.0)
    padded = []
    for line in plain:
        fields = line.split(",")
        for i in range(3 if typed else len(fields)):  # numbers too: the typed reader fails
            fields[i] = f" {fields[i]}\t" if i % 2 else f"  {fields[i]} "
        padded.append(",".join(fields))
    result = beside_two_good("F.csv", _text(padded))
    assert _file(result, "F.csv")["rows_kept"] == 5 and result.quarantine.height == 0
    bars = result.bars.filter(pl.col("symbol") == "F", ~pl.col("filled"))
    assert bars["close"].to_list() == [12.0 + i / 100 for i in range(5)]
    assert bars["ts"].to_list() == [_open() + dt.timedelta(seconds=i) for i in range(5)]
