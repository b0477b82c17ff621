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


TINY_DAYS = ("20251031", "20251103", "20251104")


@pytest.fixture(scope="session")
def tiny_trained(tiny_market: Path, tmp_path_factory: pytest.TempPathFactory):
    """The tiny market ingested and `train_job` run as of its last day, in process, once per
    test session: (settings, train_job result, model event, report event). Tests that change
    the lake or the registry work on a copy of `settings.data`."""
    import dagster as dg

    from dagster_project.definitions import build_definitions
    from dagster_project.settings import Settings

    data = tmp_path_factory.mktemp("model_data")
    env = {
        "DIFFSTOCK_DATA": str(data),
        "DIFFSTOCK_RAW": str(tiny_market),
        "DIFFSTOCK_PROFILE": "tiny",
    }
    settings = Settings.from_env(env)
    defs = build_definitions(settings)
    with dg.instance_for_test() as instance:
        for day in TINY_DAYS:
            job = defs.resolve_job_def("ingest_job")
            assert job.execute_in_process(partition_key=day, instance=instance).success
        result = defs.resolve_job_def("train_job").execute_in_process(
            partition_key=TINY_DAYS[-1], instance=instance, raise_on_error=False
        )
        event = instance.get_latest_materialization_event(dg.AssetKey("diffusion_model"))
        report = instance.get_latest_materialization_event(dg.AssetKey("evaluation_report"))
    return settings, result, event, report
