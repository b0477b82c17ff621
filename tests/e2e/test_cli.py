"""The real CLI a user puts in CI: `dagster asset materialize` with a temporary DAGSTER_HOME."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import mlflow
import polars as pl
import pytest
from conftest import TINY_DAYS, WriteFile, bar_line, utc
from mlflow import MlflowClient

from dagster_project.definitions import build_definitions
from dagster_project.settings import Settings
from diffstock_assets.partitions import trading_days

ROOT = Path(__file__).resolve().parents[2]
DAYS = ("20251031", "20251103")


def _materialize(env: dict, *arguments: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "dagster", "asset", "materialize"]
    command += ["-m", "dagster_project.definitions", *arguments]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.e2e
def test_materialize_a_range_of_days_through_the_cli(
    tmp_path: Path, write_file: WriteFile, raw_root: Path
) -> None:
    """`--partition-range` is one run with one materialisation per day; a bad row is named."""
    write_file(DAYS[0], "AMD.csv", [bar_line("AMD", utc(DAYS[0], "13:30:00"), 100.0)])
    write_file(DAYS[1], "AMD.csv", [bar_line("AMD", utc(DAYS[1], "14:30:00"), 100.0), "garbage"])
    home = tmp_path / "dagster_home"
    home.mkdir()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "DIFFSTOCK_DATA": str(tmp_path / "data"),
        "DIFFSTOCK_RAW": str(raw_root),
    }
    completed = _materialize(
        env, "--select", "clean_bars,features,windows", "--partition-range", "...".join(DAYS)
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "AMD.csv line 3: missing_field" in completed.stderr

    for day in DAYS:
        bars = pl.read_parquet(tmp_path / "data" / "lake" / "clean_bars" / day / "bars.parquet")
        assert bars.height == 23_400
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs()
        status = instance.get_status_by_partition(dg.AssetKey("windows"), list(DAYS), trading_days)
    assert len(runs) == 1  # the whole range in one run
    assert status == dict.fromkeys(DAYS, dg.AssetPartitionStatus.MATERIALIZED)


@pytest.mark.e2e
def test_the_report_through_the_cli_gates_ci(tmp_path: Path, tiny_trained, tiny_market) -> None:
    """What a user's CI runs last: the report for an as-of day. A model the gate refuses makes
    the command exit non-zero and `champion` does not move; one that passes becomes `champion`
    and the command exits 0.

    On a copy of the tiny market's trained lake and registry. The tiny model trains for seconds,
    so the test makes each outcome certain: the refusal by setting the gate's baseline to the
    oracle through the run config (as a user can), the pass by handing the report the oracle's
    forecasts as the model's.
    """
    settings = tiny_trained[0]
    data = tmp_path / "data"
    shutil.copytree(settings.data, data)
    home = tmp_path / "dagster_home"
    home.mkdir()
    tracking = f"sqlite:///{data / 'mlflow' / 'mlflow.db'}"
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "DIFFSTOCK_DATA": str(data),
        "DIFFSTOCK_RAW": str(tiny_market),
        "DIFFSTOCK_PROFILE": "tiny",
        "MLFLOW_TRACKING_URI": tracking,
    }
    lake, day = data / "lake", TINY_DAYS[-1]
    summary = json.loads((lake / "diffusion_model" / day / "summary.json").read_text())
    registry = MlflowClient(tracking)
    name, version = summary["registered_model"], summary["registered_version"]
    if "champion" in registry.get_registered_model(name).aliases:  # start without a champion
        registry.delete_registered_model_alias(name, "champion")

    def aliases() -> dict[str, str]:
        return {a: str(v) for a, v in registry.get_registered_model(name).aliases.items()}

    def gate(baseline: str, max_dm_pvalue: float, tolerance: float) -> str:
        config = {
            "promotion_baseline": baseline,
            "promotion_max_dm_pvalue": max_dm_pvalue,
            "promotion_coverage_tolerance": tolerance,
        }
        return json.dumps({"ops": {"evaluation_report": {"config": config}}})

    # 1. refused: the report is written and logged, the command fails, no champion
    refused = _materialize(
        env,
        "--select",
        "evaluation_report",
        "--partition",
        day,
        "--config-json",
        gate("oracle", 0.05, 0.03),
    )
    report = lake / "evaluation_report" / day / "report.md"
    assert refused.returncode != 0, refused.stderr[-3000:]
    assert "model_not_better_than_baseline" in refused.stderr
    assert "Not promoted" in report.read_text() and "does not beat oracle" in report.read_text()
    assert aliases() == {"challenger": version}
    tags = registry.get_model_version(name, version).tags
    assert tags["as_of"] == day and tags["test_days"] == ",".join(summary["splits"]["test"])

    # 2. passes: a model that wins, made by giving the report the oracle's samples as the
    #    model's (the tiny model trains for seconds and cannot be relied on to win). In
    #    process, on the same instance: the CLI's exit status 0 is proven by the range test,
    #    and a third CLI start would cost ~30 s of imports.
    table = lake / "forecasts" / day / "forecasts.parquet"
    frame = pl.read_parquet(table)
    oracle = frame.filter(pl.col("model") == "oracle").with_columns(model=pl.lit("diffusion"))
    pl.concat([frame.filter(pl.col("model") != "diffusion"), oracle]).write_parquet(table)
    job = build_definitions(Settings.from_env(env)).resolve_job_def("train_job")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        passed = job.execute_in_process(
            run_config=json.loads(gate("ewma_gaussian", 0.05, 0.1)),
            instance=instance,
            partition_key=day,
            asset_selection=[dg.AssetKey("evaluation_report")],
        )
    assert passed.success
    assert aliases() == {"challenger": version, "champion": version}
    assert "becomes champion: there is no champion yet" in report.read_text()
    mlflow.set_tracking_uri(tracking)
    champion = mlflow.pyfunc.load_model(f"models:/{name}@champion")  # what the README serves
    assert champion.metadata.run_id == summary["mlflow_run_id"]
