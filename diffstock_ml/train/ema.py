"""Exponential moving average of the weights, with the warm-up diffusion trainers use.

A plain EMA with decay 0.999 started from the initial weights still holds 0.999^n of them
after n steps: 37 % after 1,000 steps, which is what the demo model shipped (and what biased its
median: the untrained denoiser's output bias survives in the average). The warm-up decay
min(decay, (1 + n) / (10 + n)) (diffusers' `EMAModel`, Karras et al. 2022 for the idea) forgets
the initial weights within a few steps and reaches `decay` only once n is large enough for it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.optim.swa_utils import AveragedModel

WARMUP_OFFSET = 10


def ema_decay_at(update: int, decay: float, warmup: bool) -> float:
    """The decay of the `update`-th EMA update (1-based): `min(decay, (1 + n) / (10 + n))`."""
    if not warmup:
        return decay
    return min(decay, (1 + update) / (WARMUP_OFFSET + update))


def ema_multi_avg_fn(decay: float, warmup: bool = True) -> Callable:
    """`AveragedModel(multi_avg_fn=...)` update: ema ← d·ema + (1 − d)·w with d from
    `ema_decay_at` (AveragedModel passes how many updates were averaged before this one)."""

    @torch.no_grad()
    def update(ema: list[torch.Tensor], current: list[torch.Tensor], n_averaged) -> None:
        d = ema_decay_at(int(n_averaged), decay, warmup)
        if torch.is_floating_point(ema[0]):
            torch._foreach_lerp_(ema, current, 1.0 - d)
        else:  # integer buffers (e.g. counters) follow the model
            for e, c in zip(ema, current, strict=True):
                e.copy_(c)

    return update


def exponential_moving_average(
    model: torch.nn.Module, decay: float, warmup: bool = True
) -> AveragedModel:
    """An `AveragedModel` of `model` (parameters and buffers) updated by `ema_multi_avg_fn`."""
    return AveragedModel(model, multi_avg_fn=ema_multi_avg_fn(decay, warmup), use_buffers=True)
