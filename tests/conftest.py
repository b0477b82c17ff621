"""Shared fixtures: tiny hand-written raw day folders."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest

HEADER = "symbol,bob,eob,close,high,low,volume,amount"


def bar_line(
    symbol: str,
    bob: dt.datetime,
    close: float,
    *,
    high: float | None = None,
    low: float | None = None,
    volume: int = 100,
    style: str = "{:%Y-%m-%d %H:%M:%S}+00:00",
) -> str:
    """One raw CSV line for a bar beginning at `bob` (UTC)."""
    high = close if high is None else high
    low = close if low is None else low
    eob = bob + dt.timedelta(seconds=1)
    return (
        f"{symbol},{style.format(bob)},{style.format(eob)},{close},{high},{low},"
        f"{volume},{volume * close}"
    )


def utc(day: str, hms: str) -> dt.datetime:
    """`utc("20251103", "14:30:00")` -> an aware UTC datetime."""
    return dt.datetime.strptime(day + hms, "%Y%m%d%H:%M:%S").replace(tzinfo=dt.UTC)


WriteFile = Callable[..., Path]


@pytest.fixture
def raw_root(tmp_path: Path) -> Path:
    root = tmp_path / "raw"
    root.mkdir()
    return root


@pytest.fixture
def write_file(raw_root: Path) -> WriteFile:
    """Write `raw_root/<day>/<name>` from lines (header added unless `header=None`) or bytes."""

    def write(day: str, name: str, lines: list[str] | bytes, header: str | None = HEADER) -> Path:
        folder = raw_root / day
        folder.mkdir(exist_ok=True)
        path = folder / name
        if isinstance(lines, bytes):
            path.write_bytes(lines)
        else:
            body = [header, *lines] if header is not None else lines
            path.write_text("\n".join(body) + "\n")
        return path

    return write


@pytest.fixture(scope="session")
def tiny_market(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic `tiny` profile (4 symbols x 3 sessions), generated once per test session."""
    from diffstock_ml.synthetic import PROFILES, generate_market

    raw = tmp_path_factory.mktemp("tiny_market") / "raw"
    generate_market(PROFILES["tiny"], raw, workers=1)
    return raw


@pytest.fixture(scope="session")
def tiny_windows(tiny_market: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Window folders of the tiny market's 3 days (clean -> features -> windows, N = 120)."""
    from diffstock_ml.pipeline import windows_from_raw

    root = tmp_path_factory.mktemp("tiny_windows")
    folders = [windows_from_raw(day, root) for day in sorted(tiny_market.iterdir())]
    return folders
