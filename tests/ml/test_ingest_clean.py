"""`clean_day` on tiny hand-written folders: grid, fill, flags, time zones, hours."""

import datetime as dt
from pathlib import Path

import polars as pl
import pytest
from conftest import WriteFile, bar_line, utc
from hypothesis import given, settings
from hypothesis import strategies as st

from diffstock_ml.config import IngestConfig
from diffstock_ml.ingest import BARS_SCHEMA, clean_day

DAY = "20251103"  # first Monday after the 2025-11-02 clock change: opens 14:30 UTC


def _clean(raw_root: Path, day: str = DAY, **config: object):
    return clean_day(
        raw_root / day, dt.datetime.strptime(day, "%Y%m%d").date(), IngestConfig(**config)
    )


def _at(bars: pl.DataFrame, symbol: str, when: dt.datetime) -> dict:
    return bars.filter((pl.col("symbol") == symbol) & (pl.col("ts") == when)).row(0, named=True)


def test_full_grid_per_symbol_after_the_clock_change(write_file: WriteFile, raw_root: Path) -> None:
    write_file(DAY, "AMD.csv", [bar_line("AMD", utc(DAY, "14:30:00"), 10.0)])
    write_file(DAY, "IBM.csv", [bar_line("IBM", utc(DAY, "15:00:00"), 200.0)])
    result = _clean(raw_root)
    assert dict(result.bars.schema) == dict(BARS_SCHEMA)
    assert result.bars.height == 2 * 23_400
    assert result.bars["ts"].min() == utc(DAY, "14:30:00")
    assert result.bars["ts"].max() == utc(DAY, "20:59:59")
    assert result.symbols == ["AMD", "IBM"]


def test_before_the_clock_change_the_session_starts_an_hour_earlier_in_utc(
    write_file: WriteFile, raw_root: Path
) -> None:
    day = "20251031"
    write_file(day, "AMD.csv", [bar_line("AMD", utc(day, "13:30:00"), 10.0)])
    bars = _clean(raw_root, day).bars
    assert bars["ts"].min() == utc(day, "13:30:00")
    assert bars["ts"].max() == utc(day, "19:59:59")


def test_half_day_grid_ends_at_one_pm_new_york(write_file: WriteFile, raw_root: Path) -> None:
    day = "20251128"
    write_file(
        day,
        "AMD.csv",
        [bar_line("AMD", utc(day, "14:30:00"), 10.0), bar_line("AMD", utc(day, "18:30:00"), 11.0)],
    )
    result = _clean(raw_root, day)
    assert result.bars.height == 12_600  # 09:30-13:00 New York
    assert result.bars["ts"].max() == utc(day, "17:59:59")
    # the post-market print at 13:30 New York is kept out of the grid but not quarantined
    assert result.quarantine.height == 0
    assert result.bars["close"].max() == 10.0


def test_forward_fill_and_empty_seconds(write_file: WriteFile, raw_root: Path) -> None:
    write_file(
        DAY,
        "AMD.csv",
        [
            bar_line("AMD", utc(DAY, "14:30:00"), 10.0, high=10.02, low=9.99, volume=300),
            bar_line("AMD", utc(DAY, "14:30:05"), 10.05),
        ],
    )
    bars = _clean(raw_root).bars
    traded = _at(bars, "AMD", utc(DAY, "14:30:00"))
    assert (traded["high"], traded["low"], traded["volume"], traded["filled"]) == (
        10.02,
        9.99,
        300,
        False,
    )
    empty = _at(bars, "AMD", utc(DAY, "14:30:03"))
    assert (empty["close"], empty["high"], empty["low"]) == (10.0, 10.0, 10.0)
    assert (empty["volume"], empty["amount"], empty["filled"]) == (0.0, 0.0, True)
    assert _at(bars, "AMD", utc(DAY, "14:30:05"))["close"] == 10.05


def test_pre_market_trade_seeds_the_open(write_file: WriteFile, raw_root: Path) -> None:
    write_file(
        DAY,
        "AMD.csv",
        [bar_line("AMD", utc(DAY, "14:29:40"), 9.5), bar_line("AMD", utc(DAY, "14:31:00"), 10.0)],
    )
    bars = _clean(raw_root, stale_after_s=60).bars
    first = _at(bars, "AMD", utc(DAY, "14:30:00"))
    assert first["close"] == 9.5 and first["filled"] and not first["stale"]
    # 60 s after the pre-market print the seed is stale (age 61 s > 60 s)
    assert _at(bars, "AMD", utc(DAY, "14:30:41"))["stale"]
    assert not _at(bars, "AMD", utc(DAY, "14:31:00"))["stale"]


def test_without_pre_market_the_seconds_before_the_first_trade_are_stale_and_empty(
    write_file: WriteFile, raw_root: Path
) -> None:
    write_file(DAY, "AMD.csv", [bar_line("AMD", utc(DAY, "14:35:00"), 10.0)])
    bars = _clean(raw_root).bars
    before = bars.filter(pl.col("ts") < utc(DAY, "14:35:00"))
    assert before.height == 300
    assert before["stale"].all() and before["close"].is_null().all()
    assert not _at(bars, "AMD", utc(DAY, "14:35:00"))["stale"]


def test_stale_after_a_long_gap(write_file: WriteFile, raw_root: Path) -> None:
    write_file(
        DAY,
        "AMD.csv",
        [bar_line("AMD", utc(DAY, "14:30:00"), 10.0), bar_line("AMD", utc(DAY, "14:40:00"), 10.1)],
    )
    bars = _clean(raw_root, stale_after_s=30).bars
    assert not _at(bars, "AMD", utc(DAY, "14:30:30"))["stale"]
    assert _at(bars, "AMD", utc(DAY, "14:30:31"))["stale"]
    assert not _at(bars, "AMD", utc(DAY, "14:40:00"))["stale"]


def test_prices_are_rounded_to_the_cent(write_file: WriteFile, raw_root: Path) -> None:
    line = (
        "AMD,2025-11-03 14:30:00+00:00,2025-11-03 14:30:01+00:00,"
        "12.3400001,12.3500002,12.3299999,10,123.4"
    )
    write_file(DAY, "AMD.csv", [line])
    row = _at(_clean(raw_root).bars, "AMD", utc(DAY, "14:30:00"))
    assert (row["close"], row["high"], row["low"]) == (12.34, 12.35, 12.33)


@pytest.mark.parametrize(
    "style",
    [
        "{:%Y-%m-%d %H:%M:%S}+00:00",
        "{:%Y-%m-%dT%H:%M:%S}Z",
        "{:%Y-%m-%d %H:%M:%S}",
        "{:%Y-%m-%dT%H:%M:%S.000}+00:00",
    ],
)
def test_utc_timestamp_styles(write_file: WriteFile, raw_root: Path, style: str) -> None:
    write_file(DAY, "AMD.csv", [bar_line("AMD", utc(DAY, "14:30:07"), 10.0, style=style)])
    bars = _clean(raw_root).bars
    assert not _at(bars, "AMD", utc(DAY, "14:30:07"))["filled"]


@pytest.mark.parametrize(
    ("local", "offset"),
    [("22:30:07", "+08:00"), ("09:30:07", "-05:00"), ("0930", "-0500")],
)
def test_offsets_are_converted_to_utc(
    write_file: WriteFile, raw_root: Path, local: str, offset: str
) -> None:
    hms = local if ":" in local else "09:30:07"
    text = f"2025-11-03 {hms}{offset}"
    eob = text.replace(":07", ":08")
    write_file(DAY, "AMD.csv", [f"AMD,{text},{eob},10.0,10.0,10.0,1,10.0"])
    result = _clean(raw_root)
    assert result.quarantine.height == 0
    assert not _at(result.bars, "AMD", utc(DAY, "14:30:07"))["filled"]


def test_rows_out_of_order_are_sorted_and_counted(write_file: WriteFile, raw_root: Path) -> None:
    lines = [bar_line("AMD", utc(DAY, f"14:30:0{s}"), 10 + s / 100) for s in (3, 1, 2)]
    write_file(DAY, "AMD.csv", lines)
    result = _clean(raw_root)
    assert result.files["rows_out_of_order"].to_list() == [1]
    closes = [_at(result.bars, "AMD", utc(DAY, f"14:30:0{s}"))["close"] for s in (1, 2, 3)]
    assert closes == [10.01, 10.02, 10.03]


@settings(max_examples=15, deadline=None)
@given(order=st.permutations(range(8)))
def test_cleaning_does_not_depend_on_row_order(tmp_path_factory, order: list[int]) -> None:
    root = tmp_path_factory.mktemp("raw")
    folder = root / DAY
    folder.mkdir()
    lines = [bar_line("AMD", utc(DAY, f"14:30:{2 * s:02d}"), 10 + s / 100) for s in range(8)]
    shuffled = [lines[i] for i in order]
    (folder / "AMD.csv").write_text(
        "\n".join(["symbol,bob,eob,close,high,low,volume,amount", *shuffled])
    )
    bars = _clean(root).bars.filter(pl.col("ts") < utc(DAY, "14:31:00"))
    assert bars.filter(~pl.col("filled"))["close"].to_list() == [10 + s / 100 for s in range(8)]
