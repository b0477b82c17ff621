"""The real CLI a user puts in CI: `dagster asset materialize` with a temporary DAGSTER_HOME."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from conftest import WriteFile, bar_line, utc

from diffstock_assets.partitions import trading_days

ROOT = Path(__file__).resolve().parents[2]
DAY = "20251103"


@pytest.mark.e2e
def test_materialize_a_day_through_the_cli(
    tmp_path: Path, write_file: WriteFile, raw_root: Path
) -> None:
    write_file(DAY, "AMD.csv", [bar_line("AMD", utc(DAY, "14:30:00"), 100.0), "garbage"])
    home = tmp_path / "dagster_home"
    home.mkdir()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "DIFFSTOCK_DATA": str(tmp_path / "data"),
        "DIFFSTOCK_RAW": str(raw_root),
    }
    command = [sys.executable, "-m", "dagster", "asset", "materialize"]
    selection = "clean_bars,features,windows"
    command += ["-m", "dagster_project.definitions", "--select", selection, "--partition", DAY]
    completed = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "AMD.csv line 3: missing_field" in completed.stderr

    bars = pl.read_parquet(tmp_path / "data" / "lake" / "clean_bars" / DAY / "bars.parquet")
    assert bars.height == 23_400
    with dg.DagsterInstance.from_config(str(home)) as instance:
        status = instance.get_status_by_partition(dg.AssetKey("clean_bars"), [DAY], trading_days)
    assert status == {DAY: dg.AssetPartitionStatus.MATERIALIZED}


@pytest.mark.e2e
def test_model_and_report_through_the_cli_gate_ci(tmp_path: Path, tiny_market: Path) -> None:
    """What a user's CI runs: ingest a range of days in one run, then model + forecasts + report
    for an as-of day.

    The tiny model is not better than EWMA, so the blocking promotion check makes the command
    exit non-zero — after the report has been written and logged.
    """
    home = tmp_path / "dagster_home"
    home.mkdir()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "DIFFSTOCK_DATA": str(tmp_path / "data"),
        "DIFFSTOCK_RAW": str(tiny_market),
        "DIFFSTOCK_PROFILE": "tiny",
    }
    base = [
        sys.executable,
        "-m",
        "dagster",
        "asset",
        "materialize",
        "-m",
        "dagster_project.definitions",
    ]

    def materialize(selection: str, *partition: str) -> subprocess.CompletedProcess:
        command = [*base, "--select", selection, *partition]
        return subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
        )

    days = ["20251031", "20251103", "20251104"]
    ingest = materialize("clean_bars,features,windows", "--partition-range", "20251031...20251104")
    assert ingest.returncode == 0, ingest.stderr[-3000:]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs()
        status = instance.get_status_by_partition(dg.AssetKey("windows"), days, trading_days)
    assert len(runs) == 1  # the whole range in one run
    assert status == dict.fromkeys(days, dg.AssetPartitionStatus.MATERIALIZED)

    completed = materialize("diffusion_model,forecasts,evaluation_report", "--partition", days[-1])
    report = tmp_path / "data" / "lake" / "evaluation_report" / "20251104" / "report.md"
    assert report.exists(), completed.stderr[-3000:]
    if completed.returncode != 0:  # refused by the gate, and only by it
        assert "model_not_better_than_baseline" in completed.stderr
        assert "Not promoted" in report.read_text()
