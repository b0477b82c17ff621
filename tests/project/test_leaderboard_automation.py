"""The leaderboard follows the reports: a new `evaluation_report` partition requests it once."""

import datetime as dt
from pathlib import Path

import dagster as dg

from dagster_project.definitions import build_definitions
from dagster_project.sensors import refresh_leaderboard, retrain_latest_model
from dagster_project.settings import Settings

LEADERBOARD = dg.AssetKey("leaderboard")
EVENING = dt.datetime(2025, 11, 6, 20, 0, tzinfo=dt.UTC)


def _materialised(instance: dg.DagsterInstance, asset: str, day: str) -> None:
    instance.report_runless_asset_event(dg.AssetMaterialization(asset, partition=day))


def test_a_new_report_requests_the_leaderboard_once(tmp_path: Path) -> None:
    defs = build_definitions(Settings.from_env({"DIFFSTOCK_DATA": str(tmp_path)}))
    selection = dg.AssetSelection.assets(LEADERBOARD)

    def tick(instance: dg.DagsterInstance, cursor=None):
        return dg.evaluate_automation_conditions(
            defs, instance, asset_selection=selection, evaluation_time=EVENING, cursor=cursor
        )

    with dg.instance_for_test() as instance:
        first = tick(instance)
        assert first.get_num_requested(LEADERBOARD) == 0  # no report yet

        _materialised(instance, "forecasts", "20251104")  # forecasts alone: no new ranking
        second = tick(instance, first.cursor)
        assert second.get_num_requested(LEADERBOARD) == 0

        _materialised(instance, "evaluation_report", "20251104")
        third = tick(instance, second.cursor)
        assert third.get_num_requested(LEADERBOARD) == 1

        fourth = tick(instance, third.cursor)  # requested already: not again
        assert fourth.get_num_requested(LEADERBOARD) == 0

        _materialised(instance, "evaluation_report", "20251031")  # an old day re-evaluated
        fifth = tick(instance, fourth.cursor)
        assert fifth.get_num_requested(LEADERBOARD) == 1


def test_the_leaderboard_has_its_own_automation_sensor(tmp_path: Path) -> None:
    """An asset is evaluated by one automation sensor: the leaderboard's, not the retrain one."""
    defs = build_definitions(Settings.from_env({"DIFFSTOCK_DATA": str(tmp_path)}))
    graph = defs.resolve_asset_graph()
    assert refresh_leaderboard.asset_selection.resolve(graph) == {LEADERBOARD}
    retrained = retrain_latest_model.asset_selection.resolve(graph)
    assert LEADERBOARD not in retrained and dg.AssetKey("evaluation_report") in retrained
