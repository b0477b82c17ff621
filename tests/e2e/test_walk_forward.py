"""The documented walk-forward command on a tiny market: a range of as-of days, then the
leaderboard, through `python -m dagster_project.walk_forward` in a subprocess."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from dagster_project.definitions import build_definitions
from dagster_project.settings import Settings
from diffstock_ml.synthetic import PROFILES, generate_market

ROOT = Path(__file__).resolve().parents[2]
SESSIONS = ("20251030", "20251031", "20251103", "20251104")
AS_OF = SESSIONS[2:]  # the tiny profile's 1/1/1 split: each as-of model needs 3 sessions
# Small budgets keep two as-of runs to a few minutes on two CPU cores.
FAST = {
    "ops": {
        "diffusion_model": {"config": {"max_steps": 10}},
        "forecasts": {
            "config": {
                "anchor_stride_s": 600,
                "n_samples": 32,
                "head_max_steps": 5,
                "direction_max_steps": 5,
            }
        },
    }
}


@pytest.mark.e2e
def test_a_range_of_as_of_days_then_the_leaderboard_is_one_command(tmp_path: Path) -> None:
    raw, home, data = tmp_path / "raw", tmp_path / "dagster_home", tmp_path / "data"
    generate_market(dataclasses.replace(PROFILES["tiny"], start=SESSIONS[0]), raw, workers=1)
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "DIFFSTOCK_DATA": str(data),
        "DIFFSTOCK_RAW": str(raw),
        "DIFFSTOCK_PROFILE": "tiny",
    }
    home.mkdir()
    defs = build_definitions(Settings.from_env(env))
    with dg.DagsterInstance.from_config(str(home)) as instance:  # the windows of every session
        for day in SESSIONS:
            job = defs.resolve_job_def("ingest_job")
            assert job.execute_in_process(partition_key=day, instance=instance).success

    command = [sys.executable, "-m", "dagster_project.walk_forward", "...".join(AS_OF)]
    completed = subprocess.run(
        [*command, "--config-json", json.dumps(FAST)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert completed.returncode == 0, (completed.stdout + completed.stderr)[-3000:]
    for day in AS_OF:
        assert f"train_job {day}: ok" in completed.stdout
    assert "leaderboard_job: ok" in completed.stdout

    with dg.DagsterInstance.from_config(str(home)) as instance:
        reports = instance.get_materialized_partitions(dg.AssetKey("evaluation_report"))
        event = instance.get_latest_materialization_event(dg.AssetKey("leaderboard"))
    assert reports == set(AS_OF)
    metadata = event.asset_materialization.metadata
    assert metadata["as_of_days"].value == ", ".join(AS_OF)
    assert "data:image/png;base64," in metadata["skill_by_day"].value

    # each as-of model scored its own test day; the CRPS is the report's, model by model
    lake = data / "lake"
    by_day = pl.read_parquet(lake / "leaderboard" / "latest" / "by_day.parquet")
    for day in AS_OF:
        report = pl.read_csv(lake / "evaluation_report" / day / "overall.csv")
        ours = by_day.filter(pl.col("day") == day)
        assert ours["as_of"].unique().to_list() == [day]
        expected = dict(zip(report["model"], report["crps_bp"], strict=True))
        assert set(ours["model"]) == set(expected)
        for model, crps in zip(ours["model"], ours["crps_bp"], strict=True):
            assert crps == pytest.approx(expected[model], rel=1e-9), (day, model)
    summary = pl.read_parquet(lake / "leaderboard" / "latest" / "summary.parquet")
    assert summary["in_mcs"].any() and (summary["n_days"] == len(AS_OF)).all()
