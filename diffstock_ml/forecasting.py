"""Forecasts of every model on exactly the same test anchors, as one long table.

`forecast_day` draws the diffusion model (`CalibratedDiffusion`: with the same coverage-fitted
spread factor as the baselines), every distributional baseline (and the oracle when the
synthetic latent state exists) at the same anchors of a test day; the table keeps each anchor's
context (target, scale, price, time) so the evaluation never re-reads the windows.
"""

from __future__ import annotations

import dataclasses
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
import torch

from diffstock_ml.baselines import Baseline, DirectionClassifier
from diffstock_ml.baselines.base import Draws, ScaleFit
from diffstock_ml.batches import WindowLoader
from diffstock_ml.evaluation import Anchors, ModelForecasts
from diffstock_ml.evaluation.forecasts import quantiles, sorted_samples
from diffstock_ml.evaluation.quantiles import QUANTILE_LEVELS, quantile_name
from diffstock_ml.model.bundle import ModelBundle
from diffstock_ml.windows import DayArrays

DIFFUSION = "diffusion"
CONTEXT_COLUMNS = (
    "day",
    "symbol",
    "second",
    "ts",
    "target",
    "sigma",
    "close",
    "seconds_since_open",
    "last_1s_return",
)


@dataclass(frozen=True)
class ForecastConfig:
    """Which anchors are forecast and how many samples each model draws."""

    # Forecast every `anchor_stride_s`-th second (a grid common to all symbols): 30 s or more
    # keeps targets non-overlapping; the full profile on a GPU uses 1 (every anchor).
    anchor_stride_s: int = 120
    n_samples: int = 100
    seed: int = 0
    # How many baselines are fitted at a time, each in a forked process (`side_by_side`):
    # None = one per torch thread on a Linux CPU; 1 = one after another in this process.
    fit_workers: int | None = None

    def __post_init__(self) -> None:
        if self.anchor_stride_s < 1 or self.n_samples < 2:
            raise ValueError("anchor_stride_s must be >= 1 and n_samples >= 2")
        if self.fit_workers is not None and self.fit_workers < 1:
            raise ValueError(f"fit_workers must be >= 1 or None, got {self.fit_workers}")


def select_anchors(day: DayArrays, stride_s: int) -> np.ndarray:
    """The day's valid anchors on the `stride_s` grid of seconds (same seconds for all symbols)."""
    anchors = np.asarray(day.anchors)
    return anchors[anchors[:, 1] % stride_s == 0]


def anchor_context(day: DayArrays, anchors: np.ndarray) -> pl.DataFrame:
    """What is known about each anchor: target, scale, price, time, the last 1 s move."""
    s, t = anchors[:, 0], anchors[:, 1]
    close = np.asarray(day.close)
    previous = close[s, np.maximum(t - 1, 0)]
    seconds = day.feature_names.index("secs_since_open")
    return pl.DataFrame(
        {
            "day": day.day,
            "symbol": np.asarray(day.symbols)[s],
            "second": t.astype(np.int32),
            "ts": (day.start_ts_us + t.astype(np.int64) * 1_000_000).astype("datetime64[us]"),
            "target": np.asarray(day.target)[s, t],
            "sigma": np.asarray(day.sigma)[s, t],
            "close": close[s, t],
            "seconds_since_open": np.asarray(day.x)[s, t, seconds].astype(np.float64),
            "last_1s_return": np.where(t > 0, close[s, t] / previous - 1, 0.0),
        }
    ).with_columns(pl.col("ts").dt.replace_time_zone("UTC"))


class CalibratedDiffusion(Baseline):
    """The diffusion model under the same treatment as every baseline.

    Its continuous draws are split into a centre (their median) and deviations, and the
    deviations are multiplied by one spread factor fitted on the model's training days by 90 %
    coverage (`Baseline.fit`), then snapped to the grid. A model that over- or under-disperses
    in-sample is corrected by the same rule as the volatility baselines; the factor is reported
    with theirs. Sampling is costly, so the factor is fitted on fewer anchors (`DIFFUSION_FIT`).

    A bundle that carries its factor (`fit_spread_factor`, run where the model was trained, on
    the same training days and by this same rule) is not fitted again: `fit` takes that factor,
    so the served model and the reported forecasts use one number.
    """

    name = DIFFUSION

    def __init__(self, bundle: ModelBundle, scale_fit: ScaleFit | None = None) -> None:
        super().__init__(scale_fit or DIFFUSION_FIT, bundle.sampler.tick)
        self.bundle = bundle

    def fit(self, train_days: Sequence[DayArrays], rng: np.random.Generator) -> None:
        """The bundle's own factor when it carries one, else fitted on `train_days` here."""
        if self.bundle.spread_factor is not None:
            self.scale = self.bundle.spread_factor
            return
        super().fit(train_days, rng)

    def draw(
        self, day: DayArrays, anchors: np.ndarray, n_samples: int, rng: np.random.Generator
    ) -> Draws:
        loader = WindowLoader([day], batch_size=WINDOW_CHUNK, shuffle=False)
        index = torch.from_numpy(
            np.column_stack([np.zeros(len(anchors)), anchors]).astype(np.int64)
        )
        parts = []
        # windows are gathered a chunk at a time: every anchor of a full day would not fit
        for start in range(0, len(anchors), WINDOW_CHUNK):
            batch = loader.gather(index[start : start + WINDOW_CHUNK])
            seed = int(rng.integers(2**31 - 1))
            result = self.bundle.predict(
                batch.x, batch.sigma.double(), batch.close.double(), n_samples, seed
            )
            parts.append(result.continuous.cpu().numpy())  # [b, S] returns before snapping
        continuous = np.concatenate(parts) if parts else np.empty((0, n_samples))
        center = np.median(continuous, axis=1)
        return Draws(center, continuous - center[:, None])


WINDOW_CHUNK = 4_096  # windows gathered and sampled at a time (~50 MB of windows)
# 2,000 training anchors x 100 samples: 15-60 s of DDIM-50 for the demo model on 2 CPU cores.
DIFFUSION_FIT = ScaleFit(max_anchors=2_000, n_samples=100)


def fit_spread_factor(
    bundle: ModelBundle,
    train_days: Sequence[DayArrays],
    seed: int = 0,
    scale_fit: ScaleFit | None = None,
) -> float:
    """The model's spread factor, fitted on its training days as `forecasts` fits every model's.

    Run where the model is trained; the factor travels in the bundle (`save_bundle`) to the
    served pyfunc and to `forecasts`. A bundle that already carries a factor is refitted.
    """
    raw = dataclasses.replace(bundle, spread_factor=None)
    model = CalibratedDiffusion(raw, scale_fit)
    model.fit(train_days, np.random.default_rng(seed))
    return float(model.scale)


def model_rng(name: str, *keys: int) -> np.random.Generator:
    """`name`'s own random stream under `keys` (the seed, a day): what one model draws never
    moves another's. With one shared generator, a Student-t head's rejection sampling (a
    variable number of draws) shifted the EWMA's spread fit and forecasts whenever the head's
    weights changed."""
    return np.random.default_rng([*keys, zlib.crc32(name.encode())])


def forecast_day(
    day: DayArrays,
    anchors: np.ndarray,
    models: Mapping[str, Baseline],
    config: ForecastConfig,
) -> pl.DataFrame:
    """One row per (model, anchor): the context columns, `model`, `samples` (a list), the
    quantiles `q01 … q99` at `QUANTILE_LEVELS` and `latency_ms`.

    `models` are fitted: the baselines and the `CalibratedDiffusion` model alike. The quantiles
    are the samples' interpolated quantiles (`evaluation.forecasts.quantiles`, numpy's
    "linear"), as the report reads them. `latency_ms` is measured: the wall time of the model's
    `sample` call on all of the day's anchors, divided by their number (one value per model and
    day, on every row of it).
    """
    context = anchor_context(day, anchors)
    frames = []
    for name, model in models.items():
        rng = model_rng(name, config.seed, int(day.day))
        start = time.perf_counter()
        samples = model.sample(day, anchors, config.n_samples, rng)  # [B, S]
        latency_ms = (time.perf_counter() - start) * 1e3 / max(len(anchors), 1)
        frames.append(
            context.with_columns(
                pl.lit(name).alias("model"),
                pl.Series("samples", samples, dtype=pl.Array(pl.Float64, samples.shape[1])),
                *quantile_series(samples),
                pl.lit(latency_ms, dtype=pl.Float64).alias("latency_ms"),
            )
        )
    return pl.concat(frames)


def quantile_series(samples: np.ndarray) -> list[pl.Series]:
    """`q01 … q99`: the quantiles of `samples [B, S]` at `QUANTILE_LEVELS`, one series each."""
    values = quantiles(sorted_samples(samples), QUANTILE_LEVELS)  # [B, 9]
    return [
        pl.Series(quantile_name(level), values[:, i]) for i, level in enumerate(QUANTILE_LEVELS)
    ]


def direction_probabilities(
    day: DayArrays, anchors: np.ndarray, classifiers: Mapping[str, DirectionClassifier]
) -> pl.DataFrame:
    """P(up) of each direction classifier at the anchors (for directional accuracy only)."""
    context = anchor_context(day, anchors).select("day", "symbol", "second", "target")
    return context.with_columns(
        pl.Series(f"prob_up_{name}", clf.prob_up(day, anchors)) for name, clf in classifiers.items()
    )


def to_model_forecasts(table: pl.DataFrame) -> dict[str, ModelForecasts]:
    """The long table back to one `ModelForecasts` per model, on the same ordered anchors.

    A model's `latency_ms` is the mean over its rows: its total sampling time over all anchors
    (None for tables written before latency was measured).
    """
    table = table.sort("model", "day", "second", "symbol")
    models = table["model"].unique(maintain_order=True).to_list()
    first = table.filter(pl.col("model") == models[0])
    anchors = Anchors(
        target=first["target"].to_numpy(),
        symbol=first["symbol"].to_numpy(),
        ts=first["ts"].dt.replace_time_zone(None).to_numpy(),
        seconds_since_open=first["seconds_since_open"].to_numpy(),
        sigma=first["sigma"].to_numpy(),
        close=first["close"].to_numpy(),
        last_1s_return=first["last_1s_return"].to_numpy(),
    )
    out = {}
    for name in models:
        rows = table.filter(pl.col("model") == name)
        latency = rows["latency_ms"].mean() if "latency_ms" in rows.columns else None
        out[name] = ModelForecasts(
            samples=rows["samples"].to_numpy(),
            anchors=anchors,
            latency_ms=None if latency is None else float(latency),
        )
    return out
