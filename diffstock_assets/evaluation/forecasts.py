"""The as-of `forecasts` asset: the diffusion model and every baseline on the test days."""

import dataclasses
import json
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl

from diffstock_assets.evaluation.config import ForecastsConfig
from diffstock_assets.features.assets import windows
from diffstock_assets.groups import EVALUATION
from diffstock_assets.metadata import markdown_table
from diffstock_assets.model.assets import BUNDLE_FILE, load_windows
from diffstock_assets.partitions import trading_days
from diffstock_assets.resources import ComputeResource, LakeResource, RawDataResource
from diffstock_ml.baselines import BASELINES, DIRECTION_CLASSIFIERS, Baseline, GarchT, Oracle
from diffstock_ml.forecasting import (
    DIFFUSION,
    CalibratedDiffusion,
    direction_probabilities,
    forecast_day,
    select_anchors,
)
from diffstock_ml.model.bundle import load_bundle
from diffstock_ml.splits import Splits
from diffstock_ml.synthetic import default_latent_root
from diffstock_ml.train.config import TrainConfig
from diffstock_ml.train.profiles import Profile

ASSET = "forecasts"
FORECASTS_FILE = "forecasts.parquet"
DIRECTION_FILE = "direction.parquet"
_TORCH_BASELINES = ("gaussian_head", "student_t_head")


def build_forecasts(profile: Profile, model: dg.AssetsDefinition) -> dg.AssetsDefinition:
    mapping = dg.TimeWindowPartitionMapping(start_offset=-(profile.days - 1))

    @dg.asset(
        name=ASSET,
        partitions_def=trading_days,
        group_name=EVALUATION,
        deps=[model, dg.AssetDep(windows, partition_mapping=mapping)],
        kinds={"pytorch", "parquet"},
        automation_condition=dg.AutomationCondition.eager()
        & dg.AutomationCondition.all_deps_blocking_checks_passed(),
        code_version="1",
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
        model_folder = lake.local_folder("diffusion_model", key)
        splits = _model_splits(model_folder)  # the model's own (its run config may re-divide)
        arrays = load_windows(lake, splits, needed_by=f"forecasts {key}")
        train = [arrays[d] for d in splits.train]
        device = compute.torch_device()
        bundle = load_bundle(model_folder / BUNDLE_FILE, device)
        forecast_config = config.to_forecast_config()
        rng = np.random.default_rng(forecast_config.seed)

        # the heads: the model's encoder configuration and its training budget (a fair fight)
        head_training = _model_training(model_folder, profile)
        if config.head_max_steps is not None:
            head_training = dataclasses.replace(head_training, max_steps=config.head_max_steps)
        direction_training = dataclasses.replace(
            profile.train, max_steps=config.direction_max_steps
        )
        # the model first, then every baseline: all get a spread factor fitted on training days;
        # the model's was fitted where it was trained and travels in its bundle (older, raw
        # bundles are fitted here)
        models: dict[str, Baseline] = {DIFFUSION: CalibratedDiffusion(bundle)}
        diffusion_factor = "bundle" if bundle.calibrated else "fitted here (raw bundle)"
        for name, cls in BASELINES.items():
            options = {
                "model_config": bundle.model.config,
                "train_config": head_training,
                "device": device,
            }
            models[name] = cls(**options) if name in _TORCH_BASELINES else cls()
        latent = default_latent_root(Path(raw.root))
        if (latent / "params.json").exists():
            models["oracle"] = Oracle(latent)
        else:
            context.log.info(f"no synthetic latent state at {latent}: no oracle forecast")
        scales = []
        for name, model in models.items():
            model.fit(train, rng)
            scales.append((name, float(model.scale)))
            context.log.info(
                f"fitted {name} on {len(train)} training days (scale {model.scale:.3f})"
            )
        classifiers = {
            name: cls(model_config=profile.model, train_config=direction_training, device=device)
            for name, cls in DIRECTION_CLASSIFIERS.items()
        }
        for classifier in classifiers.values():
            classifier.fit(train, rng)

        tables, directions = [], []
        for day in splits.test:
            anchors = select_anchors(arrays[day], forecast_config.anchor_stride_s)
            context.log.info(f"{day}: forecasting {len(anchors)} anchors with {len(models)} models")
            garch = models.get("garch_t")
            if isinstance(garch, GarchT) and (pooled := garch.pooled_symbols(arrays[day])):
                context.log.info(f"{day}: garch_t uses pooled parameters for {', '.join(pooled)}")
            tables.append(forecast_day(arrays[day], anchors, models, forecast_config))
            directions.append(direction_probabilities(arrays[day], anchors, classifiers))
        table = pl.concat(tables)
        lake.write_parquet(pl.concat(directions), ASSET, key, DIRECTION_FILE)
        uri = lake.write_parquet(table, ASSET, key, FORECASTS_FILE)
        per_model = table.group_by("model", maintain_order=True).len("anchors")
        return dg.MaterializeResult(
            metadata={
                "models": ", ".join(per_model["model"].to_list()),
                "anchors_per_model": int(per_model["anchors"][0]),
                "test_days": ", ".join(splits.test),
                "samples_per_anchor": forecast_config.n_samples,
                "anchor_stride_s": forecast_config.anchor_stride_s,
                "head_max_steps": head_training.max_steps,
                "spread_factors": markdown_table(
                    pl.DataFrame(scales, schema=["model", "scale"], orient="row")
                ),
                "diffusion_spread_factor_from": diffusion_factor,
                "path": dg.MetadataValue.path(uri),
            }
        )

    return forecasts


def _model_splits(model_folder: Path) -> Splits:
    summary = json.loads((model_folder / "summary.json").read_text())
    return Splits(**{part: tuple(days) for part, days in summary["splits"].items()})


def _model_training(model_folder: Path, profile: Profile) -> TrainConfig:
    """The diffusion model's own TrainConfig (from its summary), else the profile's."""
    summary = json.loads((model_folder / "summary.json").read_text())
    if "train_config" not in summary:  # written before the summary recorded it
        return profile.train
    return TrainConfig(**summary["train_config"])
