"""Every asset check fails on crafted input, and its message names the day and what is wrong."""

import dataclasses
import datetime as dt
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest
from conftest import WriteFile, bar_line, utc

from diffstock_assets.features.checks import anchors_finite, target_scale, valid_share
from diffstock_assets.gates import blocked_by, verdict_frame
from diffstock_assets.ingest.checks import CHECK_SPECS, check_results
from diffstock_ml.ingest import CleanDay, clean_day
from diffstock_ml.windows import load_day_arrays

DAY = "20251103"


@pytest.fixture
def cleaned(write_file: WriteFile, raw_root: Path) -> CleanDay:
    """Two symbols on the full grid, one garbage row in F.csv and one rejected file."""
    for symbol, price in (("AMD", 100.0), ("F", 12.0)):
        lines = [
            bar_line(symbol, utc(DAY, f"14:30:{s:02d}"), price + s / 100) for s in range(0, 60, 2)
        ]
        write_file(DAY, f"{symbol}.csv", lines)
    write_file(DAY, "F.csv", [*lines, "garbage line"])
    write_file(DAY, "BAD.csv", ["1,2"], header="foo,bar")
    return clean_day(raw_root / DAY, dt.date(2025, 11, 3))


def _checks(result: CleanDay, **thresholds: float) -> dict[str, dg.AssetCheckResult]:
    limits = {"max_stale_share": 1.0, "max_quarantined_share": 1.0, **thresholds}
    return {str(c.check_name): c for c in check_results(result, **limits)}


def test_a_clean_day_passes_every_blocking_check(cleaned: CleanDay) -> None:
    checks = _checks(cleaned)
    blocking = {spec.name for spec in CHECK_SPECS if spec.blocking}
    assert blocking == {
        "schema_mismatch",
        "incomplete_grid",
        "close_outside_high_low",
        "duplicate_symbol_second",
    }
    assert all(checks[name].passed for name in blocking)
    assert blocked_by(verdict_frame(list(checks.values()), frozenset(blocking))).height == 0


def test_schema_mismatch_names_the_column(cleaned: CleanDay) -> None:
    bad = dataclasses.replace(cleaned, bars=cleaned.bars.with_columns(pl.col("volume").cast(int)))
    check = _checks(bad)["schema_mismatch"]
    assert not check.passed
    assert check.description.startswith(DAY) and "volume: Int64" in check.description


def test_incomplete_grid_names_the_symbol_and_its_seconds(cleaned: CleanDay) -> None:
    gone = (pl.col("symbol") == "F") & (pl.col("ts") == utc(DAY, "14:30:07"))
    bars = cleaned.bars.filter(~gone)
    check = _checks(dataclasses.replace(cleaned, bars=bars))["incomplete_grid"]
    assert not check.passed
    assert check.description == f"{DAY}: F has 23,399 rows for 23,399 of 23,400 session seconds"


def test_close_outside_high_low_names_the_rows(cleaned: CleanDay) -> None:
    second = pl.col("ts") == utc(DAY, "14:30:04")
    bars = cleaned.bars.with_columns(
        pl.when((pl.col("symbol") == "AMD") & second)
        .then(pl.col("high") + 1)
        .otherwise("close")
        .alias("close")
    )
    check = _checks(dataclasses.replace(cleaned, bars=bars))["close_outside_high_low"]
    assert not check.passed
    assert check.description.startswith(
        f"{DAY}: 1 rows with close outside [low, high]: AMD 14:30:04"
    )


def test_duplicate_symbol_second_names_the_rows(cleaned: CleanDay) -> None:
    bars = pl.concat([cleaned.bars, cleaned.bars.slice(5, 1)]).sort("symbol", "ts")
    checks = _checks(dataclasses.replace(cleaned, bars=bars))
    assert not checks["duplicate_symbol_second"].passed
    assert checks["duplicate_symbol_second"].description == (
        f"{DAY}: 1 duplicated rows: AMD 14:30:05 UTC x2"
    )
    assert not checks["incomplete_grid"].passed  # 23,401 rows for 23,400 seconds


def test_too_many_stale_seconds_warns_with_the_most_stale_symbols(cleaned: CleanDay) -> None:
    check = _checks(cleaned, max_stale_share=0.01)["too_many_stale_seconds"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.description.startswith(DAY) and "most stale: AMD" in check.description


def test_too_many_quarantined_rows_names_the_files(cleaned: CleanDay) -> None:
    check = _checks(cleaned)["too_many_quarantined_rows"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN  # BAD.csv rejected
    assert check.description.startswith(f"{DAY}: 1 of ")
    assert "F.csv: 1 rows" in check.description and "BAD.csv rejected (" in check.description
    assert blocked_by(verdict_frame([check], frozenset({check.check_name}))).height == 0


def test_implausible_target_scale_names_the_symbols() -> None:
    frame = pl.DataFrame(
        {"symbol": ["AMD"] * 3 + ["F"] * 3, "ret_30s": [1e-4, -1e-4, 2e-4, 0.05, -0.05, None]}
    )
    check = target_scale(frame, DAY, low_bp=0.5, high_bp=1000.0)
    assert check.passed  # the median over both symbols, 2 bp, is plausible
    check = target_scale(frame, DAY, low_bp=5.0, high_bp=1000.0)
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.description == (
        f"{DAY}: median |ret_30s| 2 bp, plausible [5.0, 1000.0] bp; symbols outside: AMD 1 bp"
    )


def test_nonfinite_feature_at_anchor_names_symbol_and_second(tiny_windows: list[Path]) -> None:
    arrays = load_day_arrays(tiny_windows[0], mmap=False)
    assert anchors_finite(arrays).passed
    symbol, second = (int(v) for v in arrays.anchors[len(arrays.anchors) // 2])
    x = np.array(arrays.x)
    x[symbol, second, 0] = np.nan
    check = anchors_finite(dataclasses.replace(arrays, x=x))
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    name = arrays.symbols[symbol]
    assert check.description.startswith(f"{arrays.day}: ")
    assert f"{name} second {second}" in check.description  # the anchor ending at the NaN


def test_too_few_valid_anchors_names_the_emptiest_symbols(tiny_windows: list[Path]) -> None:
    arrays = load_day_arrays(tiny_windows[0], mmap=False)
    assert valid_share(arrays, threshold=0.5).passed
    keep = arrays.anchors[:, 0] != 0  # symbol 0 loses every anchor
    check = valid_share(dataclasses.replace(arrays, anchors=arrays.anchors[keep]), threshold=0.99)
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert f"fewest: {arrays.symbols[0]} 0%" in check.description
