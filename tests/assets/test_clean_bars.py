"""In-process materialisation of `clean_bars` for two days, checks and metadata included."""

from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from conftest import WriteFile, bar_line, utc

from dagster_project.definitions import build_definitions
from dagster_project.settings import Settings
from diffstock_assets.ingest.assets import clean_bars

DAYS = ("20251031", "20251103")


@pytest.fixture
def two_days(write_file: WriteFile, raw_root: Path) -> Path:
    for day, open_hms in zip(DAYS, ("13:30", "14:30"), strict=True):
        for symbol, price in (("AMD", 100.0), ("F", 12.0)):
            lines = [
                bar_line(symbol, utc(day, f"{open_hms}:{s:02d}"), price + s / 100)
                for s in range(0, 60, 2)
            ]
            write_file(day, f"{symbol}.csv", lines)
    write_file(DAYS[1], "F.csv", [*lines, "garbage line"])  # one bad row on the second day
    return raw_root


def _defs(tmp_path: Path, raw: Path) -> dg.Definitions:
    env = {"DIFFSTOCK_DATA": str(tmp_path / "data"), "DIFFSTOCK_RAW": str(raw)}
    return build_definitions(Settings.from_env(env))


def test_two_days_materialise_with_checks(tmp_path: Path, two_days: Path) -> None:
    defs = _defs(tmp_path, two_days)
    job = defs.resolve_job_def("ingest_job")
    with dg.instance_for_test() as instance:
        _materialise_and_check(job, instance)
        materialized = instance.get_latest_materialization_event(clean_bars.key)
    assert materialized is not None
    metadata = materialized.asset_materialization.metadata
    assert metadata["rows"].value == 2 * 23_400
    assert metadata["symbols"].value == 2
    assert metadata["quarantined_by_reason"].value == {"missing_field": 1}
    assert "F.csv" in metadata["files"].value

    lake = tmp_path / "data" / "lake" / "clean_bars"
    assert sorted(p.name for p in lake.iterdir()) == list(DAYS)
    bars = pl.read_parquet(lake / DAYS[1] / "bars.parquet")
    assert bars.height == 2 * 23_400
    quarantine = pl.read_parquet(lake / DAYS[1] / "quarantine.parquet")
    assert quarantine.select("file", "line", "reason").rows() == [("F.csv", 32, "missing_field")]


def _materialise_and_check(job: dg.JobDefinition, instance: dg.DagsterInstance) -> None:
    for day in DAYS:
        result = job.execute_in_process(partition_key=day, instance=instance)
        assert result.success
        checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
        assert checks["incomplete_grid"] and checks["schema_mismatch"]
        assert checks["close_outside_high_low"] and checks["duplicate_symbol_second"]
        assert checks["too_many_quarantined_rows"] == (day == DAYS[0])


def test_missing_day_folder_fails_with_the_path(tmp_path: Path, two_days: Path) -> None:
    defs = _defs(tmp_path, two_days)
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("ingest_job").execute_in_process(
            partition_key="20251104", instance=instance, raise_on_error=False
        )
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error
    assert "No raw folder for session 20251104" in failure.message
