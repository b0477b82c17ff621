"""The Arrow fast path of `with_utc_timestamps` reads exactly what the general path reads."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from diffstock_ml.ingest import timestamps
from diffstock_ml.ingest.timestamps import _any_style, _with_offsets, with_utc_timestamps

DAY = dt.date(2025, 11, 3)


def _rows(bob: list[str | None], eob: list[str | None]) -> pl.DataFrame:
    return pl.DataFrame(
        {"file": ["A.csv"] * len(bob), "bob": bob, "eob": eob}, schema_overrides={"bob": pl.String}
    )


def _random_offset_values(rng: np.random.Generator, n: int) -> list[str]:
    """ISO date-times with a written offset, in every style the general path reads."""
    values = []
    for _ in range(n):
        instant = dt.datetime(2025, 11, 3, 8) + dt.timedelta(
            seconds=int(rng.integers(0, 12 * 3600)), microseconds=int(rng.integers(0, 10**6))
        )
        minutes = int(rng.integers(-48, 57)) * 15  # -12:00 ... +14:00
        local = instant + dt.timedelta(minutes=minutes)
        text = local.strftime(f"%Y-%m-%d{rng.choice([' ', 'T'])}%H:%M:%S")
        digits = int(rng.integers(0, 7))  # none up to microseconds
        if digits:
            text += f".{local.microsecond:06d}"[: digits + 1]
        sign, (hours, mins) = "-" if minutes < 0 else "+", divmod(abs(minutes), 60)
        styles = [f"{sign}{hours:02d}:{mins:02d}", f"{sign}{hours:02d}{mins:02d}"]
        styles += [f"{sign}{hours:02d}"] if mins == 0 else []
        styles += ["Z"] if minutes == 0 else []
        values.append(text + str(rng.choice(styles)))
    return values


def test_arrow_reads_offset_timestamps_as_the_general_path_does() -> None:
    rng = np.random.default_rng(7)
    bob = _random_offset_values(rng, 3000)
    eob = _random_offset_values(rng, 3000)
    rows = _rows([*bob, None], [*eob, None])
    fast = _with_offsets(rows)
    assert fast is not None
    general = _any_style(rows, DAY)
    assert general.new_york == {}
    assert fast.equals(general.rows)
    assert fast.get_column("bar_us").null_count() == 1


@pytest.mark.parametrize(
    "value",
    [
        "2025-11-03 14:30:00",  # naive: UTC or New York is judged per file
        "2025-11-03 14:30+00:00",  # no seconds: Arrow would read it, the contract does not
        "2025-11-03 14+00:00",
        "2025-11-03",
        "1762180200",  # epoch seconds
        "",
        "2025-11-03 14:30:00.1234567+00:00",  # more than microseconds
        "2025-11-03 14:30:00+24:00",
        "14:30:00 2025-11-03+00:00",
        "2025-11-03 14:30:00,5+00:00",  # a decimal comma
        "2025-11-03t14:30:00Z",
        "2025-11-03 14:30:00.123456789Z",  # nanoseconds
    ],
)
def test_other_styles_take_the_general_path_and_read_the_same(value: str) -> None:
    good = "2025-11-03 14:30:01+00:00"
    rows = _rows([good, value], [good, value])
    assert _with_offsets(rows) is None
    assert with_utc_timestamps(rows, DAY).rows.equals(_any_style(rows, DAY).rows)


@pytest.mark.parametrize("pad", [" ", "\t", "  \r"])
def test_untrimmed_timestamps_are_trimmed_and_read_as_trimmed_ones(pad: str) -> None:
    """`bob`/`eob` reach `with_utc_timestamps` untrimmed (the batch trims the other fields):
    Arrow refuses any whitespace, so padded values take the general path, trimmed."""
    rng = np.random.default_rng(3)
    bob, eob = _random_offset_values(rng, 200), _random_offset_values(rng, 200)
    clean = with_utc_timestamps(_rows(bob, eob), DAY)
    padded_bob = [f"{pad}{v}" if i % 7 == 0 else v for i, v in enumerate(bob)]
    padded_eob = [f"{v}{pad}" if i % 5 == 0 else v for i, v in enumerate(eob)]
    padded = _rows(padded_bob, padded_eob)
    assert _with_offsets(padded) is None  # Arrow's parse does not take the padding
    read = with_utc_timestamps(padded, DAY)
    assert read.rows.equals(clean.rows)  # the same instants, and bob/eob come back trimmed


def test_a_file_arrow_refuses_leaves_the_other_files_on_the_fast_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(11)
    good = _rows(_random_offset_values(rng, 50), _random_offset_values(rng, 50))
    naive = _rows(["2025-11-03 14:30:00", "1762180200"], ["2025-11-03 14:30:01", "garbage"])
    rows = pl.concat([good, naive.with_columns(pl.lit("B.csv").alias("file"))])
    general = []
    monkeypatch.setattr(
        timestamps, "_any_style", lambda r, d: general.append(r["file"][0]) or _any_style(r, d)
    )
    read = with_utc_timestamps(rows, DAY)
    assert general == ["B.csv"]  # A.csv was read by Arrow's cast
    by_file = [_any_style(part, DAY).rows for part in rows.partition_by("file")]
    assert read.rows.equals(pl.concat(by_file))
