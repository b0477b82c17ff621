"""`DiffusionForecaster`: condition encoder + MLP denoiser + noise schedule, its loss and sampler.

The model diffuses one scalar per window, or with `ModelConfig.path_horizons` a vector of H
standardised cumulative log returns (a path; `forecast.to_path_target`). With the default
"residual" parameterisation (seed appendix A.3) a Gaussian location-scale head on the condition
is trained jointly by likelihood and the denoiser diffuses the standardised residual
x0 = (z − loc) / scale of the target z = ret_30s / sigma_30s; a draw is z = loc + scale · x0.
The head carries the centre and the width, the diffusion the shape around them (tails, skew,
the price grid's lumps), so the model starts where a likelihood head ends. "direct" diffuses z
itself. With a Student-t head and `residual_transform="gaussianise"` (the demo profile) the
residual is first mapped through the t's CDF and the normal quantile function, x0 =
Φ⁻¹(F_ν((z − loc) / scale)), which is exactly N(0, 1) where the head is right: a denoiser that has
learnt nothing (v = 0, the exact denoiser of N(0, 1) data) then samples the head's Student-t, and
what it learns corrects the head's shape. Training encodes each window once and draws K noise
levels for it; sampling encodes once and pushes all samples of all windows through the denoiser
as one batch. Shapes below: C = `config.target_dim` (1 for the scalar target, H for a path).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
from scipy import special
from torch import nn

from diffstock_ml.device import has_native_bfloat16
from diffstock_ml.model.config import ModelConfig, SamplerConfig
from diffstock_ml.model.denoiser import Denoiser
from diffstock_ml.model.encoders import GridEmbedding, build_encoder, with_grid
from diffstock_ml.model.schedule import make_schedule
from diffstock_ml.model.schedulers import make_scheduler, randn_tensor

LOG_SCALE_RANGE = (-7.0, 5.0)
LOG_DF_RANGE = (-4.0, 5.0)  # Student-t head: df = 2 + exp(.), between ~2.02 and ~150


class Location(NamedTuple):
    """Per-window centre and width of the diffused residual, in target (z) units."""

    loc: torch.Tensor  # [B, C]
    scale: torch.Tensor  # [B, C] > 0
    df: torch.Tensor | None = None  # [B, C] > 2 of a Student-t head, None otherwise


def t_to_normal(r: torch.Tensor, df: torch.Tensor) -> torch.Tensor:
    """Φ⁻¹(F_ν(r)) elementwise: a Student-t(ν) variable mapped to the standard normal with the
    same CDF value (the probability integral transform). Computed in the lower tail of |r| (scipy's
    `stdtr`/`ndtri`, float64) so that the far tails keep their precision; no gradient."""
    r64, df64 = _numpy64(r), _numpy64(df)
    lower = np.maximum(special.stdtr(df64, -np.abs(r64)), np.finfo(np.float64).tiny)
    return _like(-special.ndtri(lower) * np.sign(r64), r)


def normal_to_t(x: torch.Tensor, df: torch.Tensor) -> torch.Tensor:
    """The inverse of `t_to_normal`: F_ν⁻¹(Φ(x)) elementwise (scipy's `ndtr`/`stdtrit`)."""
    x64, df64 = _numpy64(x), _numpy64(df)
    return _like(-special.stdtrit(df64, special.ndtr(-np.abs(x64))) * np.sign(x64), x)


def _numpy64(x: torch.Tensor) -> np.ndarray:
    return x.detach().to("cpu", torch.float64).numpy()


def _like(values: np.ndarray, reference: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(values).to(reference.device, reference.dtype)


class LocationScaleHead(nn.Module):
    """Condition `[B, D]` -> `Location` of z (one loc and scale per target dimension, C = `dim`)
    of a Gaussian or a Student-t (then also a df per dimension); starts at loc 0, scale 1."""

    def __init__(self, d_model: int, dim: int = 1, family: str = "gaussian") -> None:
        super().__init__()
        self.dim, self.family = dim, family
        outputs = (3 if family == "student_t" else 2) * dim
        self.mlp = nn.Sequential(
            nn.Linear(d_model, d_model), nn.GELU(), nn.Linear(d_model, outputs)
        )
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)
        if family == "student_t":
            with torch.no_grad():
                self.mlp[-1].bias[2 * dim :] = math.log(4.0)  # df = 6 at initialisation

    def forward(self, cond: torch.Tensor) -> Location:
        return Location(*self.parameters_of(cond))

    def parameters_of(self, cond: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """`loc, scale, df` (`[..., C]` each; df None for the Gaussian), float32."""
        out = self.mlp(cond).float()  # [..., 2C or 3C]
        c = self.dim
        scale = out[..., c : 2 * c].clamp(*LOG_SCALE_RANGE).exp()
        df = (
            2.0 + out[..., 2 * c :].clamp(*LOG_DF_RANGE).exp()
            if self.family == "student_t"
            else None
        )
        return out[..., :c], scale, df

    def crps(
        self, cond: torch.Tensor, z: torch.Tensor, draws: int, generator: torch.Generator | None
    ) -> tuple[Location, torch.Tensor]:
        """The `Location` of `cond` and the mean CRPS of `z [B, C]` under it, in z units: the
        Gaussian's in closed form, the Student-t's by the fair ensemble estimator over `draws`
        reparameterised draws (loc + scale·ε·sqrt(ν / χ²_ν), χ²_ν = 2·Gamma(ν / 2)), which is
        unbiased, so its gradient is too. Written in torch rather than with scoringrules' torch
        backend (which gives the same values): the served model imports this module, and its
        pinned requirements (`pyfunc.REQUIREMENTS`) do not include scoringrules."""
        loc, scale, df = self.parameters_of(cond)
        if df is None:  # Gneiting & Raftery (2007), eq. (5)
            u = (z - loc) / scale
            normal = torch.distributions.Normal(0.0, 1.0)
            pdf, cdf = normal.log_prob(u).exp(), normal.cdf(u)
            score = scale * (u * (2 * cdf - 1) + 2 * pdf - 1 / math.sqrt(math.pi))
            return Location(loc, scale, df), score.mean()
        shape = (draws, *z.shape)  # [M, B, C]
        eps = randn_tensor(shape, generator, z.device)
        half_df = (df / 2).expand(shape).contiguous()
        source = generator.device if generator is not None else z.device
        gamma = torch._standard_gamma(half_df.to(source), generator=generator).to(z.device)
        x = loc + scale * eps * torch.sqrt(df / (2 * gamma).clamp(min=1e-12))  # [M, B, C]
        to_outcome = (x - z).abs().mean(dim=0)  # [B, C]
        spread = (x[:, None] - x[None]).abs().sum(dim=(0, 1)) / (2 * draws * (draws - 1))
        return Location(loc, scale, df), (to_outcome - spread).mean()

    def nll(self, cond: torch.Tensor, z: torch.Tensor) -> tuple[Location, torch.Tensor]:
        """The `Location` of `cond` and the mean NLL of `z [B, C]` under it (the Gaussian's up
        to a constant)."""
        loc, scale, df = self.parameters_of(cond)
        if df is None:
            nll = (0.5 * ((z - loc) / scale) ** 2 + scale.log()).mean()
        else:
            nll = -torch.distributions.StudentT(df, loc, scale).log_prob(z).mean()
        return Location(loc, scale, df), nll


class DiffusionForecaster(nn.Module):
    """Conditional diffusion model of the 30 s-ahead target given a `[B, N, F]` window."""

    def __init__(self, config: ModelConfig, n_features: int) -> None:
        super().__init__()
        self.config = config
        self.n_features = n_features
        self.encoder = build_encoder(config, n_features)
        self.denoiser = Denoiser(config)
        self.grid = GridEmbedding(config.d_model) if config.grid_condition else None
        self.location_scale = (
            LocationScaleHead(config.d_model, config.target_dim, config.head_family)
            if config.parameterisation == "residual"
            else None
        )
        schedule = make_schedule(config.schedule, config.T)  # float64
        self.register_buffer("sqrt_alphas_cumprod", schedule.sqrt_alphas_cumprod.float())
        self.register_buffer(
            "sqrt_one_minus_alphas_cumprod", schedule.sqrt_one_minus_alphas_cumprod.float()
        )

    def encode(self, x: torch.Tensor, grid: torch.Tensor | None = None) -> torch.Tensor:
        """Condition vectors of the windows: `[B, N, F] -> [B, d_model]` (`grid [B]`: the tick
        in target units, needed when `config.grid_condition`)."""
        return with_grid(self.encoder(x), self.grid, grid)

    def locate(self, cond: torch.Tensor) -> Location:
        """Centre and width of the diffused residual: the head's, or (0, 1) for "direct"."""
        if self.location_scale is None:
            ones = torch.ones((*cond.shape[:-1], self.config.target_dim), device=cond.device)
            return Location(torch.zeros_like(ones), ones)
        return self.location_scale(cond)

    def to_residual(self, z: torch.Tensor, location: Location) -> torch.Tensor:
        """The diffused x0 of targets `z` (no gradient to the head): (z − loc) / scale, and with
        `residual_transform="gaussianise"` and a Student-t head Φ⁻¹ of the t's CDF of that, so
        that x0 is exactly N(0, 1) where the head is right."""
        loc, scale, df = location
        residual = (z - loc.detach()) / scale.detach()
        return t_to_normal(residual, df) if self._gaussianises(df) else residual

    def from_residual(self, x0: torch.Tensor, location: Location) -> torch.Tensor:
        """The inverse of `to_residual`: z of diffused draws `x0` (loc + scale · x0, through the
        t's quantile function first when gaussianised)."""
        loc, scale, df = location
        return loc + scale * (normal_to_t(x0, df) if self._gaussianises(df) else x0)

    def _gaussianises(self, df: torch.Tensor | None) -> bool:
        # a Gaussian head's residual is its own Gaussianisation: nothing to map
        return df is not None and self.config.residual_transform == "gaussianise"

    def timestep_weight(self, t: torch.Tensor) -> torch.Tensor:
        """`[B, 1]` loss weight of timesteps `t [B]` ("uniform": 1; "min_snr": min-SNR-γ)."""
        if self.config.loss_weighting == "uniform":
            return torch.ones((len(t), 1), device=t.device)
        a2 = self.sqrt_alphas_cumprod[t][:, None] ** 2
        snr = a2 / (1 - a2).clamp_min(1e-12)  # [B, 1]
        clipped = snr.clamp(max=self.config.min_snr_gamma)
        return clipped / (snr + 1) if self.config.prediction == "v" else clipped / snr

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(ᾱ_t)·x0 + sqrt(1 − ᾱ_t)·ε (Ho et al. eq. 4); `x0, noise [B, C]`, `t [B]`."""
        a = self.sqrt_alphas_cumprod[t][:, None]  # [B, 1]
        b = self.sqrt_one_minus_alphas_cumprod[t][:, None]  # [B, 1]
        return a * x0 + b * noise

    def loss(
        self,
        batch_x: torch.Tensor,
        target_z: torch.Tensor,
        k_noise: int = 1,
        generator: torch.Generator | None = None,
        grid: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Weighted squared error of the v- (or ε-) prediction over K noise levels per window,
        plus (residual parameterisation) `head_loss_weight` × the head's NLL (or CRPS) of z.

        `batch_x [B, N, F]`, `target_z [B]` (already standardised, see `forecast.to_model_target`),
        or `[B, H]` for a path target (`forecast.to_path_target`): the squared error and the
        head's NLL are then averaged over the H horizons too.
        The diffused residual uses the head's output without gradient, so the diffusion loss
        cannot shrink its own target by widening the head. In training mode, with probability
        `cfg_dropout` a row's condition is replaced by the null condition (in eval mode, e.g. a
        validation loss, never).
        """
        if k_noise < 1:
            raise ValueError(f"k_noise must be at least 1, got {k_noise}")
        device = batch_x.device
        rows = len(batch_x) * k_noise
        cond = self.encode(batch_x, grid)  # [B, D]
        z = target_z.float().reshape(len(target_z), -1)  # [B, C] float32 under AMP too
        if z.shape[1] != self.config.target_dim:
            raise ValueError(
                f"target of shape {list(target_z.shape)} for a model of {self.config.target_dim} "
                "target dimension(s) (ModelConfig.path_horizons)"
            )
        if self.location_scale is None:
            location, head_loss = self.locate(cond), torch.zeros((), device=device)
        elif self.config.head_loss == "crps":
            draws = self.config.head_crps_draws
            location, head_loss = self.location_scale.crps(cond, z, draws, generator)
        else:
            location, head_loss = self.location_scale.nll(cond, z)  # [B, C] each, scalar
        residual = self.to_residual(z, location)  # [B, C]
        if not self.config.denoiser_trains_encoder:
            cond = cond.detach()  # the encoder learns from the head's loss alone
        cond = cond.repeat_interleave(k_noise, dim=0)  # [B*K, D]
        x0 = residual.repeat_interleave(k_noise, dim=0)  # [B*K, C]
        # 1. t ~ Uniform{0, …, T−1}, ε ~ N(0, 1) (Ho et al. Algorithm 1)
        source = generator.device if generator is not None else device
        t = torch.randint(0, self.config.T, (rows,), generator=generator, device=source).to(device)
        noise = randn_tensor((rows, z.shape[1]), generator, device)  # [B*K, C]
        drop = torch.rand(rows, generator=generator, device=source).to(device)
        drop = (drop < self.config.cfg_dropout) & self.training  # [B*K] bool, none in eval
        # 2. x_t = sqrt(ᾱ_t)·x0 + sqrt(1 − ᾱ_t)·ε
        x_t = self.q_sample(x0, t, noise)  # [B*K, C]
        # 3. regress ε, or v = sqrt(ᾱ_t)·ε − sqrt(1 − ᾱ_t)·x0 (Salimans & Ho 2022)
        if self.config.prediction == "eps":
            target = noise
        else:
            a = self.sqrt_alphas_cumprod[t][:, None]
            b = self.sqrt_one_minus_alphas_cumprod[t][:, None]
            target = a * noise - b * x0  # [B*K, C]
        prediction = self.denoiser(x_t, t, cond, drop)  # [B*K, C]
        squared = (prediction.float() - target.float()) ** 2  # [B*K, C]
        diffusion = (self.timestep_weight(t) * squared).mean()
        return diffusion + self.config.head_loss_weight * head_loss

    def guided_output(
        self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, weight: float
    ) -> torch.Tensor:
        """Denoiser output, with classifier-free guidance uncond + w·(cond − uncond) if w ≠ 1.

        Equivalently (1 + g)·cond − g·uncond with g = w − 1, so w = 1 is plain conditional
        sampling and never evaluates the null condition.
        """
        if weight == 1.0:
            return self.denoiser(x_t, t, cond)  # x_t's shape
        drop = torch.zeros((2, *t.shape), dtype=torch.bool, device=t.device)
        drop[1] = True  # second half unconditional
        both = self.denoiser(
            torch.stack([x_t, x_t]), torch.stack([t, t]), torch.stack([cond, cond]), drop
        )  # [2, *x_t.shape]
        conditional, unconditional = both.unbind(0)
        return unconditional + weight * (conditional - unconditional)

    @torch.no_grad()
    def sample(
        self,
        x: torch.Tensor,
        n_samples: int | None = None,
        sampler_config: SamplerConfig | None = None,
        generator: torch.Generator | None = None,
        guidance_weight: float | None = None,
        grid: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Draws of the standardised target z for each window: `[B, N, F] -> [B, n_samples]`.

        Runs in eval mode (dropout off) and restores the previous mode. `n_samples` and
        `guidance_weight` default to the sampler's and the model's configuration. A path model
        draws with `sample_paths` instead.
        """
        if self.config.path_horizons:
            raise ValueError("this model has a path target: draw [B, S, H] with sample_paths")
        sampler_config = sampler_config or SamplerConfig()
        n_samples = sampler_config.n_samples if n_samples is None else n_samples
        draws = self._draw(x, n_samples, sampler_config, generator, guidance_weight, grid)
        return draws.view(len(x), n_samples)  # [B, S]

    @torch.no_grad()
    def sample_paths(
        self,
        x: torch.Tensor,
        n_samples: int | None = None,
        sampler_config: SamplerConfig | None = None,
        generator: torch.Generator | None = None,
        guidance_weight: float | None = None,
        grid: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Draws of the standardised path (`forecast.to_path_target`) of each window:
        `[B, N, F] -> [B, n_samples, H]`, H = len(`config.path_horizons`); as `sample`."""
        if not self.config.path_horizons:
            raise ValueError("this model has the scalar 30 s target: draw [B, S] with sample")
        sampler_config = sampler_config or SamplerConfig()
        n_samples = sampler_config.n_samples if n_samples is None else n_samples
        return self._draw(x, n_samples, sampler_config, generator, guidance_weight, grid)

    def _draw(
        self,
        x: torch.Tensor,
        n_samples: int,
        sampler_config: SamplerConfig,
        generator: torch.Generator | None,
        guidance_weight: float | None,
        grid: torch.Tensor | None,
    ) -> torch.Tensor:
        """The sampling loop: `[B, N, F] -> [B, n_samples, C]` draws of z = loc + scale·x0."""
        if n_samples < 1:
            raise ValueError(f"n_samples must be at least 1, got {n_samples}")
        weight = self.config.guidance_weight if guidance_weight is None else guidance_weight
        if weight != 1.0 and self.config.cfg_dropout == 0.0:
            raise ValueError("guidance needs a null condition trained with cfg_dropout > 0")
        schedule = make_schedule(self.config.schedule, self.config.T)
        scheduler = make_scheduler(sampler_config, schedule.alphas_cumprod, self.config.prediction)
        was_training = self.training
        self.eval()
        precision = sampler_config.precision
        if precision == "auto":
            precision = "bfloat16" if has_native_bfloat16(x.device) else "float32"
        autocast = torch.autocast(
            x.device.type, dtype=torch.bfloat16, enabled=precision == "bfloat16"
        )
        shape = (len(x), n_samples, self.config.target_dim)
        try:
            with autocast:
                # each window encoded once; its context is shared by its samples (broadcast)
                cond = self.encode(x, grid)[:, None, :]  # [B, 1, D]
                location = self.locate(cond)  # [B, 1, C] each, float32
            sample = randn_tensor(shape, generator, x.device)  # [B, S, C] x_T
            for t in scheduler.timesteps.tolist():
                t_rows = torch.full((len(x), 1), t, device=x.device, dtype=torch.long)  # [B, 1]
                with autocast:
                    output = self.guided_output(sample, t_rows, cond, weight)  # [B, S, C]
                sample = scheduler.step(output.float(), t, sample, generator).prev_sample
        finally:
            self.train(was_training)
        return self.from_residual(sample, location)  # [B, S, C] z
