"""In-process materialisation of `clean_bars` for two days, checks and metadata included."""

import dataclasses
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from conftest import WriteFile, bar_line, utc
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from dagster_project.definitions import build_definitions
from dagster_project.settings import Settings
from diffstock_assets.ingest.assets import clean_bars
from diffstock_assets.partitions import trading_days

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


def _run_range(job: dg.JobDefinition, instance: dg.DagsterInstance, first: str, last: str):
    """What `--partition-range first...last` and a UI backfill do: one run over the range."""
    tags = {
        ASSET_PARTITION_RANGE_START_TAG: first,
        ASSET_PARTITION_RANGE_END_TAG: last,
    }
    return job.execute_in_process(instance=instance, tags=tags, raise_on_error=False)


def test_a_partition_range_is_one_run_with_one_event_per_day(
    tmp_path: Path, two_days: Path
) -> None:
    job = _defs(tmp_path, two_days).resolve_job_def("ingest_job")
    with dg.instance_for_test() as instance:
        result = _run_range(job, instance, *DAYS)
        assert result.success
        events = {
            asset: {e.partition: e.metadata for e in result.asset_materializations_for_node(asset)}
            for asset in ("clean_bars", "features", "windows")
        }
        statuses = instance.get_status_by_partition(clean_bars.key, list(DAYS), trading_days)
    assert statuses == dict.fromkeys(DAYS, dg.AssetPartitionStatus.MATERIALIZED)
    for asset, by_day in events.items():
        assert sorted(by_day) == list(DAYS), asset
        for day, metadata in by_day.items():  # each day carries its own metadata
            assert f"/{asset}/{day}" in metadata["path"].value
    assert events["clean_bars"][DAYS[0]]["quarantined_rows"].value == 0
    assert events["clean_bars"][DAYS[1]]["quarantined_rows"].value == 1

    # one result per check for the run: passed only if every day passed, failing days named
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    quarantine = checks["too_many_quarantined_rows"]
    assert not quarantine.passed and quarantine.severity == dg.AssetCheckSeverity.WARN
    assert quarantine.metadata["failed_days"].value == DAYS[1]
    assert quarantine.metadata["days"].value == 2
    grid = checks["incomplete_grid"]
    assert grid.passed and grid.metadata["failed_days"].value == "none"


def test_a_range_stops_at_the_first_missing_day_and_names_it(
    tmp_path: Path, two_days: Path
) -> None:
    job = _defs(tmp_path, two_days).resolve_job_def("ingest_job")
    with dg.instance_for_test() as instance:
        result = _run_range(job, instance, DAYS[0], "20251104")  # 20251104 has no folder
    assert not result.success
    error = result.get_step_failure_events()[0].step_failure_data.error
    assert "clean_bars 20251104" in error.message
    assert "No raw folder for session 20251104" in error.cause.message


def test_a_day_that_fails_a_blocking_check_stops_everything_downstream(
    tmp_path: Path, two_days: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cleaner that emits a duplicated second (a bug, or a corrupt stage) blocks the day: its
    features and windows are not built in that run, nor by any later run, nor by training."""
    import diffstock_assets.ingest.assets as ingest_assets

    def clean_with_a_duplicate(*args, **kwargs):
        result = real_clean_day(*args, **kwargs)
        bars = pl.concat([result.bars, result.bars.slice(3, 1)]).sort("symbol", "ts")
        return dataclasses.replace(result, bars=bars)

    real_clean_day = ingest_assets.clean_day
    defs = _defs(tmp_path, two_days)
    lake = tmp_path / "data" / "lake"
    with dg.instance_for_test() as instance:
        monkeypatch.setattr(ingest_assets, "clean_day", clean_with_a_duplicate)
        result = defs.resolve_job_def("ingest_job").execute_in_process(
            partition_key=DAYS[0], instance=instance, raise_on_error=False
        )
        monkeypatch.undo()
        assert not result.success
        checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
        assert not checks["duplicate_symbol_second"].passed
        assert checks["duplicate_symbol_second"].description == (
            f"{DAYS[0]}: 1 duplicated rows: AMD 13:30:03 UTC x2"
        )
        materialised = {
            e.asset_key.to_user_string() for e in result.get_asset_materialization_events()
        }
        assert materialised == {"clean_bars"}  # kept for inspection; nothing downstream ran
        assert not (lake / "features").exists() and not (lake / "windows").exists()

        # a later run of the downstream assets alone refuses the day, naming the check
        later = defs.resolve_implicit_global_asset_job_def().get_subset(
            asset_selection={dg.AssetKey("features")}
        )
        refused = later.execute_in_process(
            partition_key=DAYS[0], instance=instance, raise_on_error=False
        )
    assert not refused.success
    error = refused.get_step_failure_events()[0].step_failure_data.error
    assert f"features {DAYS[0]} refuses clean_bars {DAYS[0]}" in error.message
    assert "duplicate_symbol_second (20251031: 1 duplicated rows" in error.message
    assert not (lake / "features").exists()


def test_a_day_killed_mid_write_reads_as_unfinished(tmp_path: Path) -> None:
    from diffstock_assets.gates import pending_frame, require_passed, write_file_verdict
    from diffstock_assets.resources import LakeResource

    lake = LakeResource(root=str(tmp_path / "lake"))
    with pytest.raises(dg.Failure, match="has no check verdict"):
        require_passed(lake, "clean_bars", DAYS[0], needed_by="test")
    write_file_verdict(lake, "clean_bars", DAYS[0], pending_frame())  # what a killed run leaves
    with pytest.raises(dg.Failure, match=f"refuses clean_bars {DAYS[0]}: its last run did not"):
        require_passed(lake, "clean_bars", DAYS[0], needed_by="test")


def test_an_empty_day_folder_fails_with_what_it_holds(tmp_path: Path, two_days: Path) -> None:
    (two_days / "20251104").mkdir()
    (two_days / "20251104" / "notes.txt").write_text("copy pending")
    with dg.instance_for_test() as instance:
        result = (
            _defs(tmp_path, two_days)
            .resolve_job_def("ingest_job")
            .execute_in_process(partition_key="20251104", instance=instance, raise_on_error=False)
        )
    assert not result.success
    error = result.get_step_failure_events()[0].step_failure_data.error
    assert "20251104: the raw folder" in error.message
    assert "holds no SYMBOL.csv (or .csv.gz) files (found: notes.txt" in error.message


def test_console_failures_are_one_line_without_the_stack_trace() -> None:
    import logging

    from diffstock_assets.console import OneLineErrors

    message = (
        'Execution of step "clean_bars" failed.\n\n'
        "dagster._core.definitions.events.Failure: No raw folder for session 20251104.\n\n"
        'Stack Trace:\n  File "x.py", line 1, in f\n'
    )
    record = logging.LogRecord("dagster", logging.ERROR, "", 0, message, None, None)
    OneLineErrors().filter(record)
    assert record.getMessage() == (
        'Execution of step "clean_bars" failed. Failure: No raw folder for session 20251104.'
    )
