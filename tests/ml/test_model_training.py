"""A short CPU training on a toy conditional distribution: the model learns the condition.

The window carries the answer: feature 0 hovers around u0 and feature 1 around u1 (plus noise),
and the target is z ~ N(0.8·u1, exp(0.7·u0)²). After a few hundred AdamW steps the sampled CRPS
must be close to the CRPS of the true conditional distribution and clearly beat the best
unconditional forecast (the empirical distribution of training targets).
"""

import copy
import dataclasses

import numpy as np
import pytest
import scoringrules as sr
import torch

from diffstock_ml.model import DiffusionForecaster, ModelConfig, SamplerConfig
from diffstock_ml.train.ema import exponential_moving_average

N, F = 16, 3
CONFIG = ModelConfig(
    d_model=32,
    n_heads=2,
    n_layers=1,
    dropout=0.0,
    denoiser_hidden=64,
    denoiser_depth=2,
    time_embed_dim=32,
)


def toy_batch(size: int, generator: torch.Generator):
    """Windows `[size, N, F]`, targets z, and the true conditional mean and std."""
    u = torch.rand(size, 2, generator=generator) * 2 - 1  # [size, 2] latent state
    signal = u[:, None, :] + 0.1 * torch.randn(size, N, 2, generator=generator)  # [size, N, 2]
    distractor = torch.randn(size, N, 1, generator=generator)  # [size, N, 1]
    mean, std = 0.8 * u[:, 1], torch.exp(0.7 * u[:, 0])  # [size] each
    z = mean + std * torch.randn(size, generator=generator)
    return torch.cat([signal, distractor], dim=-1), z, mean, std


def skewed_batch(size: int, generator: torch.Generator):
    """As `toy_batch`, but z = m + s·(E − ln 2) with E ~ Exp(1): right-skewed, median m = 0.8·u1,
    quantile q at m + s·(−ln(1 − q) − ln 2)."""
    x, _, median, _ = toy_batch(size, generator)
    scale = torch.exp(0.5 * x[:, :, 0].mean(dim=1))  # [size] from the window's feature 0
    exponential = -torch.log(torch.rand(size, generator=generator))
    return x, median + scale * (exponential - np.log(2)), median, scale


def train(
    model: DiffusionForecaster,
    steps: int,
    generator: torch.Generator,
    batch=toy_batch,
    ema: torch.nn.Module | None = None,
) -> list[float]:
    """The tiniest loop: AdamW, one-cycle learning rate, gradient clipping (and an EMA)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 3e-3, total_steps=steps)
    losses = []
    for _ in range(steps):
        x, z, _, _ = batch(256, generator)
        loss = model.loss(x, z, k_noise=8, generator=generator)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        if ema is not None:
            ema.update_parameters(model)
        losses.append(loss.item())
    return losses


@pytest.fixture
def single_thread():
    """Small matrices: one intra-op thread is as fast and robust on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_short_training_approaches_the_true_conditional_crps(single_thread) -> None:
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(1)
    model = DiffusionForecaster(CONFIG, F)
    losses = train(model, 300, generator)
    assert np.mean(losses[-50:]) < 0.9 * np.mean(losses[:50])

    test = torch.Generator().manual_seed(2)
    x, z, mean, std = toy_batch(250, test)
    samples = model.sample(x, 64, SamplerConfig(steps=50), test)  # [250, 64]
    observed = z.numpy()
    crps_model = sr.crps_ensemble(observed, samples.numpy(), estimator="pwm").mean()
    crps_truth = sr.crps_normal(observed, mean.numpy(), std.numpy()).mean()
    _, marginal, _, _ = toy_batch(2000, generator)
    unconditional = np.broadcast_to(marginal.numpy(), (len(observed), 2000))
    crps_unconditional = sr.crps_ensemble(observed, unconditional, estimator="pwm").mean()
    # measured: model / truth ≈ 1.00 (0.998), unconditional / truth ≈ 1.15
    assert crps_model < 1.08 * crps_truth
    assert crps_model < 0.95 * crps_unconditional


def test_shipped_ema_weights_reproduce_a_skewed_conditional_median_and_quantiles(
    single_thread,
) -> None:
    """What ships is the EMA of the weights: its median must be unbiased and its quantiles
    right for a known, skewed conditional distribution, within sampling error."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(1)
    model = DiffusionForecaster(CONFIG, F)
    ema = exponential_moving_average(model, decay=0.999)
    train(model, 300, generator, skewed_batch, ema)

    test = torch.Generator().manual_seed(2)
    x, z, median, scale = skewed_batch(1_000, test)
    samples = ema.module.sample(x, 100, SamplerConfig(steps=50), test)  # [1000, 100]
    for q in (0.1, 0.5, 0.9):  # share of outcomes below the model's q-quantile (SE <= 0.016)
        below = (z < samples.quantile(q, dim=1)).float().mean().item()
        assert below == pytest.approx(q, abs=0.05), f"quantile {q}: {below:.3f}"
    # 300 steps learn the median to within ~0.06 scales; the old EMA (74 % initial weights
    # after 300 steps) misses it by far more
    error = ((samples.median(dim=1).values - median) / scale).mean().item()
    assert abs(error) < 0.1, f"median off by {error:.3f} scales"


def bimodal_batch(size: int, generator: torch.Generator):
    """As `toy_batch`, but z = 0.8·u1 ± 1 + 0.35·ε with P(+) = (1 + u0) / 2: two modes, which
    no location-scale head can draw. Also returns the centre 0.8·u1 and P(+)."""
    u = torch.rand(size, 2, generator=generator) * 2 - 1
    signal = u[:, None, :] + 0.1 * torch.randn(size, N, 2, generator=generator)
    x = torch.cat([signal, torch.randn(size, N, 1, generator=generator)], dim=-1)
    centre, p_plus = 0.8 * u[:, 1], (1 + u[:, 0]) / 2
    side = torch.where(torch.rand(size, generator=generator) < p_plus, 1.0, -1.0)
    return x, centre + side + 0.35 * torch.randn(size, generator=generator), centre, p_plus


def test_the_denoiser_learns_a_shape_its_student_t_head_cannot_draw(single_thread) -> None:
    """The demo's parameterisation (the Gaussianised residual of a Student-t head): on a bimodal
    law the model must beat its own head (the same model with the denoiser's output zeroed,
    `study.own_head`) and move mass out of the empty centre. On the demo market it does not
    beat its head (docs/experiments.md): this says that is the market, not a denoiser that
    cannot learn. Measured at 300 steps: model 0.493, own head 0.508, truth 0.481; share of
    draws within 0.3 of the centre 0.13, head 0.16, truth 0.02 (1,000 steps: 0.468 / 0.486 /
    0.464 on 2,000 windows)."""
    config = dataclasses.replace(
        CONFIG, cfg_dropout=0.0, head_family="student_t", residual_transform="gaussianise"
    )
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(1)
    model = DiffusionForecaster(config, F)
    ema = exponential_moving_average(model, decay=0.999)
    train(model, 300, generator, bimodal_batch, ema)
    head = copy.deepcopy(ema.module)
    with torch.no_grad():
        head.denoiser.output.weight.zero_()
        head.denoiser.output.bias.zero_()

    x, z, centre, p_plus = bimodal_batch(1_000, torch.Generator().manual_seed(2))
    rng = np.random.default_rng(0)
    side = np.where(rng.random((1_000, 500)) < p_plus.numpy()[:, None], 1.0, -1.0)
    truth = centre.numpy()[:, None] + side + 0.35 * rng.standard_normal((1_000, 500))
    crps, near_centre = {}, {}
    for name, draws in (
        ("model", ema.module.sample(x, 100, SamplerConfig(), torch.Generator().manual_seed(3))),
        ("head", head.sample(x, 100, SamplerConfig(), torch.Generator().manual_seed(3))),
        ("truth", truth),
    ):
        draws = np.asarray(draws, dtype=np.float64)
        crps[name] = sr.crps_ensemble(z.numpy(), draws, estimator="pwm").mean()
        near_centre[name] = (np.abs(draws - centre.numpy()[:, None]) < 0.3).mean()
    assert crps["model"] < 0.985 * crps["head"], crps
    assert crps["model"] < 1.05 * crps["truth"], crps
    assert near_centre["model"] < 0.9 * near_centre["head"], near_centre
