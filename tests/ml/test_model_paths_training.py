"""A short CPU training of a path model on a toy random walk: it learns how the path spreads.

Each window carries a latent u (feature 0 hovers around it); its path over the next 30 s is a
Gaussian random walk of 1 s log returns with standard deviation sd/√30, sd = sigma·exp(0.5·u),
where sigma plays the role of sigma_30s. The cumulative return at h then has variance sd²·h/30
and correlation sqrt(h/h') with the one at h' > h. After a few hundred steps the sampled paths
must show both: variance linear in h (which fails when horizons are mixed up between the
target, the head and the way back to returns) and the walk's correlation across horizons
(which fails when horizons are drawn independently).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from diffstock_ml.model import (
    DiffusionForecaster,
    ModelConfig,
    SamplerConfig,
    forecast_paths,
    to_path_target,
)
from diffstock_ml.paths import HORIZONS

N, F, H = 16, 3, len(HORIZONS)
CONFIG = ModelConfig(
    d_model=32,
    n_heads=2,
    n_layers=1,
    dropout=0.0,
    denoiser_hidden=64,
    denoiser_depth=2,
    time_embed_dim=32,
    path_horizons=HORIZONS,
)


def walk_batch(size: int, generator: torch.Generator):
    """Windows `[size, N, F]`, sigma `[size]`, log-return paths `[size, H]`, true sd `[size]`."""
    u = torch.rand(size, generator=generator) * 2 - 1  # [size]
    signal = u[:, None, None] + 0.1 * torch.randn(size, N, 1, generator=generator)
    x = torch.cat([signal, torch.randn(size, N, F - 1, generator=generator)], dim=-1)
    sigma = 1e-3 * (1 + torch.rand(size, generator=generator)).double()  # [size]
    sd = sigma * torch.exp(0.5 * u).double()  # [size] of the 30 s return
    steps = torch.randn(size, H, generator=generator, dtype=torch.float64) / np.sqrt(H)
    return x, sigma, sd[:, None] * steps.cumsum(dim=1), sd


@pytest.fixture(scope="module")
def trained() -> DiffusionForecaster:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(1)
    model = DiffusionForecaster(CONFIG, F)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    steps = 300
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 3e-3, total_steps=steps)
    for _ in range(steps):
        x, sigma, paths, _ = walk_batch(256, generator)
        loss = model.loss(x, to_path_target(paths, sigma, CONFIG), 4, generator)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
    torch.set_num_threads(threads)
    return model.eval()


@pytest.fixture(scope="module")
def standardised_draws(trained: DiffusionForecaster) -> np.ndarray:
    """`[W·S, H]` sampled paths of 200 test windows divided by each window's true sd."""
    test = torch.Generator().manual_seed(2)
    x, sigma, _, sd = walk_batch(200, test)
    close = torch.full((200,), 100.0, dtype=torch.float64)
    sampler = SamplerConfig(steps=20, n_samples=100, precision="float32")
    result = forecast_paths(trained, x, sigma, close, sampler, test)
    return (result.continuous / sd[:, None, None]).reshape(-1, H).numpy()


def test_variance_of_the_cumulative_return_grows_linearly_with_the_horizon(
    standardised_draws: np.ndarray,
) -> None:
    variance = standardised_draws.var(axis=0)  # [H], truth h / 30
    truth = np.asarray(HORIZONS) / H
    ratio = variance / truth
    assert ratio.min() > 0.75 and ratio.max() < 1.3, np.round(ratio, 2)
    slope, intercept = np.polyfit(truth, variance, 1)
    assert slope == pytest.approx(1.0, abs=0.2) and abs(intercept) < 0.05


def test_paths_keep_the_walks_correlation_across_horizons(standardised_draws: np.ndarray) -> None:
    corr = np.corrcoef(standardised_draws, rowvar=False)  # [H, H]
    for h, later in ((10, 30), (1, 30), (29, 30), (5, 20)):
        expected = np.sqrt(h / later)
        assert corr[h - 1, later - 1] == pytest.approx(expected, abs=0.1), (h, later)


def test_the_model_uses_the_condition_for_the_width(trained: DiffusionForecaster) -> None:
    """Two windows, u = -1 and u = 1: the 30 s spread ratio is about exp(1) = 2.7."""
    x, _, _, _ = walk_batch(2, torch.Generator().manual_seed(3))
    x[0, :, 0], x[1, :, 0] = -1.0, 1.0
    sigma = torch.full((2,), 1e-3, dtype=torch.float64)
    close = torch.full((2,), 100.0, dtype=torch.float64)
    sampler = SamplerConfig(steps=20, n_samples=500, precision="float32")
    sampler = dataclasses.replace(sampler, snap_to_tick=False)
    result = forecast_paths(trained, x, sigma, close, sampler, torch.Generator().manual_seed(4))
    spread = result.samples[:, :, -1].std(dim=1)
    assert (spread[1] / spread[0]).item() == pytest.approx(np.e, rel=0.25)
