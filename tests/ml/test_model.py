"""The model's modules: shapes of both encoders and the denoiser, the loss, sampling, guidance."""

import dataclasses
import math

import pytest
import scoringrules as sr
import torch

from diffstock_ml.device import has_native_bfloat16, select_device
from diffstock_ml.model import (
    Denoiser,
    DiffusionForecaster,
    ModelConfig,
    SamplerConfig,
    build_encoder,
    make_schedule,
    make_scheduler,
    randn_tensor,
)
from diffstock_ml.model.diffusion import LocationScaleHead, normal_to_t, t_to_normal

B, N, F = 5, 24, 7
SMALL = ModelConfig(
    d_model=16, n_heads=2, n_layers=2, denoiser_hidden=32, denoiser_depth=2, time_embed_dim=16
)
FAST = SamplerConfig(steps=8, n_samples=6, precision="float32")


def windows(seed: int = 0, batch: int = B) -> torch.Tensor:
    return torch.randn(batch, N, F, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("encoder", ["transformer", "cnn_lstm"])
@pytest.mark.parametrize("positional", ["sinusoidal", "learned"])
def test_encoders_map_windows_to_one_condition_vector(encoder: str, positional: str) -> None:
    config = dataclasses.replace(SMALL, encoder=encoder, positional=positional)
    module = build_encoder(config, F)
    assert module(windows()).shape == (B, SMALL.d_model)
    assert module(windows(batch=1)[:, :3]).shape == (1, SMALL.d_model)  # any window length


def test_cnn_lstm_encoder_is_causal_at_the_anchor() -> None:
    module = build_encoder(dataclasses.replace(SMALL, encoder="cnn_lstm", dropout=0.0), F).eval()
    x = windows()
    changed = x.clone()
    changed[:, -1] += 1.0
    assert not torch.allclose(module(x), module(changed))  # the anchor second is seen


def test_denoiser_maps_noisy_scalars_to_scalars_and_uses_the_null_condition() -> None:
    denoiser = Denoiser(dataclasses.replace(SMALL, dropout=0.0))
    x_t, t, cond = torch.randn(B, 1), torch.randint(0, 1000, (B,)), torch.randn(B, SMALL.d_model)
    assert denoiser(x_t, t, cond).shape == (B, 1)
    every_row = torch.ones(B, dtype=torch.bool)
    null = denoiser.null_condition.expand(B, -1)
    torch.testing.assert_close(denoiser(x_t, t, cond, every_row), denoiser(x_t, t, null))
    half = torch.arange(B) % 2 == 0
    mixed = denoiser(x_t, t, cond, half)
    torch.testing.assert_close(mixed[~half], denoiser(x_t, t, cond)[~half])


@pytest.mark.parametrize("prediction", ["v", "eps"])
@pytest.mark.parametrize("encoder", ["transformer", "cnn_lstm"])
def test_loss_is_finite_and_backpropagates(prediction: str, encoder: str) -> None:
    model = DiffusionForecaster(
        dataclasses.replace(SMALL, prediction=prediction, encoder=encoder), F
    )
    loss = model.loss(windows(), torch.randn(B), k_noise=4, generator=torch.Generator())
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_loss_encodes_each_window_once_for_k_noise_levels() -> None:
    model = DiffusionForecaster(SMALL, F)
    seen: list[torch.Size] = []
    model.encoder.register_forward_hook(lambda _m, inputs, _o: seen.append(inputs[0].shape))
    rows: list[int] = []
    model.denoiser.register_forward_hook(lambda _m, inputs, _o: rows.append(len(inputs[0])))
    model.loss(windows(), torch.randn(B), k_noise=8)
    assert seen == [torch.Size([B, N, F])] and rows == [B * 8]


def test_loss_is_reproducible_from_the_generator() -> None:
    model = DiffusionForecaster(dataclasses.replace(SMALL, dropout=0.0), F)
    target = torch.randn(B)
    losses = [
        model.loss(windows(), target, 3, torch.Generator().manual_seed(7)).item() for _ in range(2)
    ]
    assert losses[0] == losses[1]


@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_sample_returns_n_samples_per_window_reproducibly(sampler: str) -> None:
    model = DiffusionForecaster(SMALL, F)
    config = dataclasses.replace(FAST, sampler=sampler, eta=0.5)
    draws = model.sample(windows(), 6, config, torch.Generator().manual_seed(1))
    assert draws.shape == (B, 6) and torch.isfinite(draws).all()
    again = model.sample(windows(), 6, config, torch.Generator().manual_seed(1))
    assert torch.equal(draws, again)
    assert model.training  # sampling ran in eval mode and restored the mode


def untrained_but_not_identity() -> DiffusionForecaster:
    """A small model whose denoiser blocks (which start as the identity) use the condition."""
    model = DiffusionForecaster(SMALL, F).eval()
    for block in model.denoiser.blocks:
        torch.nn.init.normal_(block.fc2.weight, std=0.3, generator=torch.Generator().manual_seed(0))
    return model


def plain_conditional_loop(
    model: DiffusionForecaster, x: torch.Tensor, seed: int, drop: bool = False
) -> torch.Tensor:
    """The sampling loop written out with the plain (or the null) condition."""
    generator = torch.Generator().manual_seed(seed)
    scheduler = make_scheduler(FAST, make_schedule("cosine", 1000).alphas_cumprod, "v")
    cond = model.encode(x).repeat_interleave(FAST.n_samples, 0)  # [B*S, D]
    sample = randn_tensor((len(cond), 1), generator, x.device)
    drop_rows = torch.full((len(cond),), drop)
    for t in scheduler.timesteps.tolist():
        output = model.denoiser(sample, torch.full((len(cond),), t), cond, drop_rows)
        sample = scheduler.step(output, t, sample, generator).prev_sample
    return sample.view(len(x), FAST.n_samples)


@torch.no_grad()
def test_guidance_weight_one_is_the_plain_conditional_path_and_zero_the_null_one() -> None:
    model = untrained_but_not_identity()
    x = windows()
    plain = plain_conditional_loop(model, x, seed=2)
    guided = model.sample(x, None, FAST, torch.Generator().manual_seed(2), guidance_weight=1.0)
    torch.testing.assert_close(guided, plain)
    unconditional = model.sample(x, None, FAST, torch.Generator().manual_seed(2), 0.0)
    torch.testing.assert_close(unconditional, plain_conditional_loop(model, x, 2, drop=True))
    sharpened = model.sample(x, None, FAST, torch.Generator().manual_seed(2), 3.0)
    assert not torch.allclose(sharpened, plain) and not torch.allclose(unconditional, plain)


def test_guidance_without_a_trained_null_condition_is_refused() -> None:
    model = DiffusionForecaster(dataclasses.replace(SMALL, cfg_dropout=0.0), F)
    with pytest.raises(ValueError, match="cfg_dropout"):
        model.sample(windows(), 2, FAST, guidance_weight=2.0)


def test_schedule_buffers_are_float32_on_the_module_and_move_with_it() -> None:
    model = DiffusionForecaster(SMALL, F)
    buffers = dict(model.named_buffers())
    assert set(buffers) == {"sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod"}
    assert all(b.dtype == torch.float32 for b in buffers.values())
    expected = make_schedule("cosine", 1000).sqrt_alphas_cumprod.float()
    torch.testing.assert_close(model.sqrt_alphas_cumprod, expected)
    assert "sqrt_alphas_cumprod" in model.state_dict()


def test_config_rejects_inconsistent_values() -> None:
    with pytest.raises(ValueError, match="n_heads"):
        ModelConfig(d_model=10, n_heads=4)
    with pytest.raises(ValueError, match="cfg_dropout"):
        ModelConfig(cfg_dropout=1.0)
    with pytest.raises(ValueError, match="head_crps_draws"):
        ModelConfig(head_crps_draws=1)
    with pytest.raises(ValueError, match="steps"):
        SamplerConfig(steps=0)


def test_select_device_prefers_cuda_then_mps_then_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert select_device() == torch.device("cpu") == select_device("cpu")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        select_device("cuda")
    with pytest.raises(RuntimeError, match="MPS is not available"):
        select_device("mps")
    with pytest.raises(ValueError, match="unknown device"):
        select_device("gpu")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert select_device("auto") == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert select_device("auto") == torch.device("cuda")


@torch.no_grad()
def test_bfloat16_sampling_draws_nearly_the_float32_samples() -> None:
    model = untrained_but_not_identity()
    x = windows()
    full = model.sample(x, 64, FAST, torch.Generator().manual_seed(3))
    half = dataclasses.replace(FAST, precision="bfloat16")
    reduced = model.sample(x, 64, half, torch.Generator().manual_seed(3))
    assert reduced.dtype == torch.float32 and not torch.equal(reduced, full)  # it did run in bf16
    assert (reduced - full).abs().max() < 0.1 * full.std()
    # one window takes the fused FiLM path (its scales are the LayerNorm's affine): bf16 too
    one = model.sample(x[:1], 64, half, torch.Generator().manual_seed(3))
    assert (one - full[:1]).abs().max() < 0.1 * full.std()
    # "auto" is bfloat16 exactly where the device has it in hardware
    chosen = reduced if has_native_bfloat16(torch.device("cpu")) else full
    auto = dataclasses.replace(FAST, precision="auto")
    torch.testing.assert_close(model.sample(x, 64, auto, torch.Generator().manual_seed(3)), chosen)
    with pytest.raises(ValueError, match="precision must be auto, float32 or bfloat16"):
        dataclasses.replace(FAST, precision="float16")


def test_residual_parameterisation_draws_loc_plus_scale_times_the_diffused_residual() -> None:
    model = DiffusionForecaster(SMALL, F)  # "residual" by default
    assert model.config.parameterisation == "residual"
    plain = model.sample(windows(), 6, FAST, torch.Generator().manual_seed(3))  # loc 0, scale 1
    with torch.no_grad():
        model.location_scale.mlp[-1].bias.copy_(
            torch.tensor([2.0, float(torch.log(torch.tensor(3.0)))])
        )
    shifted = model.sample(windows(), 6, FAST, torch.Generator().manual_seed(3))
    torch.testing.assert_close(shifted, 2.0 + 3.0 * plain)


@pytest.mark.parametrize("trains", [True, False])
def test_denoiser_trains_encoder_false_leaves_the_encoder_to_the_heads_likelihood(
    trains: bool,
) -> None:
    """With `denoiser_trains_encoder=False` the encoder's gradient is the head's NLL's alone (a
    standalone head's training); with True the diffusion loss adds to it."""
    config = dataclasses.replace(SMALL, head_family="student_t", denoiser_trains_encoder=trains)
    model = DiffusionForecaster(config, F).eval()
    x, z = windows(), torch.randn(B, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():  # both away from their zero start: their gradients reach the encoder
        model.location_scale.mlp[-1].weight.normal_(0, 0.1)
        for parameter in model.denoiser.parameters():  # its zero-initialised layers too
            parameter.normal_(0, 0.1)
    model.loss(x, z, 2, torch.Generator().manual_seed(5)).backward()
    total = [p.grad.clone() for p in model.encoder.parameters()]
    assert all(p.grad is not None for p in model.denoiser.parameters())  # it learns either way
    model.zero_grad()
    loc, scale, df = model.location_scale.parameters_of(model.encode(x))
    (-torch.distributions.StudentT(df, loc, scale).log_prob(z[:, None]).mean()).backward()
    same = [
        torch.allclose(g, p.grad) for g, p in zip(total, model.encoder.parameters(), strict=True)
    ]
    assert all(same) != trains


def test_a_frozen_encoder_needs_a_head() -> None:
    with pytest.raises(ValueError, match="denoiser_trains_encoder=False needs"):
        dataclasses.replace(SMALL, parameterisation="direct", denoiser_trains_encoder=False)


@pytest.mark.parametrize("family", ["gaussian", "student_t"])
def test_residual_diffusion_loss_does_not_train_the_location_scale_head(family: str) -> None:
    """The head learns from its likelihood only (its family's NLL): the diffusion part cannot
    widen the head to shrink its own target."""
    config = dataclasses.replace(SMALL, head_family=family)
    model = DiffusionForecaster(config, F).eval()  # no dropout: both passes see one encoding
    x, z = windows(), torch.randn(B, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():  # a head away from its zero start, so its gradients are informative
        model.location_scale.mlp[-1].weight.normal_(0, 0.1)
    model.loss(x, z, 2, torch.Generator().manual_seed(5)).backward()
    total = [p.grad.clone() for p in model.location_scale.parameters()]
    model.zero_grad()
    loc, scale, df = model.location_scale.parameters_of(model.encode(x))
    if family == "gaussian":
        (0.5 * ((z[:, None] - loc) / scale) ** 2 + scale.log()).mean().backward()
    else:
        (-torch.distributions.StudentT(df, loc, scale).log_prob(z[:, None]).mean()).backward()
    for got, nll_only in zip(total, model.location_scale.parameters(), strict=True):
        torch.testing.assert_close(got, nll_only.grad)


@pytest.mark.parametrize("family", ["gaussian", "student_t"])
def test_the_head_fitted_by_crps_scores_its_familys_crps_and_trains_every_parameter(
    family: str,
) -> None:
    """`head_loss="crps"`: the Gaussian's closed form, and the Student-t's fair estimator within
    its Monte-Carlo error, equal scoringrules' CRPS; the gradient reaches loc, scale and df, and
    the model's loss with it is reproducible from the generator."""
    head = LocationScaleHead(8, 1, family)
    with torch.no_grad():
        head.mlp[-1].bias[:2] = torch.tensor([0.3, math.log(1.5)])  # loc 0.3, scale 1.5, df 6
    z = 0.1 + 1.4 * torch.randn(4_000, 1, generator=torch.Generator().manual_seed(0))
    _, crps = head.crps(torch.zeros(4_000, 8), z, 32, torch.Generator().manual_seed(1))
    observed = z[:, 0].double().numpy()
    if family == "gaussian":
        assert crps.item() == pytest.approx(sr.crps_normal(observed, 0.3, 1.5).mean(), rel=1e-5)
    else:  # the estimator's standard error here is ~0.2 %
        assert crps.item() == pytest.approx(sr.crps_t(observed, 6.0, 0.3, 1.5).mean(), rel=0.01)
    crps.backward()
    assert (head.mlp[-1].bias.grad != 0).all()  # loc, scale (and df)

    config = dataclasses.replace(SMALL, head_family=family, head_loss="crps")
    model = DiffusionForecaster(config, F).eval()
    x, target = windows(), torch.randn(B, generator=torch.Generator().manual_seed(4))
    first, second = (model.loss(x, target, 2, torch.Generator().manual_seed(5)) for _ in range(2))
    assert torch.isfinite(first) and first.item() == second.item()


def test_a_student_t_residual_head_starts_at_loc_0_scale_1_df_6_and_draws_loc_plus_scale_x0() -> (
    None
):
    model = DiffusionForecaster(dataclasses.replace(SMALL, head_family="student_t"), F)
    loc, scale, df = model.location_scale.parameters_of(model.encode(windows()))
    torch.testing.assert_close(loc, torch.zeros_like(loc))
    torch.testing.assert_close(scale, torch.ones_like(scale))
    torch.testing.assert_close(df, torch.full_like(df, 6.0))
    plain = model.sample(windows(), 6, FAST, torch.Generator().manual_seed(3))
    with torch.no_grad():
        model.location_scale.mlp[-1].bias[:2] = torch.tensor([2.0, math.log(3.0)])
    shifted = model.sample(windows(), 6, FAST, torch.Generator().manual_seed(3))
    torch.testing.assert_close(shifted, 2.0 + 3.0 * plain)


def test_t_to_normal_is_the_probability_integral_transform_and_normal_to_t_inverts_it() -> None:
    df = torch.tensor([[2.5], [4.0], [30.0]]).expand(3, 20_000)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        draws = torch.distributions.StudentT(df).sample()
    gaussian = t_to_normal(draws, df)
    probabilities = torch.tensor([0.01, 0.1, 0.5, 0.9, 0.99], dtype=torch.float64)
    expected = torch.distributions.Normal(0.0, 1.0).icdf(probabilities)
    for row in gaussian.double():  # each df: N(0, 1)'s quantiles within 4 sampling SE (0.026)
        torch.testing.assert_close(torch.quantile(row, probabilities), expected, atol=0.1, rtol=0)
    torch.testing.assert_close(normal_to_t(gaussian, df), draws, atol=1e-4, rtol=1e-4)
    tail = torch.tensor([[-40.0, -8.0, 8.0, 40.0]])  # far tails keep their order and sign
    mapped = t_to_normal(tail, torch.full_like(tail, 3.0))
    assert torch.all(mapped.diff() > 0) and mapped[0, 0] < -4 and torch.isfinite(mapped).all()


def test_a_gaussianised_student_t_model_that_learnt_nothing_samples_its_head() -> None:
    """With `residual_transform="gaussianise"` the denoiser's x0 is N(0, 1) where the t head is
    right, so a denoiser that outputs v = 0 (the exact one for N(0, 1) data) draws the head's
    Student-t itself; with "standardise" the same model draws a Gaussian of its loc and scale."""
    gaussianised = DiffusionForecaster(
        dataclasses.replace(
            SMALL, head_family="student_t", residual_transform="gaussianise", dropout=0.0
        ),
        F,
    )
    with torch.no_grad():
        gaussianised.denoiser.output.weight.zero_()
        gaussianised.denoiser.output.bias.zero_()
        gaussianised.location_scale.mlp[-1].bias.copy_(torch.tensor([0.5, math.log(2.0), 0.0]))
    df = 3.0  # 2 + exp(0)
    sampler = SamplerConfig(steps=50, precision="float32")  # ODE error well below the tolerance
    draws = gaussianised.sample(windows(batch=2), 40_000, sampler, torch.Generator().manual_seed(0))
    probabilities = torch.tensor([0.05, 0.25, 0.5, 0.75, 0.95])  # sampling SE <= 0.05 each
    t_quantiles = 0.5 + 2.0 * _student_t_quantiles(probabilities, df)
    for row in draws:
        torch.testing.assert_close(
            torch.quantile(row, probabilities), t_quantiles, atol=0.2, rtol=0
        )
    standardised = DiffusionForecaster(
        dataclasses.replace(gaussianised.config, residual_transform="standardise"), F
    )
    standardised.load_state_dict(gaussianised.state_dict())
    gaussian = standardised.sample(
        windows(batch=2), 40_000, sampler, torch.Generator().manual_seed(0)
    )
    far = torch.quantile(gaussian[0], torch.tensor([0.99])) - 0.5
    assert far < 0.6 * 2.0 * _student_t_quantiles(torch.tensor([0.99]), df)  # t(3): 4.54 vs 2.33
    with pytest.raises(ValueError, match="gaussianise"):
        dataclasses.replace(SMALL, parameterisation="direct", residual_transform="gaussianise")


def _student_t_quantiles(probabilities: torch.Tensor, df: float) -> torch.Tensor:
    from scipy import stats

    return torch.tensor(stats.t.ppf(probabilities.numpy(), df), dtype=torch.float32)


def test_grid_condition_needs_the_grid_and_uses_it() -> None:
    config = dataclasses.replace(SMALL, grid_condition=True)
    model = DiffusionForecaster(config, F)
    with pytest.raises(ValueError, match="price grid"):
        model.encode(windows())
    with torch.no_grad():
        model.grid.mlp[-1].weight.normal_(0, 0.1)  # zero-initialised: no effect until trained
    coarse, fine = torch.full((B,), 2.0), torch.full((B,), 0.1)
    assert not torch.allclose(model.encode(windows(), coarse), model.encode(windows(), fine))


def test_encoder_reads_only_the_last_context_seconds() -> None:
    config = dataclasses.replace(SMALL, context_s=10)
    module = build_encoder(config, F).eval()
    x = windows()
    changed = x.clone()
    changed[:, :-10] += 5.0  # seconds before the context
    torch.testing.assert_close(module(x), module(changed))
