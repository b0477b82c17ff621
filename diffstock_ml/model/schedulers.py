"""DDPM, DDIM, DPM-Solver++(2M) and angle-(2M) samplers: small scheduler objects with the
diffusers interface.

    scheduler.set_timesteps(50)
    for t in scheduler.timesteps:
        x = scheduler.step(denoiser(x, t), t, x, generator).prev_sample

All accept ε- or v-prediction and never clip the predicted x0: our targets are standardised
returns with heavy tails, not images in [−1, 1], and clipping cuts the tails (DESIGN §7).
Per-step coefficients are Python floats from the float64 schedule, so a step is a few fused
tensor operations on the sample's device and never moves schedule tensors around.
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import numpy as np
import torch

from diffstock_ml.model.config import SAMPLER_NAMES, SamplerConfig

Prediction = Literal["v", "eps"]
Spacing = Literal["trailing", "leading", "linspace"]


class StepResult(NamedTuple):
    """One reverse step: the sample at the previous timestep and the predicted clean x0."""

    prev_sample: torch.Tensor
    pred_x0: torch.Tensor


class PredictedClean(NamedTuple):
    """The model output converted to the predicted clean sample and noise."""

    x0: torch.Tensor
    eps: torch.Tensor


def randn_tensor(
    shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    """Standard normal float32 noise drawn on the generator's device, then moved to `device`.

    A CPU generator therefore gives the same numbers whatever device the model runs on.
    """
    source = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=source).to(device)


def to_clean(
    model_output: torch.Tensor, sample: torch.Tensor, alpha_bar: float, prediction: Prediction
) -> PredictedClean:
    """(x̂0, ε̂) from an ε- or v-prediction at a timestep with ᾱ_t = `alpha_bar`. No clipping."""
    a, b = math.sqrt(alpha_bar), math.sqrt(1.0 - alpha_bar)
    if prediction == "eps":
        # x_t = a·x0 + b·ε  (Ho et al. eq. 4)  =>  x̂0 = (x_t − b·ε̂) / a  (eq. 15)
        return PredictedClean((sample - b * model_output) / a, model_output)
    if prediction == "v":
        # v = a·ε − b·x0  (Salimans & Ho 2022 §4)  =>  x̂0 = a·x_t − b·v̂,  ε̂ = b·x_t + a·v̂
        return PredictedClean(a * sample - b * model_output, b * sample + a * model_output)
    raise ValueError(f"unknown prediction {prediction!r}; expected 'v' or 'eps'")


def spaced_timesteps(T: int, num_steps: int, spacing: Spacing) -> np.ndarray:
    """Descending int64 timesteps in [0, T−1] (the three spacings of diffusers).

    "trailing" always starts from t = T−1, where x_T is (nearly) pure noise; "leading" is the
    DDIM paper's `0, T/n, 2T/n, …` and never reaches t = T−1.
    """
    if not 1 <= num_steps <= T:
        raise ValueError(f"num_steps must be in [1, {T}], got {num_steps}")
    if spacing == "trailing":
        steps = np.round(np.arange(T, 0, -T / num_steps)) - 1
    elif spacing == "leading":
        steps = (np.arange(num_steps) * (T // num_steps))[::-1]
    elif spacing == "linspace":
        steps = np.linspace(0, T - 1, num_steps).round()[::-1]
    else:
        raise ValueError(f"unknown timestep spacing {spacing!r}")
    return steps.astype(np.int64)


class _Scheduler:
    """What both samplers share: the float64 schedule, the prediction type and the timesteps."""

    def __init__(
        self,
        alphas_cumprod: torch.Tensor,
        prediction: Prediction = "v",
        timestep_spacing: Spacing = "trailing",
    ) -> None:
        self.alphas_cumprod = alphas_cumprod.detach().to("cpu", torch.float64)  # [T]
        self.T = len(self.alphas_cumprod)
        self.prediction = prediction
        self.timestep_spacing = timestep_spacing
        self.set_timesteps(self.T)

    def set_timesteps(self, num_steps: int) -> None:
        """Use `num_steps` descending timesteps; each step goes to the next one (or to x0)."""
        steps = spaced_timesteps(self.T, num_steps, self.timestep_spacing)
        self.timesteps = torch.from_numpy(steps.copy())  # [num_steps] descending
        self._prev = dict(zip(steps.tolist(), [*steps[1:].tolist(), -1], strict=True))

    def alpha_bars(self, t: int | torch.Tensor) -> tuple[float, float]:
        """(ᾱ_t, ᾱ_prev) for timestep `t`; ᾱ_prev = 1 after the last step."""
        if int(t) not in self._prev:
            raise ValueError(f"timestep {int(t)} is not one of the {len(self.timesteps)} set ones")
        prev = self._prev[int(t)]
        alpha_bar_prev = float(self.alphas_cumprod[prev]) if prev >= 0 else 1.0
        return float(self.alphas_cumprod[int(t)]), alpha_bar_prev


class DDPMScheduler(_Scheduler):
    """Ancestral sampling of Ho et al. (2020) with the posterior variance β̃ ("fixed small").

    With fewer steps than T it samples the strided chain: each step uses the effective
    α_t = ᾱ_t / ᾱ_prev, as diffusers does.
    """

    def step(
        self,
        model_output: torch.Tensor,
        t: int | torch.Tensor,
        sample: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> StepResult:
        """x_t -> x_{prev} ~ q(x_prev | x_t, x̂0); randomness only from `generator`."""
        alpha_bar, alpha_bar_prev = self.alpha_bars(t)
        alpha = alpha_bar / alpha_bar_prev  # effective α_t of this (possibly strided) step
        beta = 1.0 - alpha
        # 1. predicted x0 from ε̂ or v̂ (eq. 15), never clipped
        pred_x0 = to_clean(model_output, sample, alpha_bar, self.prediction).x0
        # 2. posterior mean μ̃_t(x_t, x̂0) (eq. 7)
        coef_x0 = math.sqrt(alpha_bar_prev) * beta / (1.0 - alpha_bar)
        coef_xt = math.sqrt(alpha) * (1.0 - alpha_bar_prev) / (1.0 - alpha_bar)
        prev_sample = coef_x0 * pred_x0 + coef_xt * sample
        # 3. add σ_t·z with σ_t² = β̃_t = (1 − ᾱ_prev)/(1 − ᾱ_t)·β_t (eq. 7); none at the last step
        variance = (1.0 - alpha_bar_prev) / (1.0 - alpha_bar) * beta
        if variance > 0:
            noise = randn_tensor(tuple(sample.shape), generator, sample.device)
            prev_sample = prev_sample + math.sqrt(variance) * noise
        return StepResult(prev_sample, pred_x0)


class DDIMScheduler(_Scheduler):
    """Song et al. (2021) DDIM: η = 0 is the deterministic sampler, η = 1 matches DDPM's noise."""

    def __init__(
        self,
        alphas_cumprod: torch.Tensor,
        prediction: Prediction = "v",
        timestep_spacing: Spacing = "trailing",
        eta: float = 0.0,
    ) -> None:
        super().__init__(alphas_cumprod, prediction, timestep_spacing)
        self.eta = eta

    def step(
        self,
        model_output: torch.Tensor,
        t: int | torch.Tensor,
        sample: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> StepResult:
        """x_t -> x_{prev} by DDIM eq. 12; randomness (η > 0) only from `generator`."""
        alpha_bar, alpha_bar_prev = self.alpha_bars(t)
        # 1. predicted x0 and ε from the model output, never clipped
        pred_x0, pred_eps = to_clean(model_output, sample, alpha_bar, self.prediction)
        # 2. σ_t(η) = η·sqrt((1 − ᾱ_prev)/(1 − ᾱ_t))·sqrt(1 − ᾱ_t/ᾱ_prev)  (eq. 16)
        variance = (1.0 - alpha_bar_prev) / (1.0 - alpha_bar) * (1.0 - alpha_bar / alpha_bar_prev)
        std = self.eta * math.sqrt(max(variance, 0.0))
        # 3. direction pointing to x_t: sqrt(1 − ᾱ_prev − σ_t²)·ε̂  (eq. 12)
        direction = math.sqrt(max(1.0 - alpha_bar_prev - std**2, 0.0)) * pred_eps
        # 4. x_prev = sqrt(ᾱ_prev)·x̂0 + direction + σ_t·z  (eq. 12)
        prev_sample = math.sqrt(alpha_bar_prev) * pred_x0 + direction
        if std > 0:
            noise = randn_tensor(tuple(sample.shape), generator, sample.device)
            prev_sample = prev_sample + std * noise
        return StepResult(prev_sample, pred_x0)


class _Multistep(_Scheduler):
    """A solver that reuses the previous step's (time, model quantity); a chain's first step
    starts without one, so nothing leaks from an earlier, perhaps abandoned, sampling loop."""

    def set_timesteps(self, num_steps: int) -> None:
        super().set_timesteps(num_steps)
        self._previous: tuple[float, torch.Tensor] | None = None

    def _remember(
        self, t: int | torch.Tensor, time: float, value: torch.Tensor
    ) -> tuple[float, torch.Tensor] | None:
        """Store (time, value) of this step; return the previous step's, None at a chain's start."""
        if int(t) == int(self.timesteps[0]):
            self._previous = None
        previous, self._previous = self._previous, (time, value)
        return previous


class DPMSolverMultistepScheduler(_Multistep):
    """Lu et al. (2022) DPM-Solver++(2M): second-order multistep solver of the diffusion ODE.

    Works in the data-prediction form (x̂0 from ε̂ or v̂) and in λ_t = log(α_t / σ_t), with
    α_t = sqrt(ᾱ_t), σ_t = sqrt(1 − ᾱ_t). The first step has no earlier x̂0 and is first order
    (DDIM); so is the last, which goes to σ = 0 and returns x̂0 (diffusers' `lower_order_final`
    with `final_sigmas_type="zero"`). Deterministic: `generator` is accepted and unused.

    `stochastic=True` is SDE-DPM-Solver++(2M) (Lu et al. 2022, §5; diffusers'
    `algorithm_type="sde-dpmsolver++"`): each step shrinks x_s by a further e^{−h} and adds fresh
    noise in its place, so that, like DDPM, the chain corrects the denoiser's errors instead of
    carrying them along the ODE. Its randomness comes only from `generator`.
    """

    def __init__(
        self,
        alphas_cumprod: torch.Tensor,
        prediction: Prediction = "v",
        timestep_spacing: Spacing = "trailing",
        stochastic: bool = False,
    ) -> None:
        super().__init__(alphas_cumprod, prediction, timestep_spacing)
        self.stochastic = stochastic

    def step(
        self,
        model_output: torch.Tensor,
        t: int | torch.Tensor,
        sample: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> StepResult:
        """x_s -> x_t (t the next, less noisy timestep) by Algorithm 2 of DPM-Solver++."""
        alpha_bar, alpha_bar_prev = self.alpha_bars(t)
        # 1. data prediction x̂0 = x_θ(x_s, s), never clipped
        pred_x0 = to_clean(model_output, sample, alpha_bar, self.prediction).x0
        lambda_s = half_log_snr(alpha_bar)
        previous = self._remember(t, lambda_s, pred_x0)  # (λ_s1, x̂0 at s1) or None
        if alpha_bar_prev == 1.0:  # 2. the last step, to σ_t = 0: x_t = x̂0 (first order)
            return StepResult(pred_x0, pred_x0)
        # 3. h = λ_t − λ_s; D = x̂0 (first order), or with r = h_{i−1} / h
        #    D = (1 + 1/(2r))·x̂0(s) − 1/(2r)·x̂0(s1)  (second order, eq. 7 and Algorithm 2)
        h = half_log_snr(alpha_bar_prev) - lambda_s
        data = pred_x0
        if previous is not None:
            lambda_s1, pred_x0_s1 = previous
            k = h / (2.0 * (lambda_s - lambda_s1))  # 1 / (2r)
            data = (1.0 + k) * pred_x0 - k * pred_x0_s1
        sigma_ratio = math.sqrt((1.0 - alpha_bar_prev) / (1.0 - alpha_bar))
        if not self.stochastic:  # 4. x_t = (σ_t / σ_s)·x_s − α_t·(e^{−h} − 1)·D
            prev_sample = sigma_ratio * sample - math.sqrt(alpha_bar_prev) * math.expm1(-h) * data
            return StepResult(prev_sample, pred_x0)
        # 4'. x_t = (σ_t / σ_s)·e^{−h}·x_s − α_t·(e^{−2h} − 1)·D + σ_t·sqrt(1 − e^{−2h})·z
        noise = randn_tensor(tuple(sample.shape), generator, sample.device)
        prev_sample = (
            sigma_ratio * math.exp(-h) * sample
            - math.sqrt(alpha_bar_prev) * math.expm1(-2.0 * h) * data
            + math.sqrt((1.0 - alpha_bar_prev) * -math.expm1(-2.0 * h)) * noise
        )
        return StepResult(prev_sample, pred_x0)


class AngleMultistepScheduler(_Multistep):
    """Second-order multistep (Adams–Bashforth) solver of the diffusion ODE in the angle φ.

    With α_t = cos φ_t and σ_t = sin φ_t (φ_t = arccos √ᾱ_t), x_t = cos φ·x0 + sin φ·ε moves
    along the probability-flow ODE as dx/dφ = v̂ = α·ε̂ − σ·x̂0 (Salimans & Ho 2022 §4: v is the
    velocity of x in φ). For data N(0, 1) the exact v̂ is 0 (E[x0 | x_t] = α·x_t), so the ODE
    is x = const and this solver is exact in any number of steps, where DDIM and DPM-Solver++
    (exact when x̂0 or ε̂ is constant along the path) shrink the spread by about
    exp(−(π/2)² / 2n) in n steps. The model diffuses a standardised (or gaussianised) residual
    of its own location–scale head, which is close to N(0, 1): the solver then only integrates
    what the denoiser adds to that Gaussian, and few steps suffice.

    The first step has no earlier v̂ and is Euler; later ones use the variable-step AB2 weights
    on (v̂_s, v̂_s1). The last step ends at φ = 0, where x_0 is the sample. Deterministic:
    `generator` is accepted and unused.
    """

    def step(
        self,
        model_output: torch.Tensor,
        t: int | torch.Tensor,
        sample: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> StepResult:
        """x_s -> x_t (t the next, less noisy timestep): x_t = x_s + h·v̄, h = φ_t − φ_s < 0."""
        alpha_bar, alpha_bar_prev = self.alpha_bars(t)
        pred_x0, pred_eps = to_clean(model_output, sample, alpha_bar, self.prediction)
        a, b = math.sqrt(alpha_bar), math.sqrt(1.0 - alpha_bar)
        velocity = model_output if self.prediction == "v" else a * pred_eps - b * pred_x0
        phi_s = angle(alpha_bar)
        previous = self._remember(t, phi_s, velocity)  # (φ_s1, v̂ at s1) or None
        h = angle(alpha_bar_prev) - phi_s  # < 0: towards the data
        if previous is None:
            return StepResult(sample + h * velocity, pred_x0)  # Euler
        phi_s1, velocity_s1 = previous
        k = h / (2.0 * (phi_s - phi_s1))  # variable-step Adams–Bashforth 2
        return StepResult(sample + h * ((1.0 + k) * velocity - k * velocity_s1), pred_x0)


def angle(alpha_bar: float) -> float:
    """φ = arccos √ᾱ = atan2(σ, α): 0 at the data, π/2 at pure noise."""
    return math.atan2(math.sqrt(1.0 - alpha_bar), math.sqrt(alpha_bar))


def half_log_snr(alpha_bar: float) -> float:
    """λ = log(α / σ) = ½·log(ᾱ / (1 − ᾱ)), the time variable of DPM-Solver."""
    return 0.5 * (math.log(alpha_bar) - math.log1p(-alpha_bar))


Scheduler = DDPMScheduler | DDIMScheduler | DPMSolverMultistepScheduler | AngleMultistepScheduler


def make_scheduler(
    config: SamplerConfig, alphas_cumprod: torch.Tensor, prediction: Prediction
) -> Scheduler:
    """The scheduler `config` names, with its timesteps set to `config.steps`."""
    spacing = config.timestep_spacing
    if config.sampler == "ddim":
        scheduler: Scheduler = DDIMScheduler(alphas_cumprod, prediction, spacing, config.eta)
    elif config.sampler == "ddpm":
        scheduler = DDPMScheduler(alphas_cumprod, prediction, spacing)
    elif config.sampler in ("dpmpp_2m", "sde_dpmpp_2m"):
        stochastic = config.sampler == "sde_dpmpp_2m"
        scheduler = DPMSolverMultistepScheduler(alphas_cumprod, prediction, spacing, stochastic)
    elif config.sampler == "angle_2m":
        scheduler = AngleMultistepScheduler(alphas_cumprod, prediction, spacing)
    else:
        raise ValueError(
            f"unknown sampler {config.sampler!r}; expected one of {', '.join(SAMPLER_NAMES)}"
        )
    scheduler.set_timesteps(config.steps)
    return scheduler
