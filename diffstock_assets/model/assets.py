"""Model stage: the as-of-day `diffusion_model`, trained on the sessions ending there."""

import dataclasses
import json
import shutil
import tempfile
from pathlib import Path

import dagster as dg
import torch

from diffstock_assets.features.assets import windows
from diffstock_assets.gates import require_passed
from diffstock_assets.groups import MODEL
from diffstock_assets.mlflow_resource import MLflowResource
from diffstock_assets.model.config import DiffusionModelConfig
from diffstock_assets.partitions import sessions_ending, trading_days
from diffstock_assets.registry import register_challenger
from diffstock_assets.resources import (
    MODEL_BUNDLE,
    MODEL_SUMMARY,
    WINDOWS,
    ComputeResource,
    LakeResource,
)
from diffstock_ml.model.config import ModelConfig
from diffstock_ml.splits import Splits, split_days
from diffstock_ml.train import EvalMetrics, StepMetrics
from diffstock_ml.train.checkpoint import LATEST, settings_fingerprint
from diffstock_ml.train.config import TrainConfig
from diffstock_ml.train.profiles import Profile
from diffstock_ml.training import FittedModel, fit_model
from diffstock_ml.windows import DayArrays

ASSET = "diffusion_model"


class _Progress:
    """Training progress to the Dagster run log and to MLflow step metrics."""

    def __init__(self, log, metrics) -> None:
        self.log, self.metrics = log, metrics

    def on_step(self, m: StepMetrics) -> None:
        for name in ("loss", "lr", "grad_norm", "windows_per_s"):
            self.metrics.log(name, getattr(m, name), m.step)
        self.log.info(f"step {m.step}: loss {m.loss:.4f}, lr {m.lr:.2e}, {m.windows_per_s:.0f} w/s")

    def on_eval(self, m: EvalMetrics) -> None:
        self.metrics.log("val_crps_bp", m.val_crps_bp, m.step)
        self.metrics.log("val_coverage_90", m.val_coverage_90, m.step)
        self.metrics.log("val_median_below", m.val_median_below, m.step)
        self.log.info(
            f"validation at step {m.step}: CRPS {m.val_crps_bp:.4f} bp, 90% coverage "
            f"{m.val_coverage_90:.3f}, below median {m.val_median_below:.3f} "
            f"(best {m.best_val_crps_bp:.4f} bp)"
        )

    def on_message(self, text: str) -> None:
        self.log.info(text)


def build_diffusion_model(profile: Profile) -> dg.AssetsDefinition:
    """The training asset for a profile: its partition mapping reaches back `profile.days`."""

    @dg.asset(
        name=ASSET,
        partitions_def=trading_days,
        group_name=MODEL,
        deps=[model_windows(profile)],
        pool="gpu",
        # the newest as-of day retrains once all its windows exist and passed their blocking
        # checks (a day that failed one is refused by the asset itself too: `as_of_windows`)
        automation_condition=dg.AutomationCondition.eager()
        & dg.AutomationCondition.all_deps_blocking_checks_passed(),
        kinds={"pytorch", "mlflow"},
        code_version="1",
    )
    def diffusion_model(
        context: dg.AssetExecutionContext,
        config: DiffusionModelConfig,
        lake: LakeResource,
        mlflow: MLflowResource,
        compute: ComputeResource,
    ) -> dg.MaterializeResult:
        """The diffusion forecaster trained on the sessions ending at this as-of day."""
        key = context.partition_key
        splits, arrays = as_of_windows(lake, key, config.resolve_split(profile))
        model_config, train_config = config.resolve(profile)
        device = compute.torch_device()
        checkpoints = compute.scratch(ASSET, key, settings_fingerprint(model_config, train_config))
        context.log.info(
            f"training on {splits.train[0]}..{splits.train[-1]}, validating on {splits.val}, "
            f"device {device}, checkpoints in {checkpoints}"
        )
        configs = _run_params(profile, splits, arrays, device, model_config, train_config)
        tags = {"dagster_run_id": context.run.run_id, "as_of": key, "profile": profile.name}
        with mlflow.start_run(run_name=f"{ASSET} {key}", tags=tags) as run:
            mlflow.log_params(configs)
            with mlflow.metric_logger(run.info.run_id) as metrics:
                progress = _Progress(context.log, metrics)
                fitted = fit_model(
                    model_config, train_config, splits, arrays, checkpoints, device, progress
                )
            context.log.info(f"spread factor {fitted.spread_factor:.3f} (training days)")
            _log_artifacts(mlflow, fitted, configs, checkpoints)
            published = _publish(
                mlflow, lake, fitted, config.registered_model_name, run.info.run_id, key, splits
            )
        # Finished and logged: the next materialisation of this day trains afresh.
        shutil.rmtree(checkpoints, ignore_errors=True)
        metadata = published.metadata(mlflow.run_link(run.info.run_id))
        return dg.MaterializeResult(metadata={**metadata, **_training_metadata(fitted, splits)})

    return diffusion_model


def model_windows(profile: Profile) -> dg.AssetDep:
    """The windows of every session of the as-of model: the `profile.days` ending there."""
    mapping = dg.TimeWindowPartitionMapping(start_offset=-(profile.days - 1))
    return dg.AssetDep(windows, partition_mapping=mapping)


def as_of_windows(
    lake: LakeResource, key: str, profile: Profile
) -> tuple[Splits, dict[str, DayArrays]]:
    """The whole-day splits of the sessions ending at `key` and their (mapped) window arrays."""
    days = sessions_ending(key, profile.days)
    splits = split_days(days, profile.train_days, profile.val_days, profile.test_days)
    return splits, load_windows(lake, splits, needed_by=f"the as-of {key} model")


def load_windows(lake: LakeResource, splits: Splits, needed_by: str) -> dict[str, DayArrays]:
    """The window arrays of every day of `splits`; a `Failure` naming the day when one of them
    failed a blocking check of `clean_bars` or `windows` (or was never finished)."""
    for day in splits.all_days:
        for asset in ("clean_bars", WINDOWS):
            require_passed(lake, asset, day, needed_by=needed_by)
    return {day: lake.read_windows(day) for day in splits.all_days}


def _run_params(
    profile: Profile,
    splits: Splits,
    arrays: dict[str, DayArrays],
    device: torch.device,
    model_config: ModelConfig,
    train_config: TrainConfig,
) -> dict:
    """The training run's parameters in MLflow: profile, splits and every config."""
    return {
        "profile": profile.name,
        "splits": dataclasses.asdict(splits),
        "model": dataclasses.asdict(model_config),
        "train": dataclasses.asdict(train_config),
        "windows": dataclasses.asdict(arrays[splits.all_days[0]].config),
        "device": str(device),
    }


@dataclasses.dataclass(frozen=True)
class _Published:
    registered: dict[str, str]  # mlflow_run_id, registered_model, registered_version
    model_uri: str
    path: str  # the lake folder of the bundle and its summary

    def metadata(self, run_link: str) -> dict:
        """The asset's metadata on where the model went: run, registry version, lake path."""
        return {
            **self.registered,
            "mlflow_run": dg.MetadataValue.url(run_link),
            "model_uri": self.model_uri,
            "path": dg.MetadataValue.path(self.path),
        }


def _publish(
    mlflow: MLflowResource,
    lake: LakeResource,
    fitted: FittedModel,
    model_name: str,
    run_id: str,
    key: str,
    splits: Splits,
) -> _Published:
    """Log the bundle as the MLflow model of run `run_id`, register it as the challenger of
    `model_name`, and write the bundle and its summary (with the run and version) to the lake."""
    with tempfile.TemporaryDirectory() as scratch:
        bundle = fitted.save(Path(scratch) / MODEL_BUNDLE.name)
        info = mlflow.log_model(bundle, model_name)
        version = str(info.registered_model_version)
        register_challenger(mlflow, model_name, version, as_of=key, test_days=splits.test)
        registered = {
            "mlflow_run_id": run_id,
            "registered_model": model_name,
            "registered_version": version,
        }
        summary = {**fitted.summary, **registered}
        path = lake.write_folder(ASSET, key, lambda f: _copy(bundle, summary, f))
    return _Published(registered, info.model_uri, path)


def _training_metadata(fitted: FittedModel, splits: Splits) -> dict:
    """What the catalog shows of a training run: the splits, windows, scores and cost."""
    result, summary = fitted.result, fitted.summary
    return {
        "train_days": ", ".join(splits.train),
        "val_days": ", ".join(splits.val),
        "test_days": ", ".join(splits.test),
        **{f"windows_{split}": summary["windows"][split] for split in ("train", "val", "test")},
        "best_val_crps_bp": result.best_val_crps_bp,
        "first_val_crps_bp": result.first_val_crps_bp,
        "best_step": result.best_step,
        "spread_factor": fitted.spread_factor,
        "steps": result.steps,
        "resumed_from_step": result.resumed_from,
        "wall_time_s": result.wall_s,
        "device": result.device,
        "parameters": summary["parameters"],
    }


def _log_artifacts(
    mlflow: MLflowResource, fitted: FittedModel, configs: dict, checkpoints: Path
) -> None:
    """Summary, configs, normaliser and the last checkpoint into the active MLflow run."""
    summary = fitted.summary
    mlflow.log_json(
        {
            "summary.json": summary,
            "config.json": configs,
            "normaliser.json": fitted.normaliser.to_dict(),
        }
    )
    mlflow.log_artifact(checkpoints / LATEST, "checkpoint")
    mlflow.log_metrics(
        {
            "best_val_crps_bp": summary["best_val_crps_bp"],
            "train_wall_s": summary["wall_s"],
            "spread_factor": summary["spread_factor"],
        }
    )


def _copy(bundle: Path, summary: dict, folder: Path) -> None:
    (folder / MODEL_BUNDLE.name).write_bytes(bundle.read_bytes())
    (folder / MODEL_SUMMARY.name).write_text(json.dumps(summary, indent=1))
