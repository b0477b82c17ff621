"""Standardised samples to returns on the price grid, dequantised training targets, `Forecast`."""

import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from diffstock_ml.model import (
    DiffusionForecaster,
    Forecast,
    ModelConfig,
    SamplerConfig,
    dequantise,
    forecast,
    snap_to_grid,
    target_scale,
    to_model_target,
    to_returns,
)

TICK = 0.01


def on_grid(returns: torch.Tensor, close: torch.Tensor) -> bool:
    """Whether every implied future price is a whole number of ticks from the gridded close."""
    price = torch.round(close.double() / TICK)[:, None] * (1 + returns)  # in ticks
    return bool(((price - price.round()).abs() < 1e-6).all())


@settings(max_examples=60, deadline=None)
@given(
    close=st.lists(st.floats(1.0, 2000.0), min_size=1, max_size=4),
    z=st.lists(st.floats(-8.0, 8.0), min_size=3, max_size=3),
    sigma=st.floats(1e-5, 5e-3),
)
def test_snapped_returns_land_exactly_on_the_price_grid(close, z, sigma) -> None:
    close_t = torch.tensor(close, dtype=torch.float32)  # float32 as in `Batch.close`
    z_t = torch.tensor([z] * len(close))
    returns = to_returns(z_t, torch.full((len(close),), sigma), close_t, TICK, snap=True)
    assert returns.dtype == torch.float64 and returns.shape == (len(close), 3)
    assert on_grid(returns, close_t)
    continuous = to_returns(z_t, torch.full((len(close),), sigma), close_t, TICK, snap=False)
    torch.testing.assert_close(continuous, z_t.double() * sigma)
    # snapping moves the price by at most half a tick (plus the close's own rounding)
    assert ((returns - continuous).abs() * close_t.double()[:, None] <= TICK * 0.5 + 1e-3).all()


def test_a_zero_return_stays_exactly_zero_and_small_moves_snap_to_zero() -> None:
    close = torch.tensor([14.23, 0.57, 431.07], dtype=torch.float32)
    returns = torch.tensor([[0.0, 1e-5, -2e-6, 2e-3]] * 3, dtype=torch.float64)
    snapped = snap_to_grid(returns, close, TICK)
    assert (snapped[:, :3] == 0.0).all()
    assert snapped[0, 3] == pytest.approx(0.03 / 14.23)  # 14.23 · 2e-3 = 2.8 cents -> 3 ticks


def test_dequantise_keeps_the_future_price_within_half_a_tick() -> None:
    close = torch.tensor([14.23, 100.5, 3.02] * 1000, dtype=torch.float64)
    target = torch.tensor([0.0, 0.01 / 100.5, -0.02 / 3.02] * 1000, dtype=torch.float64)
    noisy = dequantise(target, close, TICK, torch.Generator().manual_seed(0))
    moved = (noisy - target) * close  # price change in dollars
    assert noisy.dtype == target.dtype and moved.abs().max() <= TICK / 2 + 1e-12
    assert moved.std().item() == pytest.approx(TICK / 12**0.5, rel=0.05)  # uniform spread
    again = dequantise(target, close, TICK, torch.Generator().manual_seed(0))
    assert torch.equal(noisy, again)


def test_model_target_round_trips_through_target_scale() -> None:
    ret, sigma = torch.tensor([1e-4, -3e-4]), torch.tensor([2e-4, 1e-4])
    for config in (ModelConfig(), ModelConfig(target="return", return_scale=1e-3)):
        x0 = to_model_target(ret, sigma, config)
        back = to_returns(x0[:, None], target_scale(sigma, config), torch.ones(2), snap=False)
        torch.testing.assert_close(back[:, 0], ret.double(), rtol=1e-6, atol=1e-12)
    assert to_model_target(ret, sigma, ModelConfig()).tolist() == pytest.approx([0.5, -3.0])


def test_forecast_statistics_match_numpy() -> None:
    samples = torch.randn(4, 501, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    fc = Forecast(samples * 1e-3)
    levels = [0.01, 0.05, 0.25, 0.5, 0.9, 0.99]
    expected = np.quantile(fc.samples.numpy(), levels, axis=1).T  # numpy's default "linear"
    np.testing.assert_allclose(fc.quantiles(levels).numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(fc.var(0.05).numpy(), -expected[:, 1], rtol=1e-12)
    np.testing.assert_allclose(fc.mean().numpy(), fc.samples.numpy().mean(1))
    np.testing.assert_allclose(fc.std().numpy(), fc.samples.numpy().std(1, ddof=1))
    with pytest.raises(ValueError, match="levels"):
        fc.quantiles([0.0, 0.5])


def test_forecast_samples_the_model_in_returns() -> None:
    config = ModelConfig(
        d_model=16, n_heads=2, n_layers=1, denoiser_hidden=16, denoiser_depth=1, time_embed_dim=8
    )
    model = DiffusionForecaster(config, 3)
    x, sigma = torch.randn(2, 10, 3), torch.tensor([1e-3, 2e-3])
    close = torch.tensor([14.23, 50.0])
    sampler = SamplerConfig(steps=4, n_samples=32)
    fc = forecast(model, x, sigma, close, sampler, torch.Generator().manual_seed(0))
    assert fc.samples.shape == fc.continuous.shape == (2, 32)
    assert on_grid(fc.samples, close)
    plain = forecast(model, x, sigma, close, dataclasses.replace(sampler, snap_to_tick=False))
    assert plain.samples is plain.continuous
