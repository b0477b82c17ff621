"""train_job on the tiny profile: the model, its forecasts and its evaluation report in MLflow."""

from pathlib import Path

import dagster as dg
import mlflow
import numpy as np
import polars as pl
import pytest
from conftest import TINY_DAYS as DAYS
from mlflow import MlflowClient

from diffstock_assets.partitions import sessions_ending
from diffstock_ml.windows import load_day_arrays


@pytest.fixture(scope="module")
def trained(tiny_trained):
    return tiny_trained


def test_training_asset_logs_an_mlflow_run_with_everything(trained) -> None:
    settings, _result, event, _ = trained
    metadata = event.asset_materialization.metadata
    for key in (
        "mlflow_run_id",
        "mlflow_run",
        "train_days",
        "val_days",
        "test_days",
        "windows_train",
        "best_val_crps_bp",
        "wall_time_s",
        "device",
        "parameters",
        "registered_version",
    ):
        assert key in metadata, key
    assert metadata["train_days"].value == DAYS[0] and metadata["test_days"].value == DAYS[2]
    assert metadata["device"].value == "cpu"

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    client = MlflowClient()
    run = client.get_run(metadata["mlflow_run_id"].value)
    assert run.data.params["model.patch_size"] == "10" and run.data.params["splits.test"]
    assert run.data.tags["as_of"] == DAYS[-1]
    losses = client.get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in losses] == [10, 20, 30, 40]
    assert len(client.get_metric_history(run.info.run_id, "val_crps_bp")) == 2
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"summary.json", "normaliser.json", "config.json", "checkpoint"} <= artifacts
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.artifact_location.endswith(str(settings.mlflow_artifacts).lstrip("/")) or (
        str(settings.mlflow_artifacts) in experiment.artifact_location
    )
    version = metadata["registered_version"].value
    model = mlflow.pyfunc.load_model(f"models:/diffstock-diffusion/{version}")
    arrays = load_day_arrays(Path(settings.lake) / "windows" / DAYS[-1])
    s, t = arrays.anchors[:3, 0], arrays.anchors[:3, 1]
    windows = np.stack([arrays.x[a, b - 119 : b + 1] for a, b in zip(s, t, strict=True)])
    output = model.predict(
        {"x": windows.astype(np.float32), "sigma": arrays.sigma[s, t], "close": arrays.close[s, t]},
        params={"n_samples": 16, "return_samples": True},
    )
    assert output["quantiles"].shape == (3, 9) and output["samples"].shape == (3, 16)
    assert output["calibrated"] and output["spread_factor"] == metadata["spread_factor"].value


def test_a_clipped_as_of_window_fails_clearly() -> None:
    with pytest.raises(dg.Failure, match="needs 40 trading days ending there"):
        sessions_ending("20000107", 40)  # the partitions start at 2000-01-03
    assert sessions_ending("20251104", 3) == list(DAYS)


def test_forecasts_and_report_cover_every_model_on_the_same_anchors(trained) -> None:
    settings, _result, _, report = trained
    table = pl.read_parquet(Path(settings.lake) / "forecasts" / DAYS[-1] / "forecasts.parquet")
    models = set(table["model"].unique())
    assert {"diffusion", "oracle", "ewma_gaussian", "rolling_gaussian", "garch_t"} <= models
    assert {"empirical", "gaussian_head", "student_t_head"} <= models
    anchors = {  # exactly the same (day, symbol, second) anchors for every model, each once
        name: frame.select("day", "symbol", "second").sort(pl.all())
        for (name,), frame in table.group_by("model")
    }
    reference = anchors["diffusion"]
    assert reference.n_unique() == reference.height > 0
    assert reference["day"].n_unique() >= 1 and reference["symbol"].n_unique() > 1
    for name, frame in anchors.items():
        assert frame.equals(reference), name
    samples = np.stack(table["samples"].to_numpy())
    implied = np.stack(table["close"].to_numpy())[:, None] * (1 + samples)
    assert np.allclose(implied * 100, np.round(implied * 100), atol=1e-6)  # on the cent grid
    quantile_columns = ["q01", "q05", "q10", "q25", "q50", "q75", "q90", "q95", "q99"]
    stored = table.select(quantile_columns).to_numpy()
    assert np.allclose(
        stored, np.quantile(samples, [0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99], axis=1).T
    )
    assert (table["latency_ms"] > 0).all()  # measured for every model and day

    metadata = report.asset_materialization.metadata
    assert "diffusion" in metadata["summary"].value and "oracle" in metadata["summary"].value
    criteria = metadata["success_criteria"].value
    assert "CRPS beats hist. vol." in criteria and "< 100 ms / forecast" in criteria
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    client = MlflowClient()
    run = client.get_run(metadata["mlflow_run_id"].value)
    assert run.data.tags["training_run_id"] == metadata["training_run_id"].value
    assert run.data.metrics["diffusion/crps_bp"] > 0
    assert "ewma_gaussian/var_1_kupiec_p" in run.data.metrics
    assert run.data.metrics["diffusion/latency_ms"] > 0 and "diffusion/wql" in run.data.metrics
    assert "diffusion/pinball_q99_bp" in run.data.metrics
    assert "diffusion/criterion_inference_below_100ms" in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    for name in (
        "report.md",
        "overall.csv",
        "reliability_diagram.png",
        "pit_histogram.png",
        "fan_chart.png",
        "crps_by_time_of_day.png",
        "crps_by_volatility_decile.png",
        "equity_curves.png",
        "by_symbol.csv",
        "diebold_mariano.csv",
        "success_criteria.csv",
    ):
        assert name in artifacts, name
    report_md = (Path(settings.lake) / "evaluation_report" / DAYS[-1] / "report.md").read_text()
    assert "Does the model beat each baseline?" in report_md
    assert report_md.index("## Success criteria") < report_md.index("## Summary")
    assert "## Quantile losses and distribution distance" in report_md
    assert "oracle" in report_md


def test_promotion_is_a_blocking_check_and_the_new_version_is_the_challenger(trained) -> None:
    """Which way the tiny model's gate goes is not fixed (tests/e2e/test_cli.py forces both);
    whichever it is, the check, the step, the report and the aliases agree."""
    settings, result, event, _ = trained
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    promotion = checks["model_not_better_than_baseline"]
    failures = [e.step_failure_data.error.message for e in result.get_step_failure_events()]
    client = MlflowClient(settings.mlflow_tracking_uri)
    version = event.asset_materialization.metadata["registered_version"].value
    aliases = {
        alias: str(v)
        for alias, v in client.get_registered_model("diffstock-diffusion").aliases.items()
    }
    assert aliases["challenger"] == version
    tags = client.get_model_version("diffstock-diffusion", version).tags
    assert tags["as_of"] == DAYS[-1] and tags["test_days"] == DAYS[-1]
    report_md = (Path(settings.lake) / "evaluation_report" / DAYS[-1] / "report.md").read_text()
    assert promotion.description.startswith(f"the as-of {DAYS[-1]} model: ")
    if promotion.passed:
        assert result.success and aliases["champion"] == version
        assert "becomes champion: there is no champion yet" in report_md
        assert float(tags["test_crps_bp"]) == promotion.metadata["crps_bp"].value
    else:  # the report exists, the gate fails the step, no champion
        assert promotion.metadata["reasons"].value and "Not promoted" in report_md
        assert promotion.description.endswith(promotion.metadata["reasons"].value)
        assert failures and all("model_not_better_than_baseline" in m for m in failures)
        assert "champion" not in aliases
