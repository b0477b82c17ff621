"""Validation of a diffusion model on a fixed subset of windows: CRPS and 90 % coverage."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scoringrules as sr
import torch

from diffstock_ml.batches import WindowLoader
from diffstock_ml.model.config import SamplerConfig
from diffstock_ml.model.diffusion import DiffusionForecaster
from diffstock_ml.model.forecast import forecast


@dataclass(frozen=True)
class ValidationScore:
    crps_bp: float  # mean fair CRPS of the snapped return forecast, basis points
    coverage_90: float  # share of realised returns inside the central 90 % interval
    windows: int


def fixed_subset(loader: WindowLoader, size: int, seed: int) -> torch.Tensor:
    """`[size, 3]` anchors drawn once, so that every validation scores the same windows."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(loader.anchors), generator=generator)
    return loader.anchors[order[:size]]


@torch.no_grad()
def validate(
    model: DiffusionForecaster,
    loader: WindowLoader,
    anchors: torch.Tensor,
    sampler: SamplerConfig,
    seed: int,
    chunk: int = 256,
) -> ValidationScore:
    """Sample every anchor's forecast with a fixed generator and score it against `ret_30s`."""
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    crps, covered = [], []
    for start in range(0, len(anchors), chunk):
        batch = loader.gather(anchors[start : start + chunk])
        draws = forecast(model, batch.x, batch.sigma, batch.close, sampler, generator).samples
        samples = draws.cpu().numpy()  # [b, S] returns
        observed = batch.target.double().cpu().numpy()  # [b]
        crps.append(sr.crps_ensemble(observed, samples, estimator="pwm") * 1e4)
        low, high = np.quantile(samples, [0.05, 0.95], axis=1)
        covered.append((observed >= low) & (observed <= high))
    return ValidationScore(
        crps_bp=float(np.concatenate(crps).mean()),
        coverage_90=float(np.concatenate(covered).mean()),
        windows=len(anchors),
    )
