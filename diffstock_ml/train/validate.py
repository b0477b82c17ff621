"""Validation of a diffusion model on a fixed subset of windows: CRPS and 90 % coverage.

Both are the report's own functions (`evaluation.crps_bp`, the randomised-PIT coverage), so
early stopping and the report can never disagree about what a better model is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from diffstock_ml.batches import WindowLoader
from diffstock_ml.evaluation.calibration import central_coverage, pit_below, snapped_pit_interval
from diffstock_ml.evaluation.scores import crps_bp
from diffstock_ml.model.config import SamplerConfig
from diffstock_ml.model.diffusion import DiffusionForecaster
from diffstock_ml.model.forecast import forecast


@dataclass(frozen=True)
class ValidationScore:
    crps_bp: float  # mean fair CRPS of the snapped return forecast, basis points
    coverage_90: float  # randomised-PIT coverage of the central 90 % interval
    median_below: float  # share of realised returns below the forecast median (0.5: unbiased)
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
    crps, covered, below = [], [], []
    for start in range(0, len(anchors), chunk):
        batch = loader.gather(anchors[start : start + chunk])
        result = forecast(model, batch.x, batch.sigma, batch.close, sampler, generator)
        samples = result.samples.cpu().numpy()  # [b, S] snapped returns
        observed = batch.target.double().cpu().numpy()  # [b]
        close = batch.close.double().cpu().numpy()
        crps.append(crps_bp(samples, observed))
        pit = snapped_pit_interval(samples, observed, close, sampler.tick)
        covered.append(central_coverage(*pit, 0.9))
        below.append(pit_below(*pit, 0.5))
    return ValidationScore(
        crps_bp=float(np.concatenate(crps).mean()),
        coverage_90=float(np.concatenate(covered).mean()),
        median_below=float(np.concatenate(below).mean()),
        windows=len(anchors),
    )
