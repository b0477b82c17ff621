"""Path forecasts of the as-of model (profiles with a path model only): the `path_report`."""

import tempfile
from pathlib import Path

import dagster as dg

from diffstock_assets.evaluation.assets import (
    after_the_model,
    copy_tree,
    model_splits,
    report_tags,
)
from diffstock_assets.evaluation.config import PathReportConfig
from diffstock_assets.metadata import markdown_table, png_markdown
from diffstock_assets.mlflow_resource import MLflowResource
from diffstock_assets.model.assets import load_windows
from diffstock_assets.resources import (
    MODEL_BUNDLE,
    MODEL_SUMMARY,
    PATH_DOCUMENT,
    ComputeResource,
    LakeResource,
    RawDataResource,
)
from diffstock_ml.model.bundle import load_bundle
from diffstock_ml.paths.document import CRPS_FIGURE, FAN_FIGURE, write_path_report
from diffstock_ml.paths.evaluation import PathEvaluation, evaluate_paths
from diffstock_ml.synthetic import default_latent_root
from diffstock_ml.train.profiles import Profile

PATH_REPORT = PATH_DOCUMENT.asset


def build_path_report(profile: Profile, model: dg.AssetsDefinition) -> dg.AssetsDefinition:
    """The path report asset for a profile whose model forecasts paths."""

    @dg.asset(
        name=PATH_REPORT,
        kinds={"pytorch", "mlflow", "matplotlib"},
        code_version="1",
        **after_the_model(profile, model),
    )
    def path_report(
        context: dg.AssetExecutionContext,
        config: PathReportConfig,
        lake: LakeResource,
        raw: RawDataResource,
        mlflow: MLflowResource,
        compute: ComputeResource,
    ) -> dg.MaterializeResult:
        """Every model's sample paths of the next 30 s scored at the same test anchors."""
        key = context.partition_key
        model_run = lake.read_json(MODEL_SUMMARY, key)
        splits = model_splits(model_run)
        evaluation = evaluate_paths(
            load_bundle(lake.local_file(MODEL_BUNDLE, key), compute.torch_device()),
            load_windows(lake, splits, needed_by=f"{PATH_REPORT} {key}"),
            splits,
            config.to_path_evaluation_config(),
            default_latent_root(Path(raw.root)),
            log=context.log.info,
        )
        tags = report_tags(context.run.run_id, key, model_run)
        with (
            tempfile.TemporaryDirectory() as scratch,
            mlflow.start_run(run_name=f"{PATH_REPORT} {key}", tags=tags) as run,
        ):
            folder = Path(scratch)
            write_path_report(folder, key, evaluation)
            mlflow.log_metrics(evaluation.flat_metrics())
            mlflow.log_artifacts(folder)
            uri = lake.write_folder(PATH_REPORT, key, lambda f: copy_tree(folder, f))
            figures = {name: (folder / name).read_bytes() for name in (FAN_FIGURE, CRPS_FIGURE)}
        return dg.MaterializeResult(
            metadata={
                **_metadata(evaluation, figures, model_run),
                "mlflow_run": dg.MetadataValue.url(mlflow.run_link(run.info.run_id)),
                "mlflow_run_id": run.info.run_id,
                "path": dg.MetadataValue.path(uri),
            }
        )

    return path_report


def _metadata(evaluation: PathEvaluation, figures: dict[str, bytes], model_run: dict) -> dict:
    anchors = evaluation.anchors
    return {
        "dagster/row_count": evaluation.metrics.height,
        "summary": markdown_table(evaluation.summary()),
        "metrics": markdown_table(evaluation.by_metric()),
        "crps_by_horizon": png_markdown(figures[CRPS_FIGURE], "CRPS by horizon"),
        "path_fan": png_markdown(figures[FAN_FIGURE], "sample paths"),
        "models": ", ".join(evaluation.metrics["model"]),
        "anchors": anchors.height,
        "test_days": ", ".join(anchors["day"].unique(maintain_order=True)),
        "training_run_id": model_run["mlflow_run_id"],
    }
