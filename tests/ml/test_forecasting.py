"""The diffusion model in the forecasts: the same spread-factor treatment as every baseline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from diffstock_ml.baselines import EwmaGaussian
from diffstock_ml.baselines.base import ScaleFit, at_anchors, mean_coverage
from diffstock_ml.evaluation.quantiles import QUANTILE_LEVELS, quantile_name
from diffstock_ml.forecasting import (
    DIFFUSION,
    CalibratedDiffusion,
    ForecastConfig,
    forecast_day,
    model_rng,
)
from diffstock_ml.model.bundle import load_bundle, save_bundle
from diffstock_ml.splits import fit_normaliser, split_days
from diffstock_ml.train import train
from diffstock_ml.train.profiles import PROFILES
from diffstock_ml.windows import DayArrays, load_day_arrays

TINY = PROFILES["tiny"]
FIT = ScaleFit(max_anchors=600, n_samples=100)


@pytest.fixture(scope="module")
def days(tiny_windows: list[Path]) -> dict[str, DayArrays]:
    return {folder.name: load_day_arrays(folder) for folder in tiny_windows}


@pytest.fixture(scope="module")
def calibrated(days, tmp_path_factory: pytest.TempPathFactory) -> CalibratedDiffusion:
    """The tiny profile's model (40 steps), with its factor fitted."""
    folder = tmp_path_factory.mktemp("tiny_model")
    splits = split_days(list(days), 1, 1, 1)
    normaliser = fit_normaliser(days, splits)
    train_days = [days[d] for d in splits.train]
    result = train(
        TINY.model,
        TINY.train,
        train_days,
        [days[d] for d in splits.val],
        normaliser,
        folder,
        torch.device("cpu"),
    )
    first = train_days[0]
    path = save_bundle(
        folder / "bundle.pt",
        TINY.model,
        result.best_state,
        normaliser,
        first.feature_names,
        first.config.length,
    )
    model = CalibratedDiffusion(load_bundle(path), FIT)
    model.fit(train_days, np.random.default_rng(0))
    return model


def test_the_models_spread_factor_brings_training_coverage_to_nominal(
    calibrated: CalibratedDiffusion, days
) -> None:
    day = days[sorted(days)[0]]  # its training day
    assert 0.2 < calibrated.scale < 5.0, "the factor is inside its search grid"
    rng = np.random.default_rng(1)
    anchors = day.anchors[np.sort(rng.choice(len(day.anchors), 600, replace=False))]
    samples = calibrated.sample(day, anchors, 100, np.random.default_rng(2))
    target, close = at_anchors(day.target, anchors), at_anchors(day.close, anchors)
    assert mean_coverage(samples, target, close, 0.9) == pytest.approx(0.9, abs=0.04)


def test_the_models_spread_factor_undoes_a_known_over_dispersion(
    calibrated: CalibratedDiffusion, days
) -> None:
    """The same model drawing 1.5x wider deviations gets a factor 1.5x smaller."""
    widened = CalibratedDiffusion(calibrated.bundle, FIT)

    def wide_draw(*args, **kwargs):
        draws = CalibratedDiffusion.draw(widened, *args, **kwargs)
        return draws._replace(deviations=1.5 * draws.deviations)

    widened.draw = wide_draw
    widened.fit([days[sorted(days)[0]]], np.random.default_rng(0))
    assert widened.scale == pytest.approx(calibrated.scale / 1.5, rel=0.02)


def test_forecast_day_draws_every_model_at_the_same_anchors(
    calibrated: CalibratedDiffusion, days
) -> None:
    day = days[sorted(days)[-1]]  # the test day
    ewma = EwmaGaussian(scale_fit=FIT)
    ewma.fit([days[sorted(days)[0]]], np.random.default_rng(0))
    anchors = day.anchors[:: max(1, len(day.anchors) // 50)]
    config = ForecastConfig(anchor_stride_s=1, n_samples=20)
    table = forecast_day(day, anchors, {DIFFUSION: calibrated, "ewma_gaussian": ewma}, config)
    by_model = table.partition_by("model", as_dict=True)
    assert {key[0] for key in by_model} == {DIFFUSION, "ewma_gaussian"}
    first, second = (frame.select("symbol", "second") for frame in by_model.values())
    assert first.equals(second) and first.height == len(anchors)
    samples = np.stack(table["samples"].to_numpy())
    stored = table.select(quantile_name(q) for q in QUANTILE_LEVELS).to_numpy()
    np.testing.assert_allclose(stored, np.quantile(samples, QUANTILE_LEVELS, axis=1).T)
    latency = table.group_by("model").agg(pl.col("latency_ms").unique())["latency_ms"]
    assert all(len(v) == 1 and v[0] > 0 for v in latency.to_list()), "one measured value each"
    again = forecast_day(day, anchors, {DIFFUSION: calibrated}, config)
    assert (
        again["samples"].to_list() == table.filter(table["model"] == DIFFUSION)["samples"].to_list()
    ), "the same seed draws the same forecast"


def test_a_models_draws_do_not_depend_on_the_other_models(
    calibrated: CalibratedDiffusion, days
) -> None:
    """Each model draws from its own stream (`model_rng`): the EWMA's forecasts are the same
    alone, after the diffusion model and in either order."""
    day = days[sorted(days)[-1]]
    ewma = EwmaGaussian(scale_fit=FIT)
    ewma.fit([days[sorted(days)[0]]], model_rng("ewma_gaussian", 0))
    anchors = day.anchors[:: max(1, len(day.anchors) // 50)]
    config = ForecastConfig(anchor_stride_s=1, n_samples=20)

    def ewma_draws(models: dict) -> list:
        table = forecast_day(day, anchors, models, config)
        return table.filter(table["model"] == "ewma_gaussian")["samples"].to_list()

    alone = ewma_draws({"ewma_gaussian": ewma})
    assert ewma_draws({DIFFUSION: calibrated, "ewma_gaussian": ewma}) == alone
    assert ewma_draws({"ewma_gaussian": ewma, DIFFUSION: calibrated}) == alone
    assert model_rng("ewma_gaussian", 0, 1).random() != model_rng("student_t_head", 0, 1).random()


def test_draws_over_many_anchors_come_a_chunk_of_windows_at_a_time(
    calibrated: CalibratedDiffusion, days, monkeypatch: pytest.MonkeyPatch
) -> None:
    import diffstock_ml.forecasting as forecasting

    day = days[sorted(days)[-1]]
    anchors = day.anchors[:20]
    monkeypatch.setattr(forecasting, "WINDOW_CHUNK", 7)  # 20 anchors -> chunks of 7, 7, 6
    draws = calibrated.draw(day, anchors, 10, np.random.default_rng(0))
    assert draws.deviations.shape == (20, 10) and np.isfinite(draws.deviations).all()
    assert np.isfinite(draws.center).all()
