"""Condition encoders: a window of features `[B, N, F]` -> one condition vector `[B, d_model]`."""

from __future__ import annotations

from itertools import pairwise

import torch
from torch import nn

from diffstock_ml.model.config import ModelConfig
from diffstock_ml.model.denoiser import sinusoidal_embedding


def crop(x: torch.Tensor, context_s: int | None) -> torch.Tensor:
    """The last `context_s` seconds of windows `[B, N, F]` (all of them when None)."""
    if context_s is None:
        return x
    if context_s > x.shape[1]:
        raise ValueError(f"context_s {context_s} exceeds the window's {x.shape[1]} s")
    return x[:, x.shape[1] - context_s :]


class TransformerEncoder(nn.Module):
    """Input projection, positional encoding, pre-norm transformer layers, pooled condition.

    Tokens are non-overlapping patches of `patch_size` seconds ending at the anchor (1 = one
    token per second; larger patches cut attention cost quadratically, as in PatchTST; the oldest
    seconds that do not fill a patch are dropped). Positions count patches back from the anchor
    (the last token is position 0), so the anchor has the same encoding whatever the window
    length. The condition is a projection of the last token (the state at the anchor)
    concatenated with the mean over the window.
    """

    def __init__(self, config: ModelConfig, n_features: int) -> None:
        super().__init__()
        d = config.d_model
        self.d_model = d
        self.positional = config.positional
        self.patch = config.patch_size
        self.context = config.context_s
        self.input = nn.Linear(n_features * config.patch_size, d)
        if config.positional == "learned":
            self.position_table = nn.Parameter(0.02 * torch.randn(config.max_len, d))
        self.dropout = nn.Dropout(config.dropout)
        layer = nn.TransformerEncoderLayer(
            d,
            config.n_heads,
            dim_feedforward=4 * d,
            dropout=config.dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.layers = nn.TransformerEncoder(
            layer, config.n_layers, norm=nn.LayerNorm(d), enable_nested_tensor=False
        )
        self.pool = nn.Linear(2 * d, d)

    def position_encoding(self, n: int, device: torch.device) -> torch.Tensor:
        """`[n, d_model]` encoding of seconds before the anchor n−1, …, 1, 0."""
        seconds_back = torch.arange(n - 1, -1, -1, device=device)  # [n]
        if self.positional == "learned":
            if n > len(self.position_table):
                raise ValueError(f"window of {n} s exceeds max_len {len(self.position_table)}")
            return self.position_table[seconds_back]
        return sinusoidal_embedding(seconds_back, self.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = crop(x, self.context)
        b, n, f = x.shape  # [B, N, F]
        n = n // self.patch  # tokens
        if n == 0:
            raise ValueError(f"window of {x.shape[1]} s is shorter than a patch ({self.patch} s)")
        x = x[:, x.shape[1] - n * self.patch :].reshape(b, n, self.patch * f)  # [B, n, P*F]
        h = self.input(x) + self.position_encoding(n, x.device)  # [B, n, d]
        h = self.layers(self.dropout(h))  # [B, N, d]
        pooled = torch.cat([h[:, -1], h.mean(dim=1)], dim=-1)  # [B, 2d]
        return self.pool(pooled)  # [B, d]


class CnnLstmEncoder(nn.Module):
    """Causal Conv1d stack (GELU) over time, then an LSTM whose last hidden state is the condition.

    Convolutions are left-padded so that the output at the anchor sees only real seconds.
    """

    def __init__(self, config: ModelConfig, n_features: int) -> None:
        super().__init__()
        d, k = config.d_model, config.conv_kernel
        channels = [n_features] + [d] * config.n_layers
        self.convs = nn.ModuleList(nn.Conv1d(c_in, c_out, k) for c_in, c_out in pairwise(channels))
        self.pad = k - 1
        self.context = config.context_s
        self.dropout = nn.Dropout(config.dropout)
        self.lstm = nn.LSTM(
            d,
            d,
            num_layers=config.lstm_layers,
            batch_first=True,
            dropout=config.dropout if config.lstm_layers > 1 else 0.0,
        )
        self.norm = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = crop(x, self.context).transpose(1, 2)  # [B, F, N]
        for conv in self.convs:
            h = nn.functional.gelu(conv(nn.functional.pad(h, (self.pad, 0))))  # [B, d, N]
        h = self.dropout(h.transpose(1, 2))  # [B, N, d]
        _, (h_n, _) = self.lstm(h)  # h_n: [layers, B, d]
        return self.norm(h_n[-1])  # [B, d]


class GridEmbedding(nn.Module):
    """log(tick in target units) `[...]` -> `[..., d]`, added to a condition; starts at zero."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(1, d_model), nn.SiLU(), nn.Linear(d_model, d_model))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        return self.mlp(grid.float().clamp_min(1e-6).log()[..., None])


def with_grid(cond: torch.Tensor, embedding: GridEmbedding | None, grid: torch.Tensor | None):
    """`cond [B, D]` plus the grid embedding when the model has one (then `grid [B]` is needed)."""
    if embedding is None:
        return cond
    if grid is None:
        raise ValueError("this model conditions on the price grid: pass grid = tick/(close·scale)")
    return cond + embedding(grid).to(cond.dtype)


def build_encoder(config: ModelConfig, n_features: int) -> TransformerEncoder | CnnLstmEncoder:
    """The condition encoder `config.encoder` names, for windows of `n_features` features."""
    if config.encoder == "transformer":
        return TransformerEncoder(config, n_features)
    if config.encoder == "cnn_lstm":
        return CnnLstmEncoder(config, n_features)
    raise ValueError(f"unknown encoder {config.encoder!r}; expected 'transformer' or 'cnn_lstm'")
