"""The MLP denoiser of the target (a scalar, or a path of horizons), FiLM-conditioned on the
window and the timestep."""

from __future__ import annotations

import math

import torch
from torch import nn

from diffstock_ml.model.config import ModelConfig


def sinusoidal_embedding(
    positions: torch.Tensor, dim: int, max_period: float = 10_000.0
) -> torch.Tensor:
    """Transformer sinusoidal embedding of `[...]` positions or timesteps -> `[..., dim]`."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period)
        * torch.arange(half, dtype=torch.float32, device=positions.device)
        / half
    )  # [half]
    angles = positions.float()[..., None] * freqs  # [..., half]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)  # [..., dim]


class TimeEmbedding(nn.Module):
    """Sinusoidal embedding of the integer timestep followed by a small MLP (as in DDPM)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(sinusoidal_embedding(t, self.dim))  # [B] -> [B, dim]


class FiLMBlock(nn.Module):
    """Pre-norm residual MLP block whose normalised input is scaled and shifted by the context.

    h + W2·drop(SiLU(W1·((1 + γ)·LN(h) + β))), with (γ, β) = Linear(context); W2 starts at zero
    so every block starts as the identity.
    """

    def __init__(self, hidden: int, context_dim: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(hidden, elementwise_affine=False)
        self.film = nn.Linear(context_dim, 2 * hidden)
        self.fc1 = nn.Linear(hidden, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.dropout = nn.Dropout(dropout)
        nn.init.zeros_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, h: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.film(context).chunk(2, dim=-1)  # [B, hidden] each
        if gamma.shape[:-1].numel() == 1:
            # one context for all rows (one window's samples): (1 + γ, β) is the LayerNorm's
            # own affine, one fused kernel instead of three passes over [S, hidden]
            weight, bias = (1 + gamma).flatten().to(h.dtype), beta.flatten().to(h.dtype)
            y = nn.functional.layer_norm(h, self.norm.normalized_shape, weight, bias)
        else:
            y = torch.addcmul(beta, self.norm(h), 1 + gamma)  # (1 + γ)·LN(h) + β, [B, hidden]
        y = self.dropout(nn.functional.silu(self.fc1(y)))  # [B, hidden]
        if torch.is_autocast_enabled(y.device.type):  # mixed dtypes: autocast's own GEMM
            return h + self.fc2(y)
        # h + fc2(y): the bias goes into the residual and the product accumulates into it in
        # place, one pass over [B, hidden] instead of three (bias broadcast, product, sum)
        out = h + self.fc2.bias
        out.view(-1, out.shape[-1]).addmm_(y.reshape(-1, y.shape[-1]), self.fc2.weight.t())
        return out


class Denoiser(nn.Module):
    """Predicts ε or v for the noisy target `x_t [B, C]` at timestep `t [B]` given `cond [B, D]`.

    C = `config.target_dim`: 1 for the scalar 30 s target, H for a path of H horizons (all
    horizons share the MLP; its first and last layers mix them).

    Shapes broadcast: with `x_t [W, S, 1]`, `t [W, 1]` and `cond [W, 1, D]` the context and the
    FiLM scales are computed once per window and shared by its S samples (how sampling calls it;
    the conditioning is about half of the denoiser's work). `null_condition` is the learned
    "no condition" vector of classifier-free guidance (Ho & Salimans 2022): rows where `drop` is
    True use it instead of their condition.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        hidden, context_dim = config.denoiser_hidden, config.d_model + config.time_embed_dim
        self.time_embedding = TimeEmbedding(config.time_embed_dim)
        self.null_condition = nn.Parameter(0.02 * torch.randn(config.d_model))
        self.input = nn.Linear(config.target_dim, hidden)
        self.blocks = nn.ModuleList(
            FiLMBlock(hidden, context_dim, config.dropout) for _ in range(config.denoiser_depth)
        )
        self.norm = nn.LayerNorm(hidden)
        self.output = nn.Linear(hidden, config.target_dim)

    def forward(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor,
        cond: torch.Tensor,
        drop: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """`x_t [..., C]`, `t [...]` int, `cond [..., D]`, `drop [...]` bool or None.

        The leading shapes of `t`, `cond` and `drop` must agree and broadcast against `x_t`'s;
        the result has `x_t`'s shape.
        """
        if drop is not None:
            cond = torch.where(drop[..., None], self.null_condition.to(cond.dtype), cond)
        context = torch.cat([cond, self.time_embedding(t)], dim=-1)  # [..., D + E]
        context = nn.functional.silu(context)
        if self.input.in_features == 1:
            # Linear(1, hidden) of a scalar as one broadcast multiply-add, not a GEMM with K = 1
            h = torch.addcmul(self.input.bias, x_t, self.input.weight[:, 0])  # [..., hidden]
        else:
            h = self.input(x_t).to(x_t.dtype)  # [..., hidden], float32 under autocast too
        for block in self.blocks:
            h = block(h, context)
        return self.output(self.norm(h))  # [..., C]
