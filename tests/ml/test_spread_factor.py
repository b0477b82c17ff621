"""The spread factor travels in the bundle: fitted once, applied alike when served and reported."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from diffstock_ml.baselines.base import ScaleFit, snap_returns
from diffstock_ml.batches import Normaliser, WindowLoader
from diffstock_ml.forecasting import CalibratedDiffusion, fit_spread_factor
from diffstock_ml.model.bundle import load_bundle, save_bundle
from diffstock_ml.model.config import SamplerConfig
from diffstock_ml.model.diffusion import DiffusionForecaster
from diffstock_ml.model.forecast import Forecast, apply_spread_factor
from diffstock_ml.train.profiles import PROFILES
from diffstock_ml.windows import DayArrays, load_day_arrays

TINY = PROFILES["tiny"].model
FIT = ScaleFit(max_anchors=200, n_samples=20)


@pytest.fixture(scope="module")
def day(tiny_windows: list[Path]) -> DayArrays:
    return load_day_arrays(tiny_windows[0])


def untrained(path: Path, day: DayArrays, spread_factor: float | None = None) -> Path:
    f = len(day.feature_names)
    torch.manual_seed(0)
    return save_bundle(
        path,
        TINY,
        DiffusionForecaster(TINY, n_features=f).state_dict(),
        Normaliser((0.0,) * f, (1.0,) * f),
        day.feature_names,
        day.config.length,
        SamplerConfig(steps=5, n_samples=20),
        spread_factor,
    )


def test_the_factor_spreads_draws_around_their_median_as_the_baselines_do() -> None:
    rng = np.random.default_rng(0)
    continuous = rng.normal(0, 1e-3, size=(4, 51))
    close = np.array([10.0, 55.55, 100.0, 7.31])
    raw = Forecast(torch.from_numpy(continuous), torch.from_numpy(continuous))

    spread = apply_spread_factor(raw, 1.7, torch.from_numpy(close), SamplerConfig())

    center = np.median(continuous, axis=1)  # `CalibratedDiffusion.draw` + `Baseline.sample`
    expected = center[:, None] + 1.7 * (continuous - center[:, None])
    np.testing.assert_allclose(spread.continuous.numpy(), expected, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(spread.samples.numpy(), snap_returns(expected, close))
    assert apply_spread_factor(raw, 1.0, torch.from_numpy(close), SamplerConfig()) is raw


def test_bundles_store_the_factor_and_older_ones_load_as_raw(
    day: DayArrays, tmp_path: Path
) -> None:
    calibrated = load_bundle(untrained(tmp_path / "calibrated.pt", day, 1.25))
    old = torch.load(untrained(tmp_path / "old.pt", day), weights_only=False)
    del old["spread_factor"]  # as written before the factor was stored
    torch.save(old, tmp_path / "old.pt")

    assert calibrated.spread_factor == 1.25 and calibrated.calibrated
    raw = load_bundle(tmp_path / "old.pt")
    assert raw.spread_factor is None and not raw.calibrated
    with pytest.raises(ValueError, match="spread_factor must be finite and positive, got nan"):
        untrained(tmp_path / "bad.pt", day, float("nan"))


def test_a_calibrated_bundle_is_not_fitted_again(day: DayArrays, tmp_path: Path) -> None:
    bundle = load_bundle(untrained(tmp_path / "bundle.pt", day, 0.8))
    model = CalibratedDiffusion(bundle, FIT)
    rng = np.random.default_rng(0)

    model.fit([day], rng)

    assert model.scale == 0.8
    assert rng.integers(1_000) == np.random.default_rng(0).integers(1_000), "nothing was drawn"


def test_fitted_where_trained_is_what_forecasts_would_fit(day: DayArrays, tmp_path: Path) -> None:
    bundle = load_bundle(untrained(tmp_path / "bundle.pt", day))
    in_forecasts = CalibratedDiffusion(bundle, FIT)
    in_forecasts.fit([day], np.random.default_rng(3))

    factor = fit_spread_factor(bundle, [day], seed=3, scale_fit=FIT)

    assert factor == in_forecasts.scale
    assert 0.2 <= factor <= 5.0


def test_served_draws_equal_the_reported_ones(day: DayArrays, tmp_path: Path) -> None:
    """`predict(calibrated=True)` (the pyfunc) draws what `forecasts` writes for the model."""
    bundle = load_bundle(untrained(tmp_path / "bundle.pt", day, 1.6))
    reported = CalibratedDiffusion(bundle, FIT)
    reported.fit([day], np.random.default_rng(0))
    anchors = day.anchors[:: max(1, len(day.anchors) // 12)][:12]

    samples = reported.sample(day, anchors, 30, np.random.default_rng(7))

    seed = int(np.random.default_rng(7).integers(2**31 - 1))  # the one chunk's seed in `draw`
    index = torch.from_numpy(np.column_stack([np.zeros(len(anchors)), anchors]).astype(np.int64))
    batch = WindowLoader([day], batch_size=len(anchors), shuffle=False).gather(index)
    served = bundle.predict(
        batch.x, batch.sigma.double(), batch.close.double(), 30, seed, calibrated=True
    )
    # the same draws, spread by the same factor and snapped alike (a draw on a tick's edge may
    # round the other way: the median is computed by numpy in one, torch in the other)
    assert served.samples.shape == samples.shape
    assert np.mean(served.samples.numpy() == samples) > 0.99
