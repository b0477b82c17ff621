"""Every model fitted on the same training days and forecast at the same anchors of the test days.

`compare_on_test_days` is what the `forecasts` asset runs: the diffusion model (with the spread
factor its bundle carries), every baseline of `BASELINES` and, where the synthetic market's
latent state exists, the oracle are fitted on the training days, the direction classifiers
beside them; then every test day's anchors on the stride grid are forecast by all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import torch

from diffstock_ml.baselines import BASELINES, DIRECTION_CLASSIFIERS, Baseline, GarchT, Oracle
from diffstock_ml.baselines.direction import DirectionClassifier
from diffstock_ml.forecasting import (
    DIFFUSION,
    CalibratedDiffusion,
    ForecastConfig,
    direction_probabilities,
    forecast_day,
    select_anchors,
)
from diffstock_ml.model.bundle import ModelBundle
from diffstock_ml.model.config import ModelConfig
from diffstock_ml.splits import Splits
from diffstock_ml.synthetic.writer import PARAMS_FILE
from diffstock_ml.train.config import TrainConfig
from diffstock_ml.windows import DayArrays

TORCH_BASELINES = ("gaussian_head", "student_t_head")  # trained like the model, on its encoder


@dataclass(frozen=True)
class Contenders:
    """How the models that learn are trained, and where the oracle's latent state may be."""

    head_training: TrainConfig  # the likelihood heads: the model's own budget, a fair fight
    direction_model: ModelConfig  # the direction classifiers' encoder
    direction_training: TrainConfig
    latent_root: Path | None = None  # the synthetic market's latent state (adds the oracle)


@dataclass(frozen=True)
class Comparison:
    """The test days' forecasts of every model, and what was fitted to make them."""

    forecasts: pl.DataFrame  # one row per (model, anchor): samples and the anchor's context
    directions: pl.DataFrame  # P(up) of each direction classifier at the same anchors
    scales: pl.DataFrame  # model, scale: the spread factor each model was fitted
    diffusion_factor_from: str  # "bundle", or "fitted here (raw bundle)" for older bundles


def compare_on_test_days(
    bundle: ModelBundle,
    arrays: Mapping[str, DayArrays],
    splits: Splits,
    contenders: Contenders,
    config: ForecastConfig,
    device: torch.device,
    log: Callable[[str], None] = lambda text: None,
) -> Comparison:
    """Fit every model on `splits.train`, then forecast each day of `splits.test` with all."""
    train = [arrays[d] for d in splits.train]
    rng = np.random.default_rng(config.seed)
    models = _models(bundle, contenders, device, log)
    scales = []
    for name, model in models.items():
        model.fit(train, rng)
        scales.append((name, float(model.scale)))
        log(f"fitted {name} on {len(train)} training days (scale {model.scale:.3f})")
    classifiers = _classifiers(contenders, device)
    for classifier in classifiers.values():
        classifier.fit(train, rng)

    tables, directions = [], []
    for day in splits.test:
        anchors = select_anchors(arrays[day], config.anchor_stride_s)
        log(f"{day}: forecasting {len(anchors)} anchors with {len(models)} models")
        garch = models.get("garch_t")
        if isinstance(garch, GarchT) and (pooled := garch.pooled_symbols(arrays[day])):
            log(f"{day}: garch_t uses pooled parameters for {', '.join(pooled)}")
        tables.append(forecast_day(arrays[day], anchors, models, config))
        directions.append(direction_probabilities(arrays[day], anchors, classifiers))
    return Comparison(
        forecasts=pl.concat(tables),
        directions=pl.concat(directions),
        scales=pl.DataFrame(scales, schema=["model", "scale"], orient="row"),
        diffusion_factor_from="bundle" if bundle.calibrated else "fitted here (raw bundle)",
    )


def _models(
    bundle: ModelBundle, contenders: Contenders, device: torch.device, log: Callable[[str], None]
) -> dict[str, Baseline]:
    """The model first, then every baseline, then the oracle where its latent state exists.

    All get a spread factor fitted on training days; the model's was fitted where it was
    trained and travels in its bundle (older, raw bundles are fitted here).
    """
    models: dict[str, Baseline] = {DIFFUSION: CalibratedDiffusion(bundle)}
    for name, cls in BASELINES.items():
        if name in TORCH_BASELINES:
            models[name] = cls(
                model_config=bundle.model.config,
                train_config=contenders.head_training,
                device=device,
            )
        else:
            models[name] = cls()
    latent = contenders.latent_root
    if latent is not None and (latent / PARAMS_FILE).exists():
        models["oracle"] = Oracle(latent)
    else:
        log(f"no synthetic latent state at {latent}: no oracle forecast")
    return models


def _classifiers(contenders: Contenders, device: torch.device) -> dict[str, DirectionClassifier]:
    return {
        name: cls(
            model_config=contenders.direction_model,
            train_config=contenders.direction_training,
            device=device,
        )
        for name, cls in DIRECTION_CLASSIFIERS.items()
    }
