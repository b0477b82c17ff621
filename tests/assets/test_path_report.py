"""The `path_report` asset: only in path profiles; on the tiny market under `tiny_paths` it writes
its lake folder, logs an MLflow run of `path/...` metrics under the training run, and shows the
table and figures in its metadata."""

from pathlib import Path

import dagster as dg
import pytest
from conftest import TINY_DAYS as DAYS
from mlflow import MlflowClient

from dagster_project.definitions import build_definitions
from dagster_project.settings import Settings

MODELS = ("diffusion_paths", "ewma_random_walk", "garch_t_paths", "oracle_paths")
SMALL = {"n_samples": 16, "max_anchors": 120, "fit_anchors": 300, "fit_samples": 20}


def _defs(tmp_path: Path, profile: str, raw: Path | None = None) -> dg.Definitions:
    env = {"DIFFSTOCK_DATA": str(tmp_path), "DIFFSTOCK_PROFILE": profile}
    if raw is not None:
        env["DIFFSTOCK_RAW"] = str(raw)
    return build_definitions(Settings.from_env(env))


def test_only_a_path_profile_has_the_path_report_in_train_job(tmp_path: Path) -> None:
    key = dg.AssetKey("path_report")
    for profile in ("demo", "tiny"):
        defs = _defs(tmp_path, profile)
        assert key not in defs.resolve_asset_graph().get_all_asset_keys(), profile
    defs = _defs(tmp_path, "demo_paths")
    node = defs.resolve_asset_graph().get(key)
    assert sorted(p.to_user_string() for p in node.parent_keys) == ["diffusion_model", "windows"]
    mapping = node.assets_def.get_partition_mapping(dg.AssetKey("windows"))
    assert mapping.start_offset == -9  # the model's 10 sessions, as `forecasts`
    assert key in defs.resolve_job_def("train_job").asset_layer.executable_asset_keys


@pytest.fixture(scope="module")
def materialised(tiny_market: Path, tmp_path_factory: pytest.TempPathFactory):
    """The tiny market ingested, then the `tiny_paths` model and its path report as of the last
    day (the scalar forecasts and report are left out: not what is tested here)."""
    data = tmp_path_factory.mktemp("path_report")
    defs = _defs(data, "tiny_paths", tiny_market)
    selection = [dg.AssetKey("diffusion_model"), dg.AssetKey("path_report")]
    with dg.instance_for_test() as instance:
        for day in DAYS:
            job = defs.resolve_job_def("ingest_job")
            assert job.execute_in_process(partition_key=day, instance=instance).success
        result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
            partition_key=DAYS[-1],
            instance=instance,
            asset_selection=selection,
            run_config={
                "ops": {
                    "diffusion_model": {"config": {"max_steps": 10}},  # any path model will do
                    "path_report": {"config": SMALL},
                }
            },
        )
        assert result.success
        model = instance.get_latest_materialization_event(dg.AssetKey("diffusion_model"))
        report = instance.get_latest_materialization_event(dg.AssetKey("path_report"))
    settings = Settings.from_env({"DIFFSTOCK_DATA": str(data), "DIFFSTOCK_RAW": str(tiny_market)})
    return settings, model.asset_materialization.metadata, report.asset_materialization.metadata


def test_the_report_folder_holds_the_document_figures_and_table(materialised) -> None:
    settings, _, _ = materialised
    folder = Path(settings.lake) / "path_report" / DAYS[-1]
    names = {p.name for p in folder.iterdir()}
    assert {"paths.md", "path_fan.png", "crps_by_horizon.png", "path_metrics.parquet"} <= names
    text = (folder / "paths.md").read_text()
    assert all(model in text for model in MODELS) and "energy_score_bp" in text


def test_the_mlflow_run_is_a_child_of_the_training_run_with_path_metrics(materialised) -> None:
    settings, model, report = materialised
    client = MlflowClient(settings.mlflow_tracking_uri)
    run = client.get_run(report["mlflow_run_id"].value)
    assert run.info.run_name == f"path_report {DAYS[-1]}"
    assert run.data.tags["mlflow.parentRunId"] == model["mlflow_run_id"].value
    assert run.data.tags["training_run_id"] == model["mlflow_run_id"].value
    assert run.data.tags["as_of"] == DAYS[-1]
    for name in MODELS:
        assert run.data.metrics[f"path/{name}/energy_score_bp"] > 0, name
        assert f"path/{name}/crps_h30_bp" in run.data.metrics
        assert f"path/{name}/mae_long_var_5_kupiec_p" in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"paths.md", "path_fan.png", "crps_by_horizon.png", "path_metrics.parquet"} <= artifacts


def test_the_metadata_shows_the_table_and_both_figures(materialised) -> None:
    _, _, report = materialised
    assert report["dagster/row_count"].value == len(MODELS)
    assert all(model in report["summary"].value for model in MODELS)
    assert "touch_up_5bp_brier" in report["metrics"].value
    for figure in ("path_fan", "crps_by_horizon"):
        assert "data:image/png;base64," in report[figure].value, figure
    assert report["mlflow_run"].value.endswith(report["mlflow_run_id"].value)
    assert report["anchors"].value == SMALL["max_anchors"]
