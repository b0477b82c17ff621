"""The diffusion model trained, calibrated and summarised in one call: what `diffusion_model` runs.

`fit_model` fits the normaliser on the training days, trains (resuming from `checkpoints` when
they hold a run of the same settings), fits the spread factor on the training days by the rule
every model of the `forecasts` stage gets (`fit_spread_factor`), and summarises the run. The
result saves itself as the bundle that MLflow serves and `forecasts` loads.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from diffstock_ml.batches import Normaliser
from diffstock_ml.forecasting import fit_spread_factor
from diffstock_ml.model.bundle import make_bundle, save_bundle
from diffstock_ml.model.config import ModelConfig
from diffstock_ml.splits import Splits, fit_normaliser
from diffstock_ml.train import TrainCallback, TrainResult, train
from diffstock_ml.train.config import TrainConfig
from diffstock_ml.windows import DayArrays


@dataclass(frozen=True)
class FittedModel:
    """A trained model with its spread factor, ready to be saved as a bundle."""

    model_config: ModelConfig
    normaliser: Normaliser
    feature_names: tuple[str, ...]
    window_length: int
    result: TrainResult = field(repr=False)
    spread_factor: float
    summary: dict = field(repr=False)  # what `summary.json` holds (the splits, metrics, configs)

    def save(self, path: Path) -> Path:
        """Write the bundle file (best validated EMA weights, normaliser, spread factor)."""
        return save_bundle(
            path,
            self.model_config,
            self.result.best_state,
            self.normaliser,
            self.feature_names,
            self.window_length,
            spread_factor=self.spread_factor,
        )


def fit_model(
    model_config: ModelConfig,
    train_config: TrainConfig,
    splits: Splits,
    arrays: Mapping[str, DayArrays],
    checkpoints: Path,
    device: torch.device,
    callback: TrainCallback | None = None,
) -> FittedModel:
    """Train on `splits.train` (validating on `splits.val`), then fit the spread factor."""
    normaliser = fit_normaliser(arrays, splits, seed=train_config.seed)
    train_days = [arrays[d] for d in splits.train]
    result = train(
        model_config,
        train_config,
        train_days,
        [arrays[d] for d in splits.val],
        normaliser,
        checkpoints,
        device,
        callback,
    )
    first = arrays[splits.all_days[0]]
    features, length = tuple(first.feature_names), first.config.length
    trained = make_bundle(
        model_config, result.best_state, normaliser, features, length, device=device
    )
    factor = fit_spread_factor(trained, train_days, train_config.seed)
    summary = training_summary(result, splits, arrays, train_config)
    summary["spread_factor"] = factor
    return FittedModel(model_config, normaliser, features, length, result, factor, summary)


def training_summary(
    result: TrainResult,
    splits: Splits,
    arrays: Mapping[str, DayArrays],
    train_config: TrainConfig,
) -> dict:
    """The run as JSON: splits, windows per split, size, validation history, speed, config."""

    def windows_in(days: tuple[str, ...]) -> int:
        return int(sum(len(arrays[d].anchors) for d in days))

    return {
        "splits": dataclasses.asdict(splits),
        "windows": {
            "train": windows_in(splits.train),
            "val": windows_in(splits.val),
            "test": windows_in(splits.test),
        },
        "parameters": int(sum(v.numel() for v in result.best_state.values())),
        "best_val_crps_bp": result.best_val_crps_bp,
        "first_val_crps_bp": result.first_val_crps_bp,
        "best_step": result.best_step,
        "steps": result.steps,
        "history": [dataclasses.asdict(h) for h in result.history],
        "device": result.device,
        "wall_s": result.wall_s,
        "train_windows_per_s": result.windows_per_s,
        # what the forecasts stage gives the likelihood heads (the same budget)
        "train_config": dataclasses.asdict(train_config),
    }
