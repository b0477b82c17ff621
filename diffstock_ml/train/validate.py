"""Validation of a diffusion model on a fixed subset of windows: CRPS and 90 % coverage.

Both are the report's own functions (`evaluation.crps_bp`, the randomised-PIT coverage), so
early stopping and the report can never disagree about what a better model is. Every
validation draws with the same seed, so two checkpoints' per-window CRPS are paired on the
windows *and* on the noise, and `within_noise` can tell a real difference from sampling error.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
    per_window: np.ndarray = field(repr=False, compare=False)  # `[windows]` CRPS, bp


def within_noise(scores: np.ndarray, reference: np.ndarray | list[float], z: float) -> bool:
    """True unless `scores` are worse than `reference` by more than `z` paired standard errors.

    Both are per-window CRPS on the same windows drawn with the same seed; the difference's
    standard error is that of the mean of `scores - reference` (0 for a single window).
    `z = 0` accepts no mean above the reference's.
    """
    scores, reference = np.asarray(scores, np.float64), np.asarray(reference, np.float64)
    if scores.ndim != 1 or scores.shape != reference.shape or len(scores) == 0:
        raise ValueError(f"scores {scores.shape} and reference {reference.shape} are not paired")
    difference = scores - reference
    n = len(difference)
    standard_error = difference.std(ddof=1) / np.sqrt(n) if n > 1 else 0.0
    return bool(difference.mean() <= z * standard_error)


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
    per_window = np.concatenate(crps)
    return ValidationScore(
        crps_bp=float(per_window.mean()),
        coverage_90=float(np.concatenate(covered).mean()),
        median_below=float(np.concatenate(below).mean()),
        windows=len(anchors),
        per_window=per_window,
    )
