"""The diffusion model's path forecasts as a `PathBaseline`, scored beside the path baselines.

`PathDiffusion` wraps a `ModelBundle` whose model was trained with the path target
(`ModelConfig.path_horizons == HORIZONS`, e.g. the `demo_paths` profile). Its continuous draws
are split as every path baseline's: a centre (the per-horizon median of the draws) and the
deviations around it, which one spread factor multiplies; `sample_paths` then snaps the price
to the grid at every second. With a factor of 1 (unfitted) the result equals the bundle's own
snapped `sample_paths`. `fit` takes the bundle's factor when it carries one (fitted where the
model was trained on its 30 s end point, as `CalibratedDiffusion` does), else it fits one on the
training days by the path baselines' rule (end point, 90 % central coverage).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from diffstock_ml.baselines import ScaleFit
from diffstock_ml.batches import WindowLoader
from diffstock_ml.model.bundle import ModelBundle
from diffstock_ml.paths.baselines import PathBaseline, PathDraws
from diffstock_ml.paths.targets import HORIZONS
from diffstock_ml.windows import DayArrays

WINDOW_CHUNK = 1_024  # windows gathered and sampled at a time: [chunk, S, H] float64 draws
# sampling is costly: the factor is fitted on fewer anchors than the baselines' default
DIFFUSION_PATH_FIT = ScaleFit(max_anchors=2_000, n_samples=100)


class PathDiffusion(PathBaseline):
    """A path-target diffusion bundle drawing `[A, S, H]` paths at a day's anchors."""

    name = "diffusion_paths"

    def __init__(self, bundle: ModelBundle, scale_fit: ScaleFit | None = None) -> None:
        horizons = bundle.model.config.path_horizons
        if horizons != HORIZONS:
            raise ValueError(
                f"PathDiffusion needs a model trained on the path horizons {HORIZONS[0]}.."
                f"{HORIZONS[-1]} s (ModelConfig.path_horizons), got {horizons or 'a scalar model'}"
            )
        super().__init__(scale_fit or DIFFUSION_PATH_FIT, bundle.sampler.tick)
        self.bundle = bundle

    def fit(self, train_days: Sequence[DayArrays], rng: np.random.Generator) -> None:
        """The bundle's own factor when it carries one, else fitted on `train_days` here."""
        if self.bundle.spread_factor is not None:
            self.scale = self.bundle.spread_factor
            return
        super().fit(train_days, rng)

    def draw_paths(
        self, day: DayArrays, anchors: np.ndarray, n_samples: int, rng: np.random.Generator
    ) -> PathDraws:
        """Continuous model paths at `anchors [A, 2]` of `day`: per-horizon median and the
        deviations around it (one torch seed per chunk, drawn from `rng`)."""
        anchors = np.asarray(anchors)
        loader = WindowLoader([day], batch_size=WINDOW_CHUNK, shuffle=False)
        index = torch.from_numpy(
            np.column_stack([np.zeros(len(anchors)), anchors]).astype(np.int64)
        )  # [A, 3] (day 0, symbol, second)
        parts = []
        for start in range(0, len(anchors), WINDOW_CHUNK):
            batch = loader.gather(index[start : start + WINDOW_CHUNK])
            seed = int(rng.integers(2**31 - 1))
            result = self.bundle.sample_paths(
                batch.x, batch.sigma.double(), batch.close.double(), n_samples, seed
            )
            parts.append(result.continuous.numpy())  # [b, S, H] log returns before snapping
        empty = np.empty((0, n_samples, len(HORIZONS)))
        continuous = np.concatenate(parts) if parts else empty
        center = np.median(continuous, axis=1)  # [A, H]
        return PathDraws(center, continuous - center[:, None, :])
