"""Evaluation stage: the as-of `forecasts` of every model and the `evaluation_report` on them."""

import dataclasses
import tempfile
from pathlib import Path

import dagster as dg
import polars as pl

from diffstock_assets.evaluation.checks import PROMOTION_SPEC, promotion_result
from diffstock_assets.evaluation.config import EvaluationReportConfig, ForecastsConfig
from diffstock_assets.groups import EVALUATION
from diffstock_assets.metadata import markdown_table, png_markdown, table_metadata
from diffstock_assets.mlflow_resource import MLflowResource
from diffstock_assets.model.assets import load_windows, model_windows
from diffstock_assets.partitions import trading_days
from diffstock_assets.registry import crown
from diffstock_assets.resources import (
    DIRECTION_PROBABILITIES,
    FORECAST_SAMPLES,
    MODEL_BUNDLE,
    MODEL_SUMMARY,
    POINT_FORECASTS,
    ComputeResource,
    LakeResource,
    RawDataResource,
)
from diffstock_ml.comparison import Comparison, Contenders, compare_on_test_days
from diffstock_ml.evaluation import evaluate
from diffstock_ml.evaluation.criteria import criteria_metrics, criteria_table
from diffstock_ml.evaluation.direction_calibration import calibrate_directions
from diffstock_ml.evaluation.document import (
    RELIABILITY_FIGURE,
    champion_text,
    summary,
    write_report,
)
from diffstock_ml.evaluation.point_forecasts import point_forecast_table
from diffstock_ml.evaluation.promotion import ChampionMove, Promotion, verdicts
from diffstock_ml.evaluation.report import EvaluationResult
from diffstock_ml.forecasting import DIFFUSION, to_model_forecasts
from diffstock_ml.model.bundle import load_bundle
from diffstock_ml.splits import Splits
from diffstock_ml.synthetic import default_latent_root
from diffstock_ml.train.config import TrainConfig
from diffstock_ml.train.profiles import Profile

FORECASTS = "forecasts"
REPORT_ASSET = "evaluation_report"
HEADLINE = ("crps_bp", "coverage_90", "sharpness_bp", "directional_accuracy", "backtest_sharpe")


def after_the_model(profile: Profile, model: dg.AssetsDefinition) -> dict:
    """`@dg.asset` arguments of an asset made from the as-of model and its sessions' windows:
    same partitions, its group, and materialised once both passed their blocking checks."""
    return {
        "partitions_def": trading_days,
        "group_name": EVALUATION,
        "deps": [model, model_windows(profile)],
        "automation_condition": dg.AutomationCondition.eager()
        & dg.AutomationCondition.all_deps_blocking_checks_passed(),
    }


def build_forecasts(profile: Profile, model: dg.AssetsDefinition) -> dg.AssetsDefinition:
    """The forecasts asset for a profile: it reads the windows of the model's sessions."""

    @dg.asset(
        name=FORECASTS,
        kinds={"pytorch", "parquet"},
        code_version="2",  # 2: q01…q99 and latency_ms columns
        **after_the_model(profile, model),
    )
    def forecasts(
        context: dg.AssetExecutionContext,
        config: ForecastsConfig,
        lake: LakeResource,
        raw: RawDataResource,
        compute: ComputeResource,
    ) -> dg.MaterializeResult:
        """Every model's sampled forecasts at the same anchors of this as-of model's test days."""
        key = context.partition_key
        summary = lake.read_json(MODEL_SUMMARY, key)
        splits = model_splits(summary)  # the model's own (its run config may re-divide)
        arrays = load_windows(lake, splits, needed_by=f"forecasts {key}")
        device = compute.torch_device()
        contenders = _contenders(config, summary, profile, default_latent_root(Path(raw.root)))
        comparison = compare_on_test_days(
            load_bundle(lake.local_file(MODEL_BUNDLE, key), device),
            arrays,
            splits,
            contenders,
            config.to_forecast_config(),
            device,
            log=context.log.info,
        )
        lake.write_table(DIRECTION_PROBABILITIES, key, comparison.directions)
        lake.write_table(POINT_FORECASTS, key, comparison.points)
        uri = lake.write_table(FORECAST_SAMPLES, key, comparison.forecasts)
        return dg.MaterializeResult(
            metadata=_forecasts_metadata(comparison, splits, config, contenders, uri)
        )

    return forecasts


def build_evaluation_report(
    model: dg.AssetsDefinition, forecasts: dg.AssetsDefinition
) -> dg.AssetsDefinition:
    """The report asset: it reads the forecasts and the model's summary (run ids, registry)."""

    @dg.asset(
        name=REPORT_ASSET,
        partitions_def=trading_days,
        group_name=EVALUATION,
        deps=[model, forecasts],
        check_specs=[PROMOTION_SPEC],
        kinds={"mlflow", "matplotlib"},
        automation_condition=dg.AutomationCondition.eager(),
        code_version="2",  # 2: pinball, wQL, Wasserstein and the success criteria
    )
    def evaluation_report(
        context: dg.AssetExecutionContext,
        config: EvaluationReportConfig,
        lake: LakeResource,
        mlflow: MLflowResource,
    ) -> dg.MaterializeResult:
        """All evaluation metrics and figures of this as-of model, logged to MLflow."""
        key = context.partition_key
        table = lake.read_table(FORECAST_SAMPLES, key)
        model_run = lake.read_json(MODEL_SUMMARY, key)
        forecasts = to_model_forecasts(table)
        baselines = [name for name in forecasts if name != DIFFUSION]
        result = evaluate(forecasts, baselines, config.to_evaluation_config())
        # issue 12 items 4-5: point forecasts; direction classifiers calibrated on val days
        result = dataclasses.replace(
            result,
            point_forecasts=point_forecast_table(table, lake.read_table(POINT_FORECASTS, key)),
            direction_calibration=calibrate_directions(
                lake.read_table(DIRECTION_PROBABILITIES, key), result.config
            ),
        )
        promotion = config.promotion(result.overall)
        tags = report_tags(context.run.run_id, key, model_run)
        with (
            tempfile.TemporaryDirectory() as scratch,
            mlflow.start_run(run_name=f"{REPORT_ASSET} {key}", tags=tags) as run,
        ):
            move = _crown(mlflow, model_run, promotion)
            folder = Path(scratch)
            write_report(folder, key, result, table, promotion, config.promotion_baseline, move)
            mlflow.log_metrics({**result.metrics(), **criteria_metrics(result.success_criteria())})
            mlflow.log_artifacts(folder)
            lake.write_folder(REPORT_ASSET, key, lambda f: copy_tree(folder, f))
            reliability_png = (folder / RELIABILITY_FIGURE).read_bytes()
        metadata = _report_metadata(result, move, model_run, reliability_png)
        return dg.MaterializeResult(
            metadata={
                **metadata,
                "mlflow_run": dg.MetadataValue.url(mlflow.run_link(run.info.run_id)),
                "mlflow_run_id": run.info.run_id,
                "promoted": promotion.promoted,
            },
            check_results=[promotion_result(key, promotion, champion_text(move))],
        )

    return evaluation_report


def report_tags(dagster_run_id: str, key: str, model_run: dict) -> dict[str, str]:
    """MLflow tags of a report's run: a child of the model's training run."""
    return {
        "dagster_run_id": dagster_run_id,
        "as_of": key,
        "training_run_id": model_run["mlflow_run_id"],
        "mlflow.parentRunId": model_run["mlflow_run_id"],
    }


def model_splits(summary: dict) -> Splits:
    return Splits(**{part: tuple(days) for part, days in summary["splits"].items()})


def _contenders(
    config: ForecastsConfig, summary: dict, profile: Profile, latent_root: Path
) -> Contenders:
    """The heads get the diffusion model's own TrainConfig (from its summary, else the
    profile's) and encoder: a fair fight; the direction classifiers the profile's encoder."""
    head_training = (
        TrainConfig(**summary["train_config"]) if "train_config" in summary else profile.train
    )
    if config.head_max_steps is not None:
        head_training = dataclasses.replace(head_training, max_steps=config.head_max_steps)
    return Contenders(
        head_training=head_training,
        direction_model=profile.model,
        direction_training=dataclasses.replace(
            profile.train, max_steps=config.direction_steps(profile.train.max_steps)
        ),
        latent_root=latent_root,
    )


def _forecasts_metadata(
    comparison: Comparison,
    splits: Splits,
    config: ForecastsConfig,
    contenders: Contenders,
    uri: str,
) -> dict:
    table = comparison.forecasts
    per_model = table.group_by("model", maintain_order=True).len("anchors")
    return {
        **table_metadata(table.height, table.schema),
        "models": ", ".join(per_model["model"].to_list()),
        "anchors_per_model": int(per_model["anchors"][0]),
        "test_days": ", ".join(splits.test),
        "samples_per_anchor": config.n_samples,
        "anchor_stride_s": config.anchor_stride_s,
        "head_max_steps": contenders.head_training.max_steps,
        "spread_factors": markdown_table(comparison.scales),
        "latency_ms_per_anchor": markdown_table(
            table.group_by("model", maintain_order=True).agg(pl.col("latency_ms").mean())
        ),
        "diffusion_spread_factor_from": comparison.diffusion_factor_from,
        "path": dg.MetadataValue.path(uri),
    }


def _crown(mlflow: MLflowResource, model_run: dict, promotion: Promotion) -> ChampionMove | None:
    """The champion alias's move for a model that passed the gate (None for one that did not)."""
    if not promotion.promoted:
        return None
    return crown(
        mlflow,
        model_run["registered_model"],
        model_run["registered_version"],
        promotion.crps_bp,
    )


def _report_metadata(
    result: EvaluationResult, move: ChampionMove | None, model_run: dict, reliability_png: bytes
) -> dict:
    diffusion = result.overall.filter(pl.col("model") == DIFFUSION).row(0, named=True)
    return {
        "success_criteria": markdown_table(criteria_table(result.success_criteria())),
        "summary": markdown_table(summary(result.overall)),
        "verdicts": dg.MetadataValue.md("\n".join(verdicts(result.overall, DIFFUSION))),
        "reliability_diagram": png_markdown(reliability_png, "reliability"),
        "training_run_id": model_run["mlflow_run_id"],
        "champion": champion_text(move),
        **{f"diffusion_{m}": float(diffusion[m]) for m in HEADLINE if diffusion[m] is not None},
    }


def copy_tree(source: Path, target: Path) -> None:
    for path in source.iterdir():
        (target / path.name).write_bytes(path.read_bytes())
