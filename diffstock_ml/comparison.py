"""Every model fitted on the same training days and forecast at the same anchors of the test days.

`compare_on_test_days` is what the `forecasts` asset runs: the diffusion model (with the spread
factor its bundle carries), every baseline of `BASELINES` and, where the synthetic market's
latent state exists, the oracle are fitted on the training days, the direction classifiers
(`DIRECTION_CLASSIFIERS`) and point regressors (`POINT_REGRESSORS`, stopped early on the
validation days) beside them, several at a time in forked processes where the machine allows
(`side_by_side`); then every test day's anchors on the stride grid are forecast by
all of them. The classifiers also give P(up) on the validation days' anchors (same stride), on
which the report calibrates them and chooses their confidence threshold.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import torch

from diffstock_ml import side_by_side
from diffstock_ml.baselines import (
    BASELINES,
    DIRECTION_CLASSIFIERS,
    POINT_REGRESSORS,
    Baseline,
    GarchT,
    Oracle,
    PointRegressor,
)
from diffstock_ml.baselines.direction import DirectionClassifier
from diffstock_ml.evaluation.point_forecasts import POINT_PREFIX
from diffstock_ml.forecasting import (
    DIFFUSION,
    CalibratedDiffusion,
    ForecastConfig,
    anchor_context,
    forecast_day,
    model_rng,
    select_anchors,
)
from diffstock_ml.model.bundle import ModelBundle
from diffstock_ml.model.config import ModelConfig
from diffstock_ml.splits import Splits
from diffstock_ml.synthetic import has_latent_state
from diffstock_ml.train.config import TrainConfig
from diffstock_ml.windows import DayArrays

TORCH_BASELINES = ("gaussian_head", "student_t_head")  # trained like the model, on its encoder


@dataclass(frozen=True)
class Contenders:
    """How the models that learn are trained, and where the oracle's latent state may be."""

    head_training: TrainConfig  # the likelihood heads: the model's own budget, a fair fight
    direction_model: ModelConfig  # the direction classifiers' and point regressors' width
    direction_training: TrainConfig  # their budget (the regressors may stop earlier)
    latent_root: Path | None = None  # the synthetic market's latent state (adds the oracle)


@dataclass(frozen=True)
class Comparison:
    """The test days' forecasts of every model, and what was fitted to make them."""

    forecasts: pl.DataFrame  # one row per (model, anchor): samples and the anchor's context
    # P(up) of each direction classifier (`prob_up_<name>`) at the same anchors and at the
    # validation days' anchors; `split` says which ("val" or "test")
    directions: pl.DataFrame
    points: pl.DataFrame  # each point regressor's forecast (`point_<name>`) at the same anchors
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
    train, val = [arrays[d] for d in splits.train], [arrays[d] for d in splits.val]
    models, classifiers, regressors = _fitted(bundle, train, val, contenders, config, device, log)
    scales = [(name, float(model.scale)) for name, model in models.items()]
    directions = [_directions(arrays[day], config, classifiers, "val") for day in splits.val]

    tables, points = [], []
    for day in splits.test:
        anchors = select_anchors(arrays[day], config.anchor_stride_s)
        log(f"{day}: forecasting {len(anchors)} anchors with {len(models)} models")
        garch = models.get("garch_t")
        if isinstance(garch, GarchT) and (pooled := garch.pooled_symbols(arrays[day])):
            log(f"{day}: garch_t uses pooled parameters for {', '.join(pooled)}")
        tables.append(forecast_day(arrays[day], anchors, models, config))
        directions.append(_directions(arrays[day], config, classifiers, "test"))
        points.append(point_forecasts(arrays[day], anchors, regressors))
    return Comparison(
        forecasts=pl.concat(tables),
        directions=pl.concat(directions),
        points=pl.concat(points),
        scales=pl.DataFrame(scales, schema=["model", "scale"], orient="row"),
        diffusion_factor_from="bundle" if bundle.calibrated else "fitted here (raw bundle)",
    )


def _fitted(
    bundle: ModelBundle,
    train: Sequence[DayArrays],
    val: Sequence[DayArrays],
    contenders: Contenders,
    config: ForecastConfig,
    device: torch.device,
    log: Callable[[str], None],
) -> tuple[dict[str, Baseline], dict[str, DirectionClassifier], dict[str, PointRegressor]]:
    """Every model, classifier and regressor fitted on `train` (the regressors stopped early on
    `val`), each on its own random stream.

    The diffusion model (its spread factor, for an older raw bundle) is fitted here; all the
    others side by side in worker processes where that is possible (`side_by_side`), the
    networks first since they take longest.
    """
    models = _models(bundle, contenders, device, log)
    classifiers, regressors = _side_models(contenders, device)
    models[DIFFUSION].fit(train, model_rng(DIFFUSION, config.seed))
    others = {name: model for name, model in models.items() if name != DIFFUSION}
    heads = {name: others[name] for name in TORCH_BASELINES if name in others}
    unfitted = {**heads, **classifiers, **regressors, **others}  # keys keep first positions

    def fit(name: str, model: Baseline | DirectionClassifier | PointRegressor) -> None:
        if isinstance(model, PointRegressor):
            model.fit(train, model_rng(name, config.seed), val)
        else:
            model.fit(train, model_rng(name, config.seed))

    windows = sum(day.nbytes for day in (*train, *val))  # each worker's copy, at most
    how = side_by_side.plan(len(unfitted), device, config.fit_workers, windows)
    log(f"fitting {len(unfitted)} models {how.workers} at a time, {how.threads} torch threads each")
    fitted = side_by_side.fit_side_by_side(unfitted, fit, how)
    for name, (model, seconds) in fitted.items():
        steps = f", {len(model.losses)} steps" if hasattr(model, "losses") else ""
        scale = f", scale {model.scale:.3f}" if name in models else ""
        log(f"fitted {name} in {seconds:.1f} s{steps}{scale}")
    models.update({name: fitted[name].model for name in others})
    return (
        models,
        {name: fitted[name].model for name in classifiers},
        {name: fitted[name].model for name in regressors},
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
    if has_latent_state(latent):
        models["oracle"] = Oracle(latent)
    else:
        log(f"no synthetic latent state at {latent}: no oracle forecast")
    return models


def _side_models(
    contenders: Contenders, device: torch.device
) -> tuple[dict[str, DirectionClassifier], dict[str, PointRegressor]]:
    """The direction classifiers and the point regressors, unfitted, on the same budget."""
    settings = {
        "model_config": contenders.direction_model,
        "train_config": contenders.direction_training,
        "device": device,
    }
    classifiers = {name: cls(**settings) for name, cls in DIRECTION_CLASSIFIERS.items()}
    regressors = {name: cls(**settings) for name, cls in POINT_REGRESSORS.items()}
    return classifiers, regressors


def _directions(
    day: DayArrays,
    config: ForecastConfig,
    classifiers: Mapping[str, DirectionClassifier],
    split: str,
) -> pl.DataFrame:
    """P(up) of every classifier at the day's anchors on the stride grid, with their context."""
    anchors = select_anchors(day, config.anchor_stride_s)
    context = anchor_context(day, anchors).select(
        "day", "symbol", "second", "ts", "target", "close"
    )
    return context.with_columns(
        pl.lit(split).alias("split"),
        *(pl.Series(f"prob_up_{name}", c.prob_up(day, anchors)) for name, c in classifiers.items()),
    )


def point_forecasts(
    day: DayArrays, anchors: np.ndarray, regressors: Mapping[str, PointRegressor]
) -> pl.DataFrame:
    """Each point regressor's forecast of ret_30s (`point_<name>`) at `anchors` of `day`."""
    context = anchor_context(day, anchors).select("day", "symbol", "second", "target")
    return context.with_columns(
        pl.Series(f"{POINT_PREFIX}{name}", r.predict(day, anchors))
        for name, r in regressors.items()
    )
