"""The new-trading-days sensor: new complete folders, catch-up, incomplete folders, cursor."""

import datetime as dt
import os
import time
from pathlib import Path

import dagster as dg
from conftest import WriteFile, bar_line, utc

from dagster_project.sensors import MARKER, new_trading_days
from diffstock_assets.resources import RawDataResource
from diffstock_ml.calendar import day_key, sessions_between

DAYS = ("20251103", "20251104", "20251105")
FORECASTS, REPORT = dg.AssetKey("forecasts"), dg.AssetKey("evaluation_report")


def _age(folder: Path, seconds: float) -> None:
    past = time.time() - seconds
    for path in [folder, *folder.iterdir()]:
        os.utime(path, (past, past))


def _evaluate(raw_root: Path, cursor: str | None = None) -> dg.SensorResult:
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(
            instance=instance, cursor=cursor, resources={"raw": RawDataResource(root=str(raw_root))}
        )
        return new_trading_days(context)


def _write_days(write_file: WriteFile, raw_root: Path, days=DAYS, age: float = 3600) -> None:
    for day in days:
        write_file(day, "AMD.csv", [bar_line("AMD", utc(day, "14:30:00"), 10.0)])
        _age(raw_root / day, age)


def test_every_missing_day_is_requested_once(write_file: WriteFile, raw_root: Path) -> None:
    _write_days(write_file, raw_root)
    result = _evaluate(raw_root)
    assert [r.partition_key for r in result.run_requests] == list(DAYS)
    assert [r.run_key for r in result.run_requests] == list(DAYS)
    again = _evaluate(raw_root, result.cursor)
    assert again.run_requests == [] and again.skip_reason


def test_a_new_day_after_the_cursor_is_picked_up(write_file: WriteFile, raw_root: Path) -> None:
    _write_days(write_file, raw_root, DAYS[:2])
    first = _evaluate(raw_root)
    _write_days(write_file, raw_root, DAYS[2:])
    second = _evaluate(raw_root, first.cursor)
    assert [r.partition_key for r in second.run_requests] == [DAYS[2]]


def test_a_folder_still_being_written_waits_unless_marked(
    write_file: WriteFile, raw_root: Path
) -> None:
    _write_days(write_file, raw_root, DAYS[:1], age=5)  # touched 5 s ago
    assert _evaluate(raw_root).run_requests == []
    (raw_root / DAYS[0] / MARKER).write_text("")
    assert [r.partition_key for r in _evaluate(raw_root).run_requests] == [DAYS[0]]


def test_folders_that_are_not_sessions_are_ignored(write_file: WriteFile, raw_root: Path) -> None:
    _write_days(write_file, raw_root, ("20251127", "20251103"))  # Thanksgiving and a session
    (raw_root / "scratch").mkdir()
    assert [r.partition_key for r in _evaluate(raw_root).run_requests] == ["20251103"]


def test_a_day_whose_partition_has_not_opened_waits(write_file: WriteFile, raw_root: Path) -> None:
    soon = dt.date.today() + dt.timedelta(days=2)
    future = day_key(sessions_between(soon, soon + dt.timedelta(days=10))[0])
    _write_days(write_file, raw_root, (future,))
    assert _evaluate(raw_root).run_requests == []


def _windows_built(instance: dg.DagsterInstance, day: str, *, passed: bool = True) -> None:
    """What an ingest run of `day` records: the windows and their blocking check."""
    instance.report_runless_asset_event(dg.AssetMaterialization("windows", partition=day))
    instance.report_runless_asset_event(
        dg.AssetCheckEvaluation(
            asset_key=dg.AssetKey("windows"),
            check_name="nonfinite_feature_at_anchor",
            passed=passed,
            severity=dg.AssetCheckSeverity.ERROR,
            description=f"{day}: ...",
        )
    )


def test_the_newest_model_retrains_and_is_evaluated_once_its_windows_passed_their_checks(
    tmp_path: Path,
) -> None:
    from dagster_project.definitions import build_definitions
    from dagster_project.settings import Settings

    env = {"DIFFSTOCK_DATA": str(tmp_path), "DIFFSTOCK_PROFILE": "tiny"}
    defs = build_definitions(Settings.from_env(env))
    model = dg.AssetKey("diffusion_model")
    evening = dt.datetime(2025, 11, 5, 20, 0, tzinfo=dt.UTC)  # after 20251104 closed... and ended
    with dg.instance_for_test() as instance:
        for day in ("20251031", "20251103"):
            _windows_built(instance, day)
        first = dg.evaluate_automation_conditions(defs, instance, evaluation_time=evening)
        assert first.get_requested_partitions(model) == set()  # 20251104 windows missing

        _windows_built(instance, "20251104", passed=False)  # a NaN at an anchor: blocked
        second = dg.evaluate_automation_conditions(
            defs, instance, evaluation_time=evening, cursor=first.cursor
        )
        assert second.get_requested_partitions(model) == set()

        _windows_built(instance, "20251104")  # fixed and rebuilt
        third = dg.evaluate_automation_conditions(
            defs, instance, evaluation_time=evening, cursor=second.cursor
        )
        # one run trains, forecasts and evaluates it (the report reads the model too)
        for key in (model, FORECASTS, REPORT):
            assert third.get_requested_partitions(key) == {"20251104"}, key

        for key in (model, FORECASTS, REPORT):  # that run's materialisations
            instance.report_runless_asset_event(dg.AssetMaterialization(key, partition="20251104"))
        fourth = dg.evaluate_automation_conditions(
            defs, instance, evaluation_time=evening, cursor=third.cursor
        )
        # nothing runs twice; the new report only brings the walk-forward leaderboard up to date
        assert fourth.get_num_requested(dg.AssetKey("leaderboard")) == 1
        assert fourth.total_requested == 1


def test_a_folder_of_gzipped_files_is_complete_once_quiet(tmp_path: Path) -> None:
    from dagster_project.sensors import folder_is_complete

    folder = tmp_path / "20251103"
    folder.mkdir()
    (folder / "AMD.csv.gz").write_bytes(b"")
    assert not folder_is_complete(folder, now=time.time())  # just written
    assert folder_is_complete(folder, now=time.time() + 3600)
