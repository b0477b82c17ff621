"""Experiments: train one diffusion configuration and score it next to the likelihood heads.

A trial trains on the training days, gives the model the same coverage-fitted spread factor the
`forecasts` stage gives it (`CalibratedDiffusion`), and scores its snapped forecasts on the
*validation* days — never the test days — with the report's own CRPS and randomised-PIT
coverage. The heads are scored on the same anchors with the same training budget, so a trial
says directly whether a configuration beats them. The study runner (Optuna + MLflow) lives in
`dagster_project.study`; this module knows neither.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from diffstock_ml.baselines import Baseline
from diffstock_ml.baselines.base import at_anchors
from diffstock_ml.batches import Normaliser
from diffstock_ml.evaluation.calibration import central_coverage, pit_below, snapped_pit_interval
from diffstock_ml.evaluation.scores import crps_bp
from diffstock_ml.forecasting import CalibratedDiffusion, model_rng, select_anchors
from diffstock_ml.model.bundle import ModelBundle, make_bundle
from diffstock_ml.model.config import ModelConfig, SamplerConfig
from diffstock_ml.train.checkpoint import settings_fingerprint
from diffstock_ml.train.config import TrainConfig
from diffstock_ml.train.loop import TrainCallback, TrainResult, train
from diffstock_ml.windows import DayArrays

COVERAGE_LEVELS = (0.5, 0.8, 0.9, 0.95)


@dataclass(frozen=True)
class ScoreConfig:
    """Which validation anchors a trial is scored on, and how many samples each model draws."""

    anchor_stride_s: int = 30  # non-overlapping 30 s targets on one grid for all symbols
    n_samples: int = 100
    seed: int = 0


@dataclass(frozen=True)
class Scores:
    """A model's forecasts on the scored anchors, in the report's definitions."""

    crps_bp: float
    coverage: dict[str, float]  # "50", "80", "90", "95" -> randomised-PIT coverage
    median_below: float  # share of outcomes below the forecast median (0.5: unbiased)
    anchors: int
    # CRPS (bp) of each anchor, in the scoring order: for paired comparisons on the same anchors
    per_anchor: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False, compare=False)

    def flat(self, prefix: str = "") -> dict[str, float]:
        """Flat metric names for MLflow and tables: crps_bp, coverage_90, median_below…"""
        out = {f"{prefix}crps_bp": self.crps_bp, f"{prefix}median_below": self.median_below}
        out |= {f"{prefix}coverage_{k}": v for k, v in self.coverage.items()}
        return out


def score_samples(
    samples: np.ndarray, target: np.ndarray, close: np.ndarray, tick: float = 0.01
) -> Scores:
    """`Scores` of snapped return ensembles `samples [B, S]` at realised `target [B]`."""
    lower, upper = snapped_pit_interval(samples, target, close, tick)
    per_anchor = crps_bp(samples, target)
    return Scores(
        crps_bp=float(per_anchor.mean()),
        coverage={
            f"{round(100 * q)}": float(central_coverage(lower, upper, q).mean())
            for q in COVERAGE_LEVELS
        },
        median_below=float(pit_below(lower, upper, 0.5).mean()),
        anchors=len(target),
        per_anchor=per_anchor,
    )


def paired_difference(model: Scores, reference: Scores) -> dict[str, float]:
    """`model`'s CRPS relative to `reference` on the same anchors: % change and its standard error.

    The standard error treats anchors as independent; anchors of different symbols at the same
    second are correlated, so it is a lower bound (the report's Diebold-Mariano test and the
    leaderboard's block bootstrap account for that).
    """
    if len(model.per_anchor) != len(reference.per_anchor) or not len(model.per_anchor):
        raise ValueError("paired_difference needs per-anchor CRPS of the same anchors")
    diff = model.per_anchor - reference.per_anchor
    scale = 100.0 / reference.crps_bp
    return {
        "crps_pct": float(diff.mean() * scale),
        "crps_se_pct": float(diff.std(ddof=1) / np.sqrt(len(diff)) * scale),
    }


def score_models(
    models: Mapping[str, Baseline], days: Sequence[DayArrays], config: ScoreConfig
) -> dict[str, Scores]:
    """Each fitted model's `Scores` on the same anchors (the `anchor_stride_s` grid) of `days`;
    each model draws from its own stream (`model_rng`), so its scores do not depend on which
    models were scored before it."""
    anchors = [select_anchors(day, config.anchor_stride_s) for day in days]
    target = np.concatenate([at_anchors(d.target, a) for d, a in zip(days, anchors, strict=True)])
    close = np.concatenate([at_anchors(d.close, a) for d, a in zip(days, anchors, strict=True)])
    out = {}
    for name, model in models.items():
        rng = model_rng(name, config.seed)
        samples = np.concatenate(
            [
                model.sample(day, a, config.n_samples, rng)
                for day, a in zip(days, anchors, strict=True)
            ]
        )
        out[name] = score_samples(samples, target, close, model.tick)
    return out


@dataclass(frozen=True)
class TrialResult:
    """A trained configuration: its training run, spread factor and validation-day scores."""

    training: TrainResult
    spread_factor: float
    scores: Scores
    bundle: ModelBundle

    def metrics(self) -> dict[str, float]:
        history = self.training.history
        return {
            **self.scores.flat(),
            "spread_factor": self.spread_factor,
            "train_wall_s": self.training.wall_s,
            "train_windows_per_s": self.training.windows_per_s,
            "best_step": float(self.training.best_step),
            "steps": float(self.training.steps),
            "early_stop_val_crps_bp": self.training.best_val_crps_bp,
            "early_stop_val_median_below": history[-1].val_median_below if history else np.nan,
        }


def run_trial(
    model_config: ModelConfig,
    train_config: TrainConfig,
    train_days: Sequence[DayArrays],
    val_days: Sequence[DayArrays],
    checkpoint_root: Path,
    device: torch.device,
    score: ScoreConfig | None = None,
    sampler: SamplerConfig | None = None,
    callback: TrainCallback | None = None,
) -> TrialResult:
    """Train `model_config` on `train_days` and score it, calibrated, on `val_days`.

    Checkpoints go to `checkpoint_root/<settings fingerprint>`: an interrupted trial resumes, a
    trial with other settings (another seed, option, profile or step count) starts afresh.
    """
    score = score or ScoreConfig()
    checkpoint_dir = checkpoint_root / settings_fingerprint(model_config, train_config)
    normaliser = Normaliser.fit(train_days, seed=train_config.seed)
    training = train(
        model_config,
        train_config,
        train_days,
        val_days,
        normaliser,
        checkpoint_dir,
        device,
        callback,
    )
    first = train_days[0]
    bundle = make_bundle(
        model_config,
        training.best_state,
        normaliser,
        first.feature_names,
        first.config.length,
        sampler,
        device,
    )
    calibrated = CalibratedDiffusion(bundle)
    calibrated.fit(train_days, np.random.default_rng(score.seed))
    scores = score_models({"diffusion": calibrated}, val_days, score)["diffusion"]
    return TrialResult(training, float(calibrated.scale), scores, bundle)


def score_samplers(
    bundle: ModelBundle,
    samplers: Mapping[str, SamplerConfig],
    train_days: Sequence[DayArrays],
    days: Sequence[DayArrays],
    score: ScoreConfig,
) -> dict[str, tuple[float, Scores]]:
    """One trained model under each sampler: (spread factor, `Scores`) per sampler name.

    Each sampler gets its own spread factor, fitted on `train_days` by the rule `forecasts`
    uses, so a sampler that under-disperses is judged after the same correction; all are scored
    on the same anchors of `days`.
    """
    models = {}
    for name, sampler in samplers.items():
        model = CalibratedDiffusion(
            dataclasses.replace(bundle, sampler=sampler, spread_factor=None)
        )
        model.fit(train_days, np.random.default_rng(score.seed))
        models[name] = model
    scores = score_models(models, days, score)
    return {name: (float(models[name].scale), scores[name]) for name in samplers}
