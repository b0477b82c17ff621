"""The path target end to end in the library: the loader's path targets (complete, causal, at
30 s the pipeline's target), training, the bundle's `sample_paths` and `PathDiffusion` scored by
`path_metrics_table` beside a path baseline."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from diffstock_ml.baselines import ScaleFit
from diffstock_ml.baselines.base import at_anchors
from diffstock_ml.batches import Normaliser, WindowLoader
from diffstock_ml.config import WindowConfig
from diffstock_ml.features import FEATURE_COLUMNS
from diffstock_ml.market import HORIZON_S, TICK
from diffstock_ml.model import DiffusionForecaster, ModelConfig, SamplerConfig
from diffstock_ml.model.bundle import load_bundle, make_bundle, save_bundle
from diffstock_ml.paths import (
    HORIZONS,
    EwmaRandomWalk,
    PathDiffusion,
    path_metrics_table,
    realised_paths,
)
from diffstock_ml.train import TrainConfig, train
from diffstock_ml.train.profiles import PROFILES
from diffstock_ml.windows import DayArrays, complete_path_anchors, load_day_arrays

TINY = PROFILES["tiny"].model
TINY_PATHS = dataclasses.replace(TINY, path_horizons=HORIZONS)
SAMPLER = SamplerConfig(steps=5, n_samples=16, precision="float32")


@pytest.fixture(scope="module")
def days(tiny_windows: list[Path]) -> list[DayArrays]:
    return [load_day_arrays(folder) for folder in tiny_windows]


def hand_day(close: np.ndarray, anchors: list[tuple[int, int]], length: int = 10) -> DayArrays:
    """A `DayArrays` around a hand-written close `[S, T]` and anchors (features random)."""
    n_symbols, n_seconds = close.shape
    x = np.random.default_rng(0).normal(size=(n_symbols, n_seconds, len(FEATURE_COLUMNS)))
    return DayArrays(
        day="20251103",
        symbols=tuple(f"S{i}" for i in range(n_symbols)),
        feature_names=FEATURE_COLUMNS,
        start_ts_us=0,
        config=WindowConfig(length=length),
        x=x.astype(np.float32),
        target=np.full((n_symbols, n_seconds), 0.001),
        sigma=np.full((n_symbols, n_seconds), 0.002),
        close=close,
        anchors=np.array(anchors, np.int32),
    )


def test_loader_paths_are_the_realised_paths_ending_at_log1p_ret_30s(days) -> None:
    scalar = WindowLoader(days, batch_size=512)
    loader = WindowLoader(days, batch_size=512, path_horizons=HORIZONS)
    assert torch.equal(loader.anchors, scalar.anchors)  # every built anchor has its full path
    assert all(complete_path_anchors(day, HORIZON_S).all() for day in days)
    chosen = loader.anchors[torch.randperm(len(loader.anchors))[:2_000]]
    batch = loader.gather(chosen)  # in the given (unsorted) order
    assert batch.path.shape == (2_000, HORIZON_S) and batch.path.dtype == torch.float32
    expected = np.concatenate(
        [
            realised_paths(days[d], chosen[chosen[:, 0] == d][:, 1:].numpy())
            for d in range(len(days))
        ]
    )
    order = np.argsort(chosen[:, 0].numpy(), kind="stable")
    np.testing.assert_allclose(batch.path.numpy()[order], expected, rtol=1e-5, atol=1e-9)
    d, s, t = chosen.numpy().T
    ret_30s = np.array([days[i].target[a, b] for i, a, b in zip(d, s, t, strict=True)])
    np.testing.assert_allclose(batch.path[:, -1].numpy(), np.log1p(ret_30s), rtol=1e-5, atol=1e-9)
    assert scalar.gather(chosen).path is None


def test_anchors_without_a_complete_path_are_not_used_for_path_training() -> None:
    close = np.full((2, 200), 10.0)
    close[1, 60] = np.nan  # a hole in the close: no path through it
    anchors = [(0, 50), (0, 169), (0, 170), (0, 180), (1, 40), (1, 50), (1, 100)]
    day = hand_day(close, anchors)
    assert complete_path_anchors(day, HORIZON_S).tolist() == [1, 1, 0, 0, 0, 0, 1]
    loader = WindowLoader([day], batch_size=8, path_horizons=HORIZONS)
    kept = loader.anchors[:, 1:].tolist()
    assert kept == [[0, 50], [0, 169], [1, 100]]
    assert len(WindowLoader([day], batch_size=8).anchors) == len(anchors)  # scalar: all
    with pytest.raises(ValueError, match="path_horizons"):
        WindowLoader([day], batch_size=8, path_horizons=(1, 31))


def test_a_path_target_reads_only_closes_after_the_anchor_and_the_window_only_before() -> None:
    """No leakage: the window ends at t; column h of the path moves with close[t + h] only."""
    rng = np.random.default_rng(1)
    close = 10.0 + np.cumsum(rng.choice([-0.01, 0.0, 0.01], size=(1, 120)), axis=1)
    t = 40
    base = WindowLoader([hand_day(close, [(0, t)])], batch_size=1, path_horizons=HORIZONS)
    before = base.gather(torch.tensor([[0, 0, t]]))
    changed = close.copy()
    changed[0, :t] += 0.5  # the past of the close
    changed[0, t + HORIZON_S + 1 :] += 0.5  # past the horizon
    changed[0, t + 7] += 0.05  # horizon 7 only
    loader = WindowLoader([hand_day(changed, [(0, t)])], batch_size=1, path_horizons=HORIZONS)
    after = loader.gather(torch.tensor([[0, 0, t]]))
    moved = (after.path != before.path)[0].nonzero().flatten().tolist()
    assert moved == [HORIZONS.index(7)]
    torch.testing.assert_close(after.x, before.x)
    np.testing.assert_array_equal(before.x[0].numpy(), hand_day(close, []).x[0, t - 9 : t + 1])


def untrained_path_bundle(days, spread_factor: float | None = None):
    """A tiny path model whose denoiser uses its input (blocks not at identity), as a bundle."""
    torch.manual_seed(0)
    model = DiffusionForecaster(TINY_PATHS, len(days[0].feature_names))
    for block in model.denoiser.blocks:
        torch.nn.init.normal_(block.fc2.weight, std=0.3)
    normaliser = Normaliser.fit(days[:1])
    return make_bundle(
        TINY_PATHS,
        model.state_dict(),
        normaliser,
        days[0].feature_names,
        120,
        SAMPLER,
        spread_factor=spread_factor,
    )


def raw_inputs(day: DayArrays, anchors: np.ndarray):
    x = np.stack([day.x[s, t - 119 : t + 1] for s, t in anchors])
    return x, at_anchors(day.sigma, anchors), at_anchors(day.close, anchors)


def test_a_saved_path_bundle_draws_paths_on_the_grid_and_predicts_the_end_point(
    days, tmp_path: Path
) -> None:
    bundle = untrained_path_bundle(days)
    path = save_bundle(
        tmp_path / "paths.pt",
        TINY_PATHS,
        bundle.model.state_dict(),
        bundle.normaliser,
        bundle.feature_names,
        120,
        SAMPLER,
    )
    loaded = load_bundle(path)
    assert loaded.model.config == TINY_PATHS
    anchors = days[2].anchors[:7]
    x, sigma, close = raw_inputs(days[2], anchors)
    paths = loaded.sample_paths(x, sigma, close, n_samples=16, seed=3)
    assert paths.samples.shape == (7, 16, HORIZON_S) and paths.horizons == HORIZONS
    ticks = close[:, None, None] * np.exp(paths.samples.numpy()) / TICK
    np.testing.assert_allclose(ticks, np.round(ticks), rtol=0, atol=1e-6)
    torch.testing.assert_close(paths.samples, bundle.sample_paths(x, sigma, close, 16, 3).samples)
    end = loaded.predict(x, sigma, close, n_samples=16, seed=3)
    torch.testing.assert_close(end.continuous, torch.expm1(paths.continuous[..., -1]))


def test_a_scalar_bundle_without_the_path_option_loads_and_samples_as_before(
    days, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    model = DiffusionForecaster(TINY, len(days[0].feature_names))
    bundle = make_bundle(
        TINY, model.state_dict(), Normaliser.fit(days[:1]), days[0].feature_names, 120, SAMPLER
    )
    path = save_bundle(
        tmp_path / "old.pt",
        TINY,
        model.state_dict(),
        bundle.normaliser,
        bundle.feature_names,
        120,
        SAMPLER,
    )
    data = torch.load(path, weights_only=False)
    del data["model_config"]["path_horizons"]  # as written before the option existed
    torch.save(data, path)
    loaded = load_bundle(path)
    assert loaded.model.config == TINY
    x, sigma, close = raw_inputs(days[2], days[2].anchors[:5])
    torch.testing.assert_close(
        loaded.predict(x, sigma, close, seed=1).samples,
        bundle.predict(x, sigma, close, seed=1).samples,
        rtol=0,
        atol=0,
    )
    with pytest.raises(ValueError, match="30 s return only"):
        loaded.sample_paths(x, sigma, close)


def test_path_diffusion_is_scored_beside_a_path_baseline(days) -> None:
    bundle = untrained_path_bundle(days)
    model = PathDiffusion(bundle)
    anchors = days[2].anchors[np.random.default_rng(0).choice(len(days[2].anchors), 60)]
    samples = model.sample_paths(days[2], anchors, 16, np.random.default_rng(5))
    assert samples.shape == (60, 16, HORIZON_S)
    # factor 1: the bundle's own snapped paths, drawn with the same seeds
    seed = int(np.random.default_rng(5).integers(2**31 - 1))
    own = bundle.sample_paths(*raw_inputs(days[2], anchors), n_samples=16, seed=seed).samples
    assert np.isclose(samples, own.numpy(), rtol=0, atol=1e-12).mean() > 0.99
    baseline = EwmaRandomWalk(scale_fit=ScaleFit(max_anchors=200, n_samples=20))
    baseline.fit(days[:1], np.random.default_rng(0))
    forecasts = {
        model.name: samples,
        baseline.name: baseline.sample_paths(days[2], anchors, 16, np.random.default_rng(6)),
    }
    table = path_metrics_table(
        forecasts, realised_paths(days[2], anchors), at_anchors(days[2].close, anchors)
    )
    assert table["model"].to_list() == ["diffusion_paths", "ewma_random_walk"]
    assert np.isfinite(table["energy_score_bp"].to_numpy()).all()


def test_path_diffusion_takes_the_bundles_factor_or_fits_one(days) -> None:
    carried = PathDiffusion(untrained_path_bundle(days, spread_factor=1.3))
    carried.fit(days[:1], np.random.default_rng(0))
    assert carried.scale == 1.3
    fitted = PathDiffusion(untrained_path_bundle(days), ScaleFit(max_anchors=100, n_samples=16))
    fitted.fit(days[:1], np.random.default_rng(0))
    assert np.isfinite(fitted.scale) and fitted.scale > 0
    scalar = dataclasses.replace(untrained_path_bundle(days))
    scalar.model = DiffusionForecaster(TINY, len(days[0].feature_names))
    with pytest.raises(ValueError, match="path horizons"):
        PathDiffusion(scalar)


def test_a_short_path_training_validates_and_ships_a_path_model(days, tmp_path: Path) -> None:
    config = dataclasses.replace(
        PROFILES["tiny"].train,
        max_steps=6,
        eval_every=3,
        checkpoint_every=3,
        log_every=3,
        val_windows=32,
        val_samples=8,
        batch_size=64,
    )
    normaliser = Normaliser.fit(days[:1])
    result = train(
        TINY_PATHS, config, days[:1], days[1:2], normaliser, tmp_path, torch.device("cpu")
    )
    assert len(result.history) == 2 and np.isfinite(result.best_val_crps_bp)
    bundle = make_bundle(
        TINY_PATHS, result.best_state, normaliser, days[0].feature_names, 120, SAMPLER
    )
    x, sigma, close = raw_inputs(days[2], days[2].anchors[:3])
    assert bundle.sample_paths(x, sigma, close, 4).samples.shape == (3, 4, HORIZON_S)


def test_demo_paths_is_the_demo_model_with_the_path_target() -> None:
    demo, paths = PROFILES["demo"], PROFILES["demo_paths"]
    assert paths.model == dataclasses.replace(demo.model, path_horizons=HORIZONS)
    assert paths.train == demo.train and paths.split == demo.split
    assert demo.model.path_horizons == () and ModelConfig().path_horizons == ()
    assert isinstance(paths.train, TrainConfig)
