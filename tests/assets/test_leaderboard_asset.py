"""The `leaderboard` asset on hand-made forecasts tables: which as-of days it reads, what it
writes to the lake, to MLflow and to its metadata."""

import datetime as dt
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest
from mlflow import MlflowClient

from diffstock_assets.evaluation.leaderboard import leaderboard
from diffstock_assets.mlflow_resource import MLflowResource
from diffstock_assets.resources import (
    FORECAST_SAMPLES,
    LATEST,
    LEADERBOARD_BY_DAY,
    LEADERBOARD_DOCUMENT,
    LEADERBOARD_FIGURE,
    LEADERBOARD_SUMMARY,
    LakeResource,
)
from diffstock_ml.evaluation import EvaluationConfig, score_anchors
from diffstock_ml.forecasting import to_model_forecasts

AS_OF = ("20251103", "20251104", "20251105")  # one test day each (the as-of day itself)
SYMBOLS = ("AAA", "BBB")
SIGMA = 1e-3
MODELS = {"oracle": 1.0, "ewma_gaussian": 1.5, "wide": 4.0}  # sample scale in units of SIGMA


def forecasts_table(day: str) -> pl.DataFrame:
    """A `forecasts.parquet` of one test day: 60 anchors per symbol, 30 s apart, every model."""
    seconds = np.repeat(600 + 30 * np.arange(60), len(SYMBOLS)).astype(np.int32)
    open_utc = dt.datetime.strptime(day, "%Y%m%d").replace(hour=14, minute=30, tzinfo=dt.UTC)
    rng = np.random.default_rng(int(day))
    context = pl.DataFrame(
        {
            "day": day,
            "symbol": np.tile(SYMBOLS, 60),
            "second": seconds,
            "ts": [open_utc + dt.timedelta(seconds=int(s)) for s in seconds],
            "target": rng.normal(0.0, SIGMA, len(seconds)),
            "sigma": SIGMA,
            "close": 50.0,
            "seconds_since_open": seconds.astype(np.float64),
            "last_1s_return": 0.0,
        }
    )
    frames = [
        context.with_columns(
            pl.lit(name).alias("model"),
            pl.Series(
                "samples",
                rng.normal(0.0, scale * SIGMA, (len(seconds), 32)),
                dtype=pl.Array(pl.Float64, 32),
            ),
        )
        for name, scale in MODELS.items()
    ]
    return pl.concat(frames)


@pytest.fixture
def resources(tmp_path: Path) -> dict:
    return {
        "lake": LakeResource(root=str(tmp_path / "lake")),
        "mlflow": MLflowResource(
            tracking_uri=f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}",
            artifact_location=str(tmp_path / "mlflow" / "artifacts"),
        ),
    }


def test_the_leaderboard_ranks_the_materialised_reports_as_of_days(resources: dict) -> None:
    lake: LakeResource = resources["lake"]
    for day in AS_OF:
        lake.write_table(FORECAST_SAMPLES, day, forecasts_table(day))
    with dg.instance_for_test() as instance:
        for day in AS_OF[:2]:  # the third as-of day has forecasts but no report: left out
            instance.report_runless_asset_event(
                dg.AssetMaterialization("evaluation_report", partition=day)
            )
        result = dg.materialize([leaderboard], instance=instance, resources=resources)
        assert result.success
        metadata = result.asset_materializations_for_node("leaderboard")[0].metadata

    by_day = lake.read_table(LEADERBOARD_BY_DAY, LATEST)
    assert sorted(by_day["day"].unique()) == list(AS_OF[:2])
    assert (by_day["as_of"] == by_day["day"]).all()
    # the CRPS of a day is the report's per-anchor CRPS of that as-of's forecasts, averaged
    forecasts = to_model_forecasts(lake.read_table(FORECAST_SAMPLES, AS_OF[1]))
    expected = score_anchors(forecasts["oracle"], EvaluationConfig())["crps_bp"].mean()
    row = by_day.filter(pl.col("day") == AS_OF[1], pl.col("model") == "oracle")
    assert row["crps_bp"].item() == pytest.approx(expected, rel=1e-12)

    summary = lake.read_table(LEADERBOARD_SUMMARY, LATEST)
    assert summary["model"].to_list() == ["oracle", "ewma_gaussian", "wide"]
    assert not summary.filter(pl.col("model") == "wide")["in_mcs"].item()
    assert lake.has_file(LEADERBOARD_FIGURE, LATEST)
    assert "Walk-forward leaderboard" in lake.local_file(LEADERBOARD_DOCUMENT, LATEST).read_text()

    assert metadata["as_of_days"].value == "20251103, 20251104"
    assert "| oracle" in metadata["summary"].value
    assert "data:image/png;base64," in metadata["skill_by_day"].value
    assert metadata["model_confidence_set"].value.startswith("oracle")
    client = MlflowClient(resources["mlflow"].tracking_uri)
    run = client.get_run(metadata["mlflow_run_id"].value)
    assert run.info.run_name == "leaderboard"
    assert run.data.tags["as_of_days"] == "20251103,20251104"
    oracle = summary.filter(pl.col("model") == "oracle").row(0, named=True)
    assert run.data.metrics["oracle/crps_bp"] == pytest.approx(oracle["crps_bp"])
    assert run.data.metrics["oracle/in_mcs"] == 1.0
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"leaderboard.md", "summary.parquet", "skill_by_day.png"} <= artifacts


def test_without_an_evaluated_as_of_day_the_failure_says_what_to_run(resources: dict) -> None:
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [leaderboard], instance=instance, resources=resources, raise_on_error=False
        )
    assert not result.success
    (failure,) = result.get_step_failure_events()
    message = failure.step_failure_data.error.message
    assert "no evaluation_report partition is materialised" in message
    assert "train_job" in message


def test_a_missing_baseline_fails_naming_the_as_of_day(resources: dict) -> None:
    lake: LakeResource = resources["lake"]
    table = forecasts_table(AS_OF[0]).filter(pl.col("model") != "ewma_gaussian")
    lake.write_table(FORECAST_SAMPLES, AS_OF[0], table)
    with dg.instance_for_test() as instance:
        instance.report_runless_asset_event(
            dg.AssetMaterialization("evaluation_report", partition=AS_OF[0])
        )
        result = dg.materialize(
            [leaderboard], instance=instance, resources=resources, raise_on_error=False
        )
    (failure,) = result.get_step_failure_events()
    assert "as-of 20251103 has no forecasts of the baseline 'ewma_gaussian'" in (
        failure.step_failure_data.error.message
    )
