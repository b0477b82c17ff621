"""The path target of the diffusion model: config, shapes, standardisation, snapping at every
horizon, the scalar model left as it was, and a toy random walk whose variance grows with h."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from diffstock_ml.market import HORIZON_S, TICK
from diffstock_ml.model import (
    DiffusionForecaster,
    ModelConfig,
    SamplerConfig,
    forecast,
    forecast_paths,
    snap_path_returns,
    to_model_target,
    to_path_target,
)
from diffstock_ml.model.forecast import (
    PathForecast,
    apply_path_spread_factor,
    dequantise_paths,
    path_scale,
)
from diffstock_ml.paths import HORIZONS, snap_paths

B, N, F = 5, 24, 7
SMALL = ModelConfig(
    d_model=16, n_heads=2, n_layers=2, denoiser_hidden=32, denoiser_depth=2, time_embed_dim=16
)
PATHS = dataclasses.replace(SMALL, path_horizons=HORIZONS)
# the sampler the golden draws below were written with (the default then)
FAST = SamplerConfig(sampler="dpmpp_2m", steps=8, n_samples=6, precision="float32")


def windows(seed: int = 0, batch: int = B) -> torch.Tensor:
    return torch.randn(batch, N, F, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("horizons", [(0, 30), (1, 29), (5, 1, 30), (1, 1, 30), (1, 31)])
def test_path_horizons_must_increase_inside_the_horizon_and_end_at_30s(horizons) -> None:
    with pytest.raises(ValueError, match="path_horizons"):
        ModelConfig(path_horizons=horizons)


def test_path_horizons_from_json_become_a_tuple_and_set_the_target_width() -> None:
    config = ModelConfig(path_horizons=[1, 5, 10, 15, 20, 25, 30])  # as a JSON list
    assert config.path_horizons == (1, 5, 10, 15, 20, 25, 30) and config.target_dim == 7
    assert ModelConfig().path_horizons == () and ModelConfig().target_dim == 1
    hash(config)  # still a frozen, hashable config


def test_scalar_model_keeps_its_parameter_shapes() -> None:
    """A scalar bundle's state dict must still load: 1 input and output unit, a 2-unit head."""
    state = DiffusionForecaster(SMALL, F).state_dict()
    assert state["denoiser.input.weight"].shape == (32, 1)
    assert state["denoiser.output.weight"].shape == (1, 32)
    assert state["location_scale.mlp.2.weight"].shape == (2, 16)
    paths = DiffusionForecaster(PATHS, F).state_dict()
    assert paths["denoiser.input.weight"].shape == (32, HORIZON_S)
    assert paths["denoiser.output.weight"].shape == (HORIZON_S, 32)
    assert paths["location_scale.mlp.2.weight"].shape == (2 * HORIZON_S, 16)


def test_scalar_loss_and_samples_are_the_ones_before_the_path_target() -> None:
    """Golden values written by the code before the path target existed (same seeds, float32,
    one thread): the scalar model's initialisation, loss and draws are unchanged."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        model = DiffusionForecaster(SMALL, F)
        target = torch.randn(B, generator=torch.Generator().manual_seed(1))
        loss = model.loss(windows(), target, 3, torch.Generator().manual_seed(7)).item()
        draws = model.sample(windows(), 6, FAST, torch.Generator().manual_seed(1))
    finally:
        torch.set_num_threads(threads)
    assert loss == pytest.approx(GOLDEN_LOSS, rel=1e-5)
    np.testing.assert_allclose(draws[0].numpy(), GOLDEN_DRAWS, rtol=1e-4, atol=1e-5)


# written by `3c4100f` (before the path target) with the seeds above
GOLDEN_LOSS = 1.7736334800720215
GOLDEN_DRAWS = [-2.869377851, -1.651608944, -1.435757637, -2.976623774, 1.107283473, -1.323790789]


def test_path_loss_takes_b_by_h_targets_and_backpropagates() -> None:
    model = DiffusionForecaster(PATHS, F)
    rows: list[torch.Size] = []
    model.denoiser.register_forward_hook(lambda _m, inputs, _o: rows.append(inputs[0].shape))
    loss = model.loss(windows(), torch.randn(B, HORIZON_S), 4, torch.Generator().manual_seed(0))
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert rows == [torch.Size([B * 4, HORIZON_S])]
    loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    with pytest.raises(ValueError, match="target of shape"):
        model.loss(windows(), torch.randn(B), 2)  # a scalar target for a path model


def test_sample_paths_is_b_by_s_by_h_and_each_model_draws_its_own_shape() -> None:
    model = DiffusionForecaster(PATHS, F)
    draws = model.sample_paths(windows(), 6, FAST, torch.Generator().manual_seed(1))
    assert draws.shape == (B, 6, HORIZON_S) and torch.isfinite(draws).all()
    again = model.sample_paths(windows(), 6, FAST, torch.Generator().manual_seed(1))
    assert torch.equal(draws, again)
    with pytest.raises(ValueError, match="sample_paths"):
        model.sample(windows(), 6, FAST)
    with pytest.raises(ValueError, match="scalar"):
        DiffusionForecaster(SMALL, F).sample_paths(windows(), 6, FAST)


def test_each_horizon_is_standardised_by_sigma_times_root_h_over_30() -> None:
    sigma = torch.tensor([1e-3, 2e-3], dtype=torch.float64)
    paths = torch.tensor([[h * 1e-5 for h in HORIZONS], [-(h**0.5) * 2e-3 for h in HORIZONS]])
    z = to_path_target(paths, sigma, PATHS)  # [2, H]
    expected = paths.double() / (sigma[:, None] * torch.sqrt(torch.tensor(HORIZONS) / 30.0))
    torch.testing.assert_close(z, expected.float())
    assert z[1].tolist() == pytest.approx([-(30**0.5)] * HORIZON_S)  # a root-h path: all equal
    # at h = 30 the path target is the log of the scalar target's gross return
    ret_30s = torch.tensor([0.004, -0.002], dtype=torch.float64)
    end = to_path_target(torch.log1p(ret_30s)[:, None].expand(2, 30), sigma, PATHS)[:, -1]
    torch.testing.assert_close(end, torch.log1p(ret_30s).float() / sigma.float())
    assert to_model_target(ret_30s, sigma, SMALL).tolist() != end.tolist()  # simple vs log


def test_dequantised_paths_move_each_price_within_half_a_tick() -> None:
    close = torch.tensor([10.0, 250.0], dtype=torch.float64)
    paths = torch.zeros(2, HORIZON_S, dtype=torch.float64)
    moved = dequantise_paths(paths, close, TICK, torch.Generator().manual_seed(0))
    price_move = close[:, None] * torch.expm1(moved)  # [2, H] dollars
    assert (price_move.abs() <= TICK / 2).all()
    assert len(set(price_move[0].tolist())) == HORIZON_S  # independent at every horizon


def test_path_forecasts_lie_on_the_grid_at_every_horizon_and_end_as_the_scalar_forecast() -> None:
    model = DiffusionForecaster(PATHS, F)
    sigma = torch.full((B,), 2e-3, dtype=torch.float64)
    close = torch.tensor([9.87, 14.02, 100.0, 250.31, 1_000.5], dtype=torch.float64)
    result = forecast_paths(model, windows(), sigma, close, FAST, torch.Generator().manual_seed(0))
    assert result.samples.shape == (B, 6, HORIZON_S) and result.horizons == HORIZONS
    ticks = close[:, None, None] * torch.exp(result.samples) / TICK
    torch.testing.assert_close(ticks, ticks.round(), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(
        result.samples.numpy(), snap_paths(result.continuous.numpy(), close.numpy())
    )
    scaled = result.continuous / path_scale(sigma, PATHS)[:, None, :]
    assert scaled.abs().max() < 50  # the untrained model's standardised draws are O(1)
    end = forecast(model, windows(), sigma, close, FAST, torch.Generator().manual_seed(0))
    torch.testing.assert_close(end.continuous, torch.expm1(result.continuous[..., -1]))
    end_ticks = close[:, None] * (1 + end.samples) / TICK
    torch.testing.assert_close(end_ticks, end_ticks.round(), rtol=0, atol=1e-6)


def test_snapping_paths_is_the_path_baselines_snapping() -> None:
    paths = torch.randn(3, 4, HORIZON_S, generator=torch.Generator().manual_seed(0)) * 1e-3
    close = torch.tensor([12.34, 56.78, 910.11], dtype=torch.float64)
    snapped = snap_path_returns(paths, close, TICK)
    np.testing.assert_array_equal(snapped.numpy(), snap_paths(paths.numpy(), close.numpy()))
    assert (snapped == 0).any()  # a move of zero ticks is exactly 0


def test_the_path_spread_factor_scales_each_horizon_around_its_median() -> None:
    """What the served path model applies: deviations from each horizon's median times the
    factor, the price snapped to the grid at every horizon; a factor of 1 changes nothing."""
    generator = torch.Generator().manual_seed(0)
    continuous = torch.randn(4, 201, 3, generator=generator, dtype=torch.float64) * 1e-3
    close = torch.tensor([100.0, 10.03, 55.55, 7.5], dtype=torch.float64)
    raw = PathForecast(continuous.clone(), continuous, (10, 20, 30))
    sampler = SamplerConfig()
    assert apply_path_spread_factor(raw, 1.0, close, sampler) is raw

    wider = apply_path_spread_factor(raw, 2.0, close, sampler)
    median = continuous.median(dim=1, keepdim=True).values  # odd count: the middle draw
    torch.testing.assert_close(wider.continuous, median + 2.0 * (continuous - median))
    prices = close[:, None, None] * torch.exp(wider.samples)
    torch.testing.assert_close(prices, torch.round(prices / TICK) * TICK, rtol=0, atol=1e-9)
    assert wider.horizons == raw.horizons
