"""Noise schedules as pure float64 functions (Ho et al. 2020; Nichol & Dhariwal 2021).

Index convention (as in diffusers): training steps are t = 0 … T−1 and
`alphas_cumprod[t] = ᾱ_t = ∏_{s≤t} (1 − β_s)`, so ᾱ_0 is just below 1 and ᾱ_{T−1} is close to 0.
Everything is computed in float64; a module casts what it stores with `register_buffer`.
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import torch

F64 = torch.float64


class Schedule(NamedTuple):
    """A noise schedule and the quantities derived from it, all float64 `[T]` tensors."""

    betas: torch.Tensor  # β_t
    alphas_cumprod: torch.Tensor  # ᾱ_t
    alphas_cumprod_prev: torch.Tensor  # ᾱ_{t−1}, with ᾱ_{−1} = 1
    sqrt_alphas_cumprod: torch.Tensor  # sqrt(ᾱ_t): signal scale of x_t
    sqrt_one_minus_alphas_cumprod: torch.Tensor  # sqrt(1 − ᾱ_t): noise scale of x_t
    posterior_variance: torch.Tensor  # β̃_t of q(x_{t−1} | x_t, x0)


def linear_betas(T: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """Ho et al. (2020) linear betas, rescaled by 1000/T so that other T keep the same ᾱ path."""
    scale = 1000.0 / T
    return torch.linspace(scale * beta_start, scale * beta_end, T, dtype=F64)  # [T]


def cosine_alpha_bar(T: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Nichol & Dhariwal (2021) cosine ᾱ_t (eq. 17), with betas clipped at `max_beta`."""
    steps = torch.arange(T + 1, dtype=F64) / T  # [T+1] in [0, 1]
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2  # [T+1]
    betas = (1 - f[1:] / f[:-1]).clamp(max=max_beta)  # [T]  β_t = 1 − ᾱ_t / ᾱ_{t−1}
    return alpha_bar_from_betas(betas)


def alpha_bar_from_betas(betas: torch.Tensor) -> torch.Tensor:
    """ᾱ_t = ∏_{s≤t} (1 − β_s)."""
    return torch.cumprod(1 - betas.to(F64), dim=0)


def betas_from_alpha_bar(alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """β_t = 1 − ᾱ_t / ᾱ_{t−1} (with ᾱ_{−1} = 1)."""
    alphas_cumprod = alphas_cumprod.to(F64)
    return 1 - alphas_cumprod / _prev(alphas_cumprod)


def posterior_variance(alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """β̃_t = (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · β_t, Ho et al. (2020) eq. 7."""
    alphas_cumprod = alphas_cumprod.to(F64)
    prev = _prev(alphas_cumprod)
    return (1 - prev) / (1 - alphas_cumprod) * (1 - alphas_cumprod / prev)


def snr(alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """Signal-to-noise ratio ᾱ_t / (1 − ᾱ_t)."""
    alphas_cumprod = alphas_cumprod.to(F64)
    return alphas_cumprod / (1 - alphas_cumprod)


def make_schedule(kind: Literal["cosine", "linear"], T: int) -> Schedule:
    """The named schedule with T training steps and its derived quantities (float64)."""
    if T < 1:
        raise ValueError(f"T must be at least 1, got {T}")
    if kind == "cosine":
        alphas_cumprod = cosine_alpha_bar(T)
    elif kind == "linear":
        alphas_cumprod = alpha_bar_from_betas(linear_betas(T))
    else:
        raise ValueError(f"unknown schedule {kind!r}; expected 'cosine' or 'linear'")
    return Schedule(
        betas=betas_from_alpha_bar(alphas_cumprod),
        alphas_cumprod=alphas_cumprod,
        alphas_cumprod_prev=_prev(alphas_cumprod),
        sqrt_alphas_cumprod=alphas_cumprod.sqrt(),
        sqrt_one_minus_alphas_cumprod=(1 - alphas_cumprod).sqrt(),
        posterior_variance=posterior_variance(alphas_cumprod),
    )


def _prev(alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """ᾱ_{t−1} for each t, with ᾱ_{−1} = 1."""
    return torch.cat([alphas_cumprod.new_ones(1), alphas_cumprod[:-1]])
