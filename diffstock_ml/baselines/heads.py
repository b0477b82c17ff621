"""Gaussian and Student-t heads on the diffusion model's encoder, trained by likelihood.

The strongest non-diffusion competitor: the same condition encoder (`build_encoder` with the
diffusion model's `ModelConfig`) and a small MLP predicting the location, log-scale (and log of
df − 2 for the t) of the same standardised target z = ret_30s / sigma_30s (`to_model_target`),
dequantised as in the model's training. AdamW with warm-up + cosine LR (`lr_factor`) and
gradient clipping on `WindowLoader` batches; the feature normaliser is the diffusion model's
when given, else fitted on the training days as `splits.fit_normaliser` does.
No EMA and no early stopping: `fit(..., max_steps)` runs a fixed number of steps.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import ClassVar, Literal, NamedTuple

import numpy as np
import torch
from torch import nn

from diffstock_ml.baselines.base import Baseline, Draws, ScaleFit, at_anchors, register
from diffstock_ml.batches import Batch, Normaliser, WindowLoader
from diffstock_ml.market import TICK
from diffstock_ml.model.config import ModelConfig
from diffstock_ml.model.encoders import GridEmbedding, build_encoder, with_grid
from diffstock_ml.model.forecast import (
    dequantise,
    grid_in_target_units,
    target_scale,
    to_model_target,
)
from diffstock_ml.train.config import TrainConfig
from diffstock_ml.train.loop import adamw, lr_factor
from diffstock_ml.windows import DayArrays

Family = Literal["gaussian", "student_t"]
# Short by default: the caller passes the diffusion profile's TrainConfig for a real comparison.
HEAD_TRAINING = TrainConfig(batch_size=256, max_steps=300, warmup_steps=20)
LOG_SCALE_RANGE = (-7.0, 5.0)
LOG_DF_RANGE = (-4.0, 5.0)  # df = 2 + exp(.): between ~2.02 and ~150


class HeadOutput(NamedTuple):
    loc: torch.Tensor  # [B] in units of the target scale
    scale: torch.Tensor  # [B] > 0
    df: torch.Tensor | None  # [B] > 2 for the Student-t, None for the Gaussian


class HeadParameters(NamedTuple):
    loc: np.ndarray  # [B] float64, z units
    scale: np.ndarray  # [B]
    df: np.ndarray | None  # [B], None for the Gaussian


class DistributionHead(nn.Module):
    """Encoder + MLP: a window `[B, N, F]` -> the parameters of a Gaussian or Student-t."""

    def __init__(self, config: ModelConfig, n_features: int, family: Family) -> None:
        super().__init__()
        self.family = family
        self.encoder = build_encoder(config, n_features)
        d = config.d_model
        self.grid = GridEmbedding(d) if config.grid_condition else None
        self.mlp = nn.Sequential(
            nn.Linear(d, d), nn.GELU(), nn.Linear(d, 3 if family == "student_t" else 2)
        )
        if family == "student_t":
            with torch.no_grad():
                self.mlp[-1].bias[2] = float(np.log(4.0))  # df = 6 at initialisation

    def forward(self, x: torch.Tensor, grid: torch.Tensor | None = None) -> HeadOutput:
        out = self.mlp(with_grid(self.encoder(x), self.grid, grid))  # [B, 2 or 3]
        scale = out[:, 1].clamp(*LOG_SCALE_RANGE).exp()
        df = 2.0 + out[:, 2].clamp(*LOG_DF_RANGE).exp() if self.family == "student_t" else None
        return HeadOutput(out[:, 0], scale, df)

    def nll(
        self, x: torch.Tensor, z: torch.Tensor, grid: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Mean negative log-likelihood of the standardised targets `z [B]`."""
        loc, scale, df = self(x, grid)
        if df is None:
            return -torch.distributions.Normal(loc, scale).log_prob(z).mean()
        return -torch.distributions.StudentT(df, loc, scale).log_prob(z).mean()


def train_on_windows(
    network: nn.Module,
    loss: Callable[[Batch], torch.Tensor],
    loader: WindowLoader,
    config: TrainConfig,
    after_step: Callable[[int], bool] | None = None,
) -> list[float]:
    """Minimise `loss(batch)` over `config.max_steps` AdamW steps; the loss of every step.

    `after_step(steps_done)`, when given, runs after every step; True stops training there
    (early stopping: the callback validates and keeps the best weights itself).
    """
    if len(loader) == 0:
        raise ValueError(
            f"no full training batch: {len(loader.anchors)} anchors for batch size "
            f"{config.batch_size}"
        )
    optimizer = adamw(network.parameters(), config)
    lr_schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, config))
    network.train()
    losses, batches = [], iter(loader)
    for _ in range(config.max_steps):
        batch = next(batches, None)
        if batch is None:  # epochs roll over
            batches = iter(loader)
            batch = next(batches)
        value = loss(batch)
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        torch.nn.utils.clip_grad_norm_(network.parameters(), config.grad_clip)
        optimizer.step()
        lr_schedule.step()
        losses.append(value.item())
        if after_step is not None and after_step(len(losses)):
            break
    network.eval()
    return losses


def windows_at(
    day: DayArrays, anchors: np.ndarray, normaliser: Normaliser, device: torch.device
) -> torch.Tensor:
    """Normalised windows `[B, N, F]` ending at `anchors [B, 2]` (seconds t-N+1..t)."""
    n = day.config.length
    seconds = anchors[:, 1:2] + np.arange(-n + 1, 1)  # [B, N]
    if seconds.min(initial=0) < 0:
        raise ValueError(f"{day.day}: an anchor second is before a full {n} s window")
    x = np.asarray(day.x[anchors[:, 0:1], seconds], dtype=np.float32)  # [B, N, F]
    return normaliser.apply(torch.from_numpy(x).to(device))


def training_loader(
    train_days: Sequence[DayArrays],
    config: TrainConfig,
    seed: int,
    normaliser: Normaliser | None,
    device: torch.device,
) -> tuple[Normaliser, WindowLoader]:
    """The given normaliser (else fitted on the training days, as `splits.fit_normaliser` does
    for the diffusion model) and a shuffled loader of full training batches."""
    normaliser = normaliser or Normaliser.fit(train_days, seed=0)
    loader = WindowLoader(
        train_days,
        batch_size=config.batch_size,
        normaliser=normaliser,
        seed=seed,
        device=device,
        drop_last=True,
    )
    return normaliser, loader


def seeded(rng: np.random.Generator) -> int:
    return int(rng.integers(2**31 - 1))


class _LikelihoodHead(Baseline):
    family: ClassVar[Family]

    def __init__(
        self,
        model_config: ModelConfig | None = None,
        train_config: TrainConfig = HEAD_TRAINING,
        device: torch.device | str = "cpu",
        chunk: int = 1024,
        normaliser: Normaliser | None = None,
        scale_fit: ScaleFit | None = None,
        tick: float = TICK,
    ) -> None:
        super().__init__(scale_fit, tick)
        self.model_config = model_config or ModelConfig()
        self.train_config = train_config
        self.device = torch.device(device)
        self.chunk = chunk
        self.network: DistributionHead | None = None
        self.given_normaliser = normaliser  # None: fitted on the training days in `fit`
        self.normaliser: Normaliser | None = None
        self.losses: list[float] = []

    def fit(
        self,
        train_days: Sequence[DayArrays],
        rng: np.random.Generator,
        max_steps: int | None = None,
    ) -> None:
        """Train the head for `max_steps` (default: the train config's), then the spread factor."""
        if max_steps is not None:
            self.train_config = dataclasses.replace(self.train_config, max_steps=max_steps)
        super().fit(train_days, rng)

    def fit_model(self, train_days: Sequence[DayArrays], rng: np.random.Generator) -> None:
        seed = seeded(rng)
        config = dataclasses.replace(self.train_config, seed=seed)
        self.normaliser, loader = training_loader(
            train_days, config, seed, self.given_normaliser, self.device
        )
        generator = torch.Generator(device=self.device).manual_seed(seed)
        with torch.random.fork_rng(devices=[]):  # initialisation and dropout: own seed
            torch.manual_seed(seed)
            n_features = len(train_days[0].feature_names)
            network = DistributionHead(self.model_config, n_features, self.family).to(self.device)

            def loss(batch: Batch) -> torch.Tensor:
                target = batch.target
                if config.dequantise:
                    target = dequantise(batch.target, batch.close, generator=generator)
                z = to_model_target(target, batch.sigma, self.model_config)
                grid = grid_in_target_units(batch.close, batch.sigma, self.model_config)
                return network.nll(batch.x, z, grid)

            self.losses = train_on_windows(network, loss, loader, config)
        self.network = network

    @torch.no_grad()
    def parameters_at(self, day: DayArrays, anchors: np.ndarray) -> HeadParameters:
        """The head's `loc, scale, df` (float64 `[B]`, z units) at `anchors [B, 2]` of `day`."""
        if self.network is None or self.normaliser is None:
            raise RuntimeError(f"{self.name} is not fitted: call fit(train_days, rng) first")
        parts = []
        for start in range(0, len(anchors), self.chunk):
            part = anchors[start : start + self.chunk]
            x = windows_at(day, part, self.normaliser, self.device)
            close, sigma = (
                torch.from_numpy(at_anchors(values, part)).to(self.device)
                for values in (day.close, day.sigma)
            )
            parts.append(self.network(x, grid_in_target_units(close, sigma, self.model_config)))

        def joined(field: str) -> np.ndarray:
            return torch.cat([getattr(p, field) for p in parts]).double().cpu().numpy()

        df = None if self.family == "gaussian" else joined("df")
        return HeadParameters(joined("loc"), joined("scale"), df)

    def draw(
        self, day: DayArrays, anchors: np.ndarray, n_samples: int, rng: np.random.Generator
    ) -> Draws:
        loc, scale, df = self.parameters_at(day, anchors)
        sigma = torch.from_numpy(at_anchors(day.sigma, anchors))
        unit = target_scale(sigma, self.model_config).numpy()  # [B] returns per z unit
        shape = (len(anchors), n_samples)
        if df is None:
            noise = rng.standard_normal(shape)
        else:
            noise = rng.standard_t(np.broadcast_to(df[:, None], shape))
        return Draws(loc * unit, (scale * unit)[:, None] * noise)


@register
class GaussianHead(_LikelihoodHead):
    """N(loc, scale²) of z on the diffusion encoder, trained by Gaussian NLL."""

    name = "gaussian_head"
    family = "gaussian"


@register
class StudentTHead(_LikelihoodHead):
    """Student-t(df, loc, scale) of z on the diffusion encoder, trained by its NLL."""

    name = "student_t_head"
    family = "student_t"
