"""Noise schedules, and the DDPM/DDIM/DPM-Solver++/angle schedulers driven by the exact denoiser of
Gaussian data.

For x0 ~ N(μ, s²) and x_t = a·x0 + b·ε (a = sqrt(ᾱ_t), b = sqrt(1 − ᾱ_t)) the optimal denoiser
is known in closed form: E[x0 | x_t] = μ + a·s² / (a²s² + b²) · (x_t − a·μ). A correct sampler
driven by it must return draws with mean μ and standard deviation s.
"""

import math

import pytest
import torch
from scipy import stats

from diffstock_ml.model import (
    DDIMScheduler,
    DDPMScheduler,
    SamplerConfig,
    cosine_alpha_bar,
    linear_betas,
    make_schedule,
    make_scheduler,
    randn_tensor,
    spaced_timesteps,
    to_clean,
)
from diffstock_ml.model.schedulers import AngleMultistepScheduler, DPMSolverMultistepScheduler

SCHEDULE = make_schedule("cosine", 1000)
N_DRAWS = 40_000


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    """Small elementwise steps: one intra-op thread is fastest, and robust on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("kind", ["cosine", "linear"])
def test_schedule_is_a_valid_float64_noise_path(kind: str) -> None:
    schedule = make_schedule(kind, 1000)
    alpha_bar, betas = schedule.alphas_cumprod, schedule.betas
    assert all(v.dtype == torch.float64 for v in schedule)
    assert alpha_bar.shape == betas.shape == (1000,)
    assert ((alpha_bar > 0) & (alpha_bar <= 1)).all()
    assert (alpha_bar.diff() < 0).all()  # strictly decreasing
    assert alpha_bar[0] > 0.9998 and alpha_bar[-1] < 1e-4
    assert ((betas > 0) & (betas < 1)).all()
    torch.testing.assert_close(torch.cumprod(1 - betas, 0), alpha_bar)
    torch.testing.assert_close(
        schedule.sqrt_alphas_cumprod**2 + schedule.sqrt_one_minus_alphas_cumprod**2,
        torch.ones(1000, dtype=torch.float64),
    )
    assert ((schedule.posterior_variance >= 0) & (schedule.posterior_variance <= betas)).all()


def test_schedule_functions_compute_in_float64() -> None:
    assert cosine_alpha_bar(1000).dtype == linear_betas(1000).dtype == torch.float64
    # float32 cannot tell ᾱ_{T−1} ≈ 2.4e-9 from its neighbours' ratios; float64 keeps it exact
    assert cosine_alpha_bar(1000)[-1] == pytest.approx(2.43e-9, rel=0.01)
    with pytest.raises(ValueError, match="unknown schedule"):
        make_schedule("sigmoid", 1000)  # type: ignore[arg-type]


def test_trailing_spacing_starts_at_pure_noise_and_leading_does_not() -> None:
    trailing = spaced_timesteps(1000, 50, "trailing")
    assert trailing[0] == 999 and trailing[-1] == 19 and len(set(trailing)) == 50
    assert (torch.from_numpy(trailing).diff() < 0).all()
    assert spaced_timesteps(1000, 50, "leading")[0] == 980
    assert spaced_timesteps(1000, 50, "linspace")[[0, -1]].tolist() == [999, 0]
    assert spaced_timesteps(1000, 1000, "trailing").tolist() == list(range(999, -1, -1))
    with pytest.raises(ValueError, match="num_steps"):
        spaced_timesteps(1000, 0, "trailing")


def optimal_output(
    sample: torch.Tensor, t: int, mu: float, s: float, prediction: str
) -> torch.Tensor:
    """The exact ε̂ or v̂ for Gaussian data N(mu, s²) at timestep t."""
    alpha_bar = float(SCHEDULE.alphas_cumprod[t])
    a, b = math.sqrt(alpha_bar), math.sqrt(1 - alpha_bar)
    x0 = mu + a * s**2 / (a**2 * s**2 + b**2) * (sample - a * mu)  # E[x0 | x_t]
    eps = (sample - a * x0) / b
    return eps if prediction == "eps" else a * eps - b * x0


def draw(
    scheduler, steps: int, mu: float, s: float, seed: int = 0, noise: torch.Tensor | None = None
) -> torch.Tensor:
    """The few-line sampling loop with the closed-form denoiser (from `noise` [n, 1] if given)."""
    generator = torch.Generator().manual_seed(seed)
    scheduler.set_timesteps(steps)
    sample = randn_tensor((N_DRAWS, 1), generator, torch.device("cpu")) if noise is None else noise
    for t in scheduler.timesteps.tolist():
        output = optimal_output(sample, t, mu, s, scheduler.prediction)
        sample = scheduler.step(output, t, sample, generator).prev_sample
    return sample[:, 0]


# Measured with 4e4 draws of N(0.5, 1): DDPM-1000 std −0.6 %, DDIM-50 η=0 −2.3 % (deterministic
# DDIM with few steps under-disperses, DESIGN §7), DDIM-50 η=1 −4.0 %; DPM-Solver++(2M) −0.4 %
# with 20 steps and −2.3 % with 10 (−0.4 % and −2.3 % exactly, see the convergence test);
# its stochastic form SDE-DPM-Solver++(2M) +2.0 % with 10 steps and +2.3 % with 20.
# The angle solver's std is exact at any number of steps for s = 1; its mean is +0.005 off with
# 10 steps and +0.02 with 5 (the mean's v̂ = −μ·sin φ is not constant in φ).
CASES = [
    ("sde_dpmpp_2m", 10, 0.0, 0.04),
    ("sde_dpmpp_2m", 20, 0.0, 0.04),
    ("ddpm", 1000, 0.0, 0.02),
    ("ddim", 50, 0.0, 0.04),
    ("ddim", 50, 1.0, 0.06),
    ("dpmpp_2m", 20, 0.0, 0.02),
    ("dpmpp_2m", 10, 0.0, 0.04),
    ("angle_2m", 10, 0.0, 0.02),
]


@pytest.mark.parametrize(("sampler", "steps", "eta", "tolerance"), CASES)
def test_sampler_with_exact_denoiser_reproduces_gaussian_data(
    sampler: str, steps: int, eta: float, tolerance: float
) -> None:
    config = SamplerConfig(sampler=sampler, steps=steps, eta=eta)  # type: ignore[arg-type]
    scheduler = make_scheduler(config, SCHEDULE.alphas_cumprod, "v")
    x = draw(scheduler, steps, mu=0.5, s=1.0)
    assert x.mean().item() == pytest.approx(0.5, abs=0.02)
    assert x.std().item() == pytest.approx(1.0, rel=tolerance)


@pytest.mark.parametrize(
    "scheduler_class",
    [
        DDPMScheduler,
        lambda a, p: DDIMScheduler(a, p, eta=0.0),
        lambda a, p: DDIMScheduler(a, p, eta=1.0),
        DPMSolverMultistepScheduler,
        lambda a, p: DPMSolverMultistepScheduler(a, p, stochastic=True),
        AngleMultistepScheduler,
    ],
)
def test_eps_and_v_prediction_give_the_same_samples(scheduler_class) -> None:
    by_eps = draw(scheduler_class(SCHEDULE.alphas_cumprod, "eps"), 50, mu=0.5, s=1.0, seed=3)
    by_v = draw(scheduler_class(SCHEDULE.alphas_cumprod, "v"), 50, mu=0.5, s=1.0, seed=3)
    torch.testing.assert_close(by_eps, by_v, atol=2e-3, rtol=1e-3)


@pytest.mark.parametrize(
    ("sampler", "steps", "tolerance"), [("ddpm", 1000, 0.02), ("ddim", 50, 0.07)]
)
def test_no_clipping_data_far_outside_unit_interval_keeps_its_spread(
    sampler: str, steps: int, tolerance: float
) -> None:
    # Clipping x̂0 to [−1, 1] (the image default) would squeeze these draws to std < 1.
    config = SamplerConfig(sampler=sampler, steps=steps)  # type: ignore[arg-type]
    x = draw(make_scheduler(config, SCHEDULE.alphas_cumprod, "v"), steps, mu=1.0, s=5.0)
    assert x.std().item() == pytest.approx(5.0, rel=tolerance)
    assert x.mean().item() == pytest.approx(1.0, abs=0.1)
    assert x.abs().max() > 15


def test_step_is_deterministic_given_the_generator_and_final_step_returns_x0() -> None:
    scheduler = DDIMScheduler(SCHEDULE.alphas_cumprod, "v", eta=1.0)
    assert torch.equal(draw(scheduler, 20, 0.0, 1.0, seed=5), draw(scheduler, 20, 0.0, 1.0, seed=5))
    sample, output = torch.randn(8, 1), torch.randn(8, 1)
    last = int(scheduler.timesteps[-1])
    result = scheduler.step(output, last, sample, torch.Generator().manual_seed(0))
    torch.testing.assert_close(result.prev_sample, result.pred_x0)
    x0 = to_clean(output, sample, float(SCHEDULE.alphas_cumprod[last]), "v").x0
    torch.testing.assert_close(result.pred_x0, x0)


def normal_quantile_grid(n: int) -> torch.Tensor:
    """`[n, 1]` x_T at the normal quantiles (i + ½)/n: a deterministic sampler maps them to its
    output distribution's quantiles (a 1-D ODE flow keeps the order), with no sampling noise."""
    levels = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    return torch.special.ndtri(levels).float()[:, None]


def std_error(sampler: str, steps: int, s: float = 1.0) -> float:
    """Relative error of the std of a deterministic sampler's output for N(0.5, s²) data."""
    config = SamplerConfig(sampler=sampler, steps=steps)  # type: ignore[arg-type]
    scheduler = make_scheduler(config, SCHEDULE.alphas_cumprod, "v")
    x = draw(scheduler, steps, mu=0.5, s=s, noise=normal_quantile_grid(20_001))
    return x.std().item() / s - 1


def test_dpm_solver_converges_at_second_order_and_ddim_at_first() -> None:
    # Doubling the steps divides the error by ~4 for a second-order solver and by ~2 for a
    # first-order one. Measured: DPM-Solver++(2M) −12.7 % / −2.3 % / −0.4 % at 5 / 10 / 20 steps,
    # DDIM −22 % / −11.7 % / −6.0 %.
    dpm = [abs(std_error("dpmpp_2m", n)) for n in (5, 10, 20)]
    ddim = [abs(std_error("ddim", n)) for n in (5, 10, 20)]
    assert dpm[0] / dpm[1] > 4 and dpm[1] / dpm[2] > 4
    assert 1.5 < ddim[0] / ddim[1] < 2.5 and 1.5 < ddim[1] / ddim[2] < 2.5
    assert dpm[2] < 0.005 < ddim[2]


@pytest.mark.parametrize(
    ("sampler", "steps", "same"),
    [("dpmpp_2m", 20, True), ("angle_2m", 5, True), ("ddim", 10, False)],
)
def test_dpm_solver_matches_the_ddpm_1000_distribution(
    sampler: str, steps: int, same: bool
) -> None:
    # Two-sample Kolmogorov-Smirnov test of 4e4 draws each; DDIM-10 (std −12 %) shows its power.
    ddpm = make_scheduler(SamplerConfig(sampler="ddpm", steps=1000), SCHEDULE.alphas_cumprod, "v")
    reference = draw(ddpm, 1000, mu=0.5, s=1.0, seed=1)
    config = SamplerConfig(sampler=sampler, steps=steps)  # type: ignore[arg-type]
    candidate = draw(make_scheduler(config, SCHEDULE.alphas_cumprod, "v"), steps, 0.5, 1.0, seed=2)
    pvalue = stats.ks_2samp(candidate.numpy(), reference.numpy()).pvalue
    assert (pvalue > 0.01) if same else (pvalue < 1e-6)


def test_angle_solver_is_exact_for_unit_variance_data_and_second_order_otherwise() -> None:
    # dx/dφ = v̂ is 0 for N(μ, 1) data, so any number of steps is exact; for other variances
    # the error falls ~4x per doubling. Measured std errors at 5 / 10 / 20 steps: s = 0.8
    # −1.9 % / −0.50 % / −0.13 %, s = 2 −1.6 % / −0.27 % / −0.05 % (DPM-Solver++(2M) −13.8 % /
    # −2.2 % / −0.12 % and −19.7 % / −6.9 % / −2.3 %).
    assert abs(std_error("angle_2m", 2)) < 1e-4
    for s in (0.8, 2.0):
        angle = [abs(std_error("angle_2m", n, s)) for n in (5, 10, 20)]
        assert angle[0] / angle[1] > 3.5 and angle[1] / angle[2] > 3.5
        assert angle[0] < abs(std_error("dpmpp_2m", 10, s))


def test_sde_dpm_solver_draws_fresh_noise_and_converges_to_the_data() -> None:
    # Measured (3 x 4e4 draws of N(0.5, 1)): std +2.4 % / +0.7 % / +0.3 % at 10 / 50 / 100 steps.
    sde = make_scheduler(SamplerConfig(sampler="sde_dpmpp_2m"), SCHEDULE.alphas_cumprod, "v")
    ode = make_scheduler(SamplerConfig(sampler="dpmpp_2m"), SCHEDULE.alphas_cumprod, "v")
    start = torch.randn(N_DRAWS, 1, generator=torch.Generator().manual_seed(9))
    # from the same x_T the ODE lands on one point per x_T; the SDE's generator moves it
    assert torch.equal(draw(ode, 10, 0.5, 1.0, 1, start), draw(ode, 10, 0.5, 1.0, 2, start))
    one, two = draw(sde, 10, 0.5, 1.0, 1, start), draw(sde, 10, 0.5, 1.0, 2, start)
    assert torch.equal(one, draw(sde, 10, 0.5, 1.0, 1, start))  # reproducible from its seed
    assert (one - two).abs().mean() > 0.1
    many = draw(
        make_scheduler(SamplerConfig("sde_dpmpp_2m", 100), SCHEDULE.alphas_cumprod, "v"),
        100,
        0.5,
        1.0,
        seed=3,
    )
    assert many.std().item() == pytest.approx(1.0, rel=0.012)
    assert many.mean().item() == pytest.approx(0.5, abs=0.02)


def test_dpm_solver_first_step_is_ddim_and_last_returns_x0() -> None:
    dpm = DPMSolverMultistepScheduler(SCHEDULE.alphas_cumprod, "v")
    ddim = DDIMScheduler(SCHEDULE.alphas_cumprod, "v")
    dpm.set_timesteps(10)
    ddim.set_timesteps(10)
    sample, output = torch.randn(8, 1), torch.randn(8, 1)
    first, last = int(dpm.timesteps[0]), int(dpm.timesteps[-1])
    torch.testing.assert_close(
        dpm.step(output, first, sample).prev_sample, ddim.step(output, first, sample).prev_sample
    )
    result = dpm.step(output, last, sample)  # second order from here on, but not the last step
    torch.testing.assert_close(result.prev_sample, result.pred_x0)
    x0 = to_clean(output, sample, float(SCHEDULE.alphas_cumprod[last]), "v").x0
    torch.testing.assert_close(result.pred_x0, x0)


@pytest.mark.parametrize("scheduler_class", [DPMSolverMultistepScheduler, AngleMultistepScheduler])
def test_multistep_solvers_start_each_chain_afresh(scheduler_class) -> None:
    # The multistep state (the last x̂0 or v̂) must not leak from one sampling loop into the next.
    scheduler = scheduler_class(SCHEDULE.alphas_cumprod, "v")
    first = draw(scheduler, 10, 0.0, 2.0, seed=4)
    assert torch.equal(first, draw(scheduler, 10, 0.0, 2.0, seed=4))
    stray = torch.randn(N_DRAWS, 1)
    scheduler.step(stray, int(scheduler.timesteps[3]), stray)  # a loop abandoned midway
    generator = torch.Generator().manual_seed(4)
    sample = randn_tensor((N_DRAWS, 1), generator, torch.device("cpu"))
    for t in scheduler.timesteps.tolist():  # the same loop without set_timesteps
        output = optimal_output(sample, t, 0.0, 2.0, "v")
        sample = scheduler.step(output, t, sample, generator).prev_sample
    assert torch.equal(first, sample[:, 0])
