"""The real CLI a user puts in CI: `dagster asset materialize` with a temporary DAGSTER_HOME."""

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import mlflow
import polars as pl
import pytest
from conftest import WriteFile, bar_line, utc
from mlflow import MlflowClient

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
    for an as-of day. A model the gate refuses makes the command exit non-zero and `champion`
    stays unset; one that passes becomes `champion` and the command exits 0.

    The tiny model trains for seconds, so the test makes each outcome certain: the refusal by
    setting the gate's baseline to the oracle through the run config (as a user can), the pass
    by handing the report the oracle's forecasts as the model's.
    """
    home = tmp_path / "dagster_home"
    home.mkdir()
    tracking = f"sqlite:///{tmp_path / 'data' / 'mlflow' / 'mlflow.db'}"
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "DIFFSTOCK_DATA": str(tmp_path / "data"),
        "DIFFSTOCK_RAW": str(tiny_market),
        "DIFFSTOCK_PROFILE": "tiny",
        "MLFLOW_TRACKING_URI": tracking,
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

    def materialize(selection: str, *options: str) -> subprocess.CompletedProcess:
        command = [*base, "--select", selection, *options]
        return subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
        )

    def gate(baseline: str, max_dm_pvalue: float, tolerance: float) -> str:
        config = {
            "promotion_baseline": baseline,
            "promotion_max_dm_pvalue": max_dm_pvalue,
            "promotion_coverage_tolerance": tolerance,
        }
        return json.dumps({"ops": {"evaluation_report": {"config": config}}})

    days = ["20251031", "20251103", "20251104"]
    ingest = materialize("clean_bars,features,windows", "--partition-range", "20251031...20251104")
    assert ingest.returncode == 0, ingest.stderr[-3000:]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs()
        status = instance.get_status_by_partition(dg.AssetKey("windows"), days, trading_days)
    assert len(runs) == 1  # the whole range in one run
    assert status == dict.fromkeys(days, dg.AssetPartitionStatus.MATERIALIZED)

    # 1. refused: the report is written and logged, the command fails, no champion
    refused = materialize(
        "diffusion_model,forecasts,evaluation_report",
        "--partition",
        days[-1],
        "--config-json",
        gate("oracle", 0.05, 0.03),
    )
    lake = tmp_path / "data" / "lake"
    report = lake / "evaluation_report" / days[-1] / "report.md"
    assert report.exists(), refused.stderr[-3000:]
    assert refused.returncode != 0
    assert "model_not_better_than_baseline" in refused.stderr
    assert "Not promoted" in report.read_text()
    summary = json.loads((lake / "diffusion_model" / days[-1] / "summary.json").read_text())
    registry = MlflowClient(tracking)
    name, version = summary["registered_model"], summary["registered_version"]
    aliases = registry.get_registered_model(name).aliases
    assert {alias: str(v) for alias, v in aliases.items()} == {"challenger": version}
    tags = registry.get_model_version(name, version).tags
    assert tags["as_of"] == days[-1] and tags["test_days"] == ",".join(summary["splits"]["test"])

    # 2. passes: a model that wins, made by giving the report the oracle's samples as the
    #    model's (the tiny model trains for seconds and cannot be relied on to win)
    table = lake / "forecasts" / days[-1] / "forecasts.parquet"
    frame = pl.read_parquet(table)
    oracle = frame.filter(pl.col("model") == "oracle").with_columns(model=pl.lit("diffusion"))
    pl.concat([frame.filter(pl.col("model") != "diffusion"), oracle]).write_parquet(table)
    passed = materialize(
        "evaluation_report",
        "--partition",
        days[-1],
        "--config-json",
        gate("ewma_gaussian", 0.05, 0.1),
    )
    assert passed.returncode == 0, passed.stderr[-3000:]
    aliases = registry.get_registered_model(name).aliases
    assert {alias: str(v) for alias, v in aliases.items()} == {
        "challenger": version,
        "champion": version,
    }
    assert "becomes champion: there is no champion yet" in report.read_text()
    mlflow.set_tracking_uri(tracking)
    champion = mlflow.pyfunc.load_model(f"models:/{name}@champion")  # what the README serves
    assert champion.metadata.run_id == summary["mlflow_run_id"]
