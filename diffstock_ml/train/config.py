"""Frozen configuration of the training loop."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation, checkpointing and early stopping of `diffstock_ml.train.train`."""

    seed: int = 0
    batch_size: int = 512
    grad_accumulation: int = 1  # optimizer step every this many batches
    k_noise: int = 4  # noise levels drawn per encoded window
    max_steps: int = 2_000  # optimizer steps
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100  # linear warm-up, then cosine decay to `min_lr_ratio` x lr
    min_lr_ratio: float = 0.05
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    # decay min(ema_decay, (1 + n) / (10 + n)) at the n-th update, so the initial weights are
    # forgotten (without it 0.999^1000 = 37 % of a 1,000-step EMA is the initialisation)
    ema_warmup: bool = True
    dequantise: bool = True  # spread training targets uniformly within +-1/2 tick
    amp: Literal["auto", "off", "bf16"] = "auto"  # auto: bf16 autocast on CUDA only
    compile: bool = False  # torch.compile the model
    checkpoint_every: int = 200  # steps; a checkpoint is also written on exit
    eval_every: int = 200  # steps between validations
    val_windows: int = 2_000  # fixed validation subset (same windows every time)
    val_samples: int = 100  # samples per validation window
    val_steps: int = 5  # steps of the default sampler (SamplerConfig) for validation
    # which validated EMA ships: the newest one whose per-window val CRPS is within this many
    # paired standard errors of the lowest so far (0: the lowest). Checkpoints of one run differ
    # by about as much as the validation's own noise, and the lowest mean then picks by noise.
    select_within_se: float = 2.0
    patience: int = 5  # validations worse than the lowest by more than the margin: stop early
    log_every: int = 20  # steps between step-metric callbacks

    def __post_init__(self) -> None:
        positive = (
            "batch_size",
            "grad_accumulation",
            "k_noise",
            "max_steps",
            "checkpoint_every",
            "eval_every",
            "val_windows",
            "val_samples",
            "val_steps",
            "patience",
            "log_every",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.select_within_se < 0:
            raise ValueError(f"select_within_se must be >= 0, got {self.select_within_se}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
