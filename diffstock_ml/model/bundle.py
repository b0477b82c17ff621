"""A trained forecaster as one file: weights, configs and the training-day normaliser.

This is what the training asset logs to MLflow and what the pyfunc wrapper, the forecasts asset
and users load: `load_bundle(path).predict(x, sigma, close)` takes RAW feature windows
(`[B, N, F]`, as stored by the `windows` asset) and normalises them itself.

A bundle may carry the model's spread factor, fitted on its training days where it was trained
(`forecasting.fit_spread_factor`, the rule every model of the `forecasts` stage gets), so that
served and reported forecasts are the same; `predict(..., calibrated=True)` applies it. Bundles
written before it existed load as raw (`spread_factor` None).

A path model (`ModelConfig.path_horizons`, stored with the other model settings; bundles written
before it existed are scalar) also draws whole paths: `sample_paths(x, sigma, close)` gives
`[B, S, H]` log-return paths on the price grid at every horizon; its `predict` is the 30 s end
point as a simple return.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from diffstock_ml.batches import Normaliser
from diffstock_ml.model.config import ModelConfig, SamplerConfig
from diffstock_ml.model.diffusion import DiffusionForecaster
from diffstock_ml.model.forecast import (
    Forecast,
    PathForecast,
    apply_path_spread_factor,
    apply_spread_factor,
    forecast,
    forecast_paths,
)


@dataclass
class ModelBundle:
    """A ready-to-sample model with everything needed to use it on raw windows."""

    model: DiffusionForecaster
    normaliser: Normaliser
    feature_names: tuple[str, ...]
    window_length: int
    sampler: SamplerConfig
    # fitted on the training days by 90 % coverage (`fit_spread_factor`); None: raw, not fitted
    spread_factor: float | None = None

    @property
    def calibrated(self) -> bool:
        """Whether the bundle carries a fitted spread factor."""
        return self.spread_factor is not None

    @torch.no_grad()
    def predict(
        self,
        x: np.ndarray | torch.Tensor,
        sigma: np.ndarray | torch.Tensor,
        close: np.ndarray | torch.Tensor,
        n_samples: int | None = None,
        seed: int = 0,
        chunk: int = 256,
        calibrated: bool = False,
    ) -> Forecast:
        """Forecast the 30 s return of each raw window `x [B, N, F]` (chunked over B).

        Raw draws by default; with `calibrated`, spread by the bundle's factor (none if raw).
        """
        x, sigma, close = self._inputs(x, sigma, close)
        sampler = self._sampler(n_samples)
        samples, continuous = self._chunked(forecast, x, sigma, close, sampler, seed, chunk)
        result = Forecast(samples, continuous)
        if calibrated and self.spread_factor is not None:
            return apply_spread_factor(result, self.spread_factor, close.cpu(), sampler)
        return result

    @torch.no_grad()
    def sample_paths(
        self,
        x: np.ndarray | torch.Tensor,
        sigma: np.ndarray | torch.Tensor,
        close: np.ndarray | torch.Tensor,
        n_samples: int | None = None,
        seed: int = 0,
        chunk: int = 256,
        calibrated: bool = False,
    ) -> PathForecast:
        """Path draws `[B, S, H]` (cumulative log returns at `model.config.path_horizons`, the
        price on the grid at every horizon) for raw windows `x [B, N, F]`; path models only.
        Raw draws, unless `calibrated`: then the bundle's spread factor (if it carries one)
        scales every horizon's deviations from its median, as `predict` does the end point's.
        """
        if not self.model.config.path_horizons:
            raise ValueError("this bundle's model forecasts the 30 s return only: no paths")
        x, sigma, close = self._inputs(x, sigma, close)
        sampler = self._sampler(n_samples)
        samples, continuous = self._chunked(forecast_paths, x, sigma, close, sampler, seed, chunk)
        result = PathForecast(samples, continuous, self.model.config.path_horizons)
        if calibrated and self.spread_factor is not None:
            return apply_path_spread_factor(result, self.spread_factor, close.cpu(), sampler)
        return result

    def _chunked(
        self,
        draw: Callable[..., Forecast | PathForecast],
        x: torch.Tensor,
        sigma: torch.Tensor,
        close: torch.Tensor,
        sampler: SamplerConfig,
        seed: int,
        chunk: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`draw` (`forecast` or `forecast_paths`) over `chunk` windows at a time, one generator
        for all chunks; (snapped samples, continuous draws) concatenated on the CPU."""
        device = next(self.model.parameters()).device
        generator = torch.Generator(device=device).manual_seed(seed)
        samples, continuous = [], []
        for start in range(0, len(x), chunk):
            part = slice(start, start + chunk)
            windows = self.normaliser.apply(x[part].to(device, torch.float32))
            result = draw(
                self.model,
                windows,
                sigma[part].to(device),
                close[part].to(device),
                sampler,
                generator,
            )
            samples.append(result.samples.cpu())
            continuous.append(result.continuous.cpu())
        return torch.cat(samples), torch.cat(continuous)

    def _inputs(self, *arrays: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, ...]:
        """`(x, sigma, close)` as tensors, the windows checked against the bundle's shape."""
        x, sigma, close = (torch.as_tensor(np.asarray(a)) for a in arrays)
        if x.ndim != 3 or x.shape[1:] != (self.window_length, len(self.feature_names)):
            raise ValueError(
                f"expected windows of shape [B, {self.window_length}, {len(self.feature_names)}], "
                f"got {list(x.shape)}"
            )
        return x, sigma, close

    def _sampler(self, n_samples: int | None) -> SamplerConfig:
        """The bundle's sampler, with `n_samples` draws per window if given."""
        if n_samples is None:
            return self.sampler
        return dataclasses.replace(self.sampler, n_samples=n_samples)


def save_bundle(
    path: Path,
    model_config: ModelConfig,
    state_dict: dict,
    normaliser: Normaliser,
    feature_names: tuple[str, ...],
    window_length: int,
    sampler: SamplerConfig | None = None,
    spread_factor: float | None = None,
) -> Path:
    """Write the bundle file (a plain dict of tensors and JSON-able values).

    `spread_factor`: the factor fitted on the training days (`fit_spread_factor`), None if raw.
    """
    if spread_factor is not None and not (np.isfinite(spread_factor) and spread_factor > 0):
        raise ValueError(f"spread_factor must be finite and positive, got {spread_factor}")
    torch.save(
        {
            "model_config": dataclasses.asdict(model_config),
            "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
            "normaliser": normaliser.to_dict(),
            "feature_names": list(feature_names),
            "window_length": window_length,
            "sampler": dataclasses.asdict(sampler or SamplerConfig()),
            "spread_factor": None if spread_factor is None else float(spread_factor),
        },
        path,
    )
    return path


def load_bundle(path: Path, device: torch.device | str = "cpu") -> ModelBundle:
    """Load a bundle written by `save_bundle` onto `device`, in eval mode."""
    data = torch.load(path, map_location="cpu", weights_only=False)
    model_config = dict(data["model_config"])
    # bundles written before the residual parameterisation existed diffuse z directly; those
    # written before the path target existed are scalar (path_horizons () by default)
    model_config.setdefault("parameterisation", "direct")
    return make_bundle(
        ModelConfig(**model_config),
        data["state_dict"],
        Normaliser.from_dict(data["normaliser"]),
        tuple(data["feature_names"]),
        int(data["window_length"]),
        SamplerConfig(**data["sampler"]),
        device,
        # bundles written before the factor was stored are raw
        data.get("spread_factor"),
    )


def make_bundle(
    model_config: ModelConfig,
    state_dict: dict,
    normaliser: Normaliser,
    feature_names: tuple[str, ...],
    window_length: int,
    sampler: SamplerConfig | None = None,
    device: torch.device | str = "cpu",
    spread_factor: float | None = None,
) -> ModelBundle:
    """A `ModelBundle` from trained weights (plain or EMA-wrapped names), in eval mode."""
    model = DiffusionForecaster(model_config, n_features=len(feature_names))
    model.load_state_dict(_strip_averaged_prefix(state_dict))
    return ModelBundle(
        model=model.to(device).eval(),
        normaliser=normaliser,
        feature_names=tuple(feature_names),
        window_length=window_length,
        sampler=sampler or SamplerConfig(),
        spread_factor=spread_factor,
    )


def _strip_averaged_prefix(state: dict) -> dict:
    """EMA weights come from `AveragedModel.module`; accept both plain and wrapped key names."""
    if any(k.startswith("module.") for k in state):
        return {k.removeprefix("module."): v for k, v in state.items() if k != "n_averaged"}
    return state
