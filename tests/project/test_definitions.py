"""A snapshot of what the code location exposes, and Dagster's own validation of it."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from dagster_project.definitions import build_definitions
from dagster_project.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def _defs(tmp_path: Path) -> dg.Definitions:
    return build_definitions(Settings.from_env({"DIFFSTOCK_DATA": str(tmp_path)}))


def test_asset_keys_checks_and_jobs_snapshot(tmp_path: Path) -> None:
    defs = _defs(tmp_path)
    graph = defs.resolve_asset_graph()
    assert sorted(k.to_user_string() for k in graph.get_all_asset_keys()) == [
        "clean_bars",
        "diffusion_model",
        "evaluation_report",
        "features",
        "forecasts",
        "leaderboard",
        "windows",
    ]
    assert sorted(k.to_user_string() for k in graph.asset_check_keys) == [
        "clean_bars:close_outside_high_low",
        "clean_bars:duplicate_symbol_second",
        "clean_bars:incomplete_grid",
        "clean_bars:schema_mismatch",
        "clean_bars:too_many_quarantined_rows",
        "clean_bars:too_many_stale_seconds",
        "evaluation_report:model_not_better_than_baseline",
        "features:implausible_target_scale",
        "windows:nonfinite_feature_at_anchor",
        "windows:too_few_valid_anchors",
    ]
    upstream = {
        k.to_user_string(): sorted(p.to_user_string() for p in graph.get(k).parent_keys)
        for k in graph.get_all_asset_keys()
    }
    assert upstream == {
        "clean_bars": [],
        "features": ["clean_bars"],
        "windows": ["features"],
        "diffusion_model": ["windows"],
        "forecasts": ["diffusion_model", "windows"],
        "evaluation_report": ["diffusion_model", "forecasts"],
        "leaderboard": ["evaluation_report", "forecasts"],
    }
    assert sorted(job.name for job in defs.resolve_all_job_defs()) == [
        "__ASSET_JOB",
        "ingest_job",
        "leaderboard_job",
        "train_job",
    ]
    assert sorted(s.name for s in defs.sensors) == [
        "new_trading_days",
        "refresh_leaderboard",
        "retrain_latest_model",
    ]
    train = defs.resolve_job_def("train_job").asset_layer.executable_asset_keys
    assert dg.AssetKey("leaderboard") not in train  # unpartitioned: its own job and sensor


def test_every_asset_but_the_leaderboard_is_partitioned_by_trading_day(tmp_path: Path) -> None:
    graph = _defs(tmp_path).resolve_asset_graph()
    leaderboard = dg.AssetKey("leaderboard")
    assert graph.get(leaderboard).partitions_def is None  # one ranking over every as-of day
    for key in graph.get_all_asset_keys() - {leaderboard}:
        partitions = graph.get(key).partitions_def
        assert isinstance(partitions, dg.DailyPartitionsDefinition), key
        assert partitions.fmt == "%Y%m%d"


def test_dagster_definitions_validate(tmp_path: Path) -> None:
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "DIFFSTOCK_DATA": str(tmp_path)}
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "dagster",
            "definitions",
            "validate",
            "-m",
            "dagster_project.definitions",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]


def test_settings_defaults_live_under_one_data_folder(tmp_path: Path) -> None:
    settings = Settings.from_env({"DIFFSTOCK_DATA": str(tmp_path)})
    assert settings.raw == tmp_path / "demo" / "raw" and settings.raw_is_demo
    assert settings.lake == str(tmp_path / "lake")
    assert settings.mlflow_tracking_uri == f"sqlite:///{tmp_path}/mlflow/mlflow.db"
    assert settings.dagster_home == tmp_path / "dagster_home"
    assert settings.device == "auto"


def test_the_model_maps_back_over_the_profile_s_days(tmp_path: Path) -> None:
    for profile, days in (("demo", 10), ("full", 40)):
        env = {"DIFFSTOCK_DATA": str(tmp_path), "DIFFSTOCK_PROFILE": profile}
        graph = build_definitions(Settings.from_env(env)).resolve_asset_graph()
        model = graph.get(dg.AssetKey("diffusion_model"))
        assert model.pools == {"gpu"}
        mapping = model.assets_def.get_partition_mapping(dg.AssetKey("windows"))
        assert mapping.start_offset == -(days - 1) and mapping.end_offset == 0


def test_an_unknown_profile_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="DIFFSTOCK_PROFILE='huge' is not one of"):
        build_definitions(
            Settings.from_env({"DIFFSTOCK_DATA": str(tmp_path), "DIFFSTOCK_PROFILE": "huge"})
        )


def test_steps_fork_from_one_import_of_the_code_location_where_the_platform_can(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import dagster_project.definitions as definitions

    preload = {"forkserver": {"preload_modules": ["dagster_project.definitions"]}}
    monkeypatch.setattr(definitions.sys, "platform", "linux")
    assert definitions.step_start() == {"start_method": preload}
    for platform in ("win32", "darwin"):
        monkeypatch.setattr(definitions.sys, "platform", platform)
        assert definitions.step_start() == {}  # Dagster's default, spawn
    job = _defs(tmp_path).resolve_job_def("ingest_job")
    assert job.executor_def.name == "multiprocess"
