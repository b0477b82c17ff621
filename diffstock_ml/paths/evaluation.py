"""Path forecasts of every model scored on the test days in one call: `evaluate_paths`.

What the `path_report` asset runs (issue 13, items 3 and 4). The path baselines
(`PATH_BASELINES`), the diffusion model when its bundle is a path model (`PathDiffusion`) and, on
the synthetic market whose latent state exists, the oracle (`OraclePaths`) are fitted on the
training days; then all of them draw sample paths at the SAME anchors of the test days, which
`path_metrics_table` and `touch_reliability` score. Two figures come with the scores: the CRPS at
each horizon of every model, and a fan of one model's sample paths with the realised path for
one symbol over one hour.

Anchors lie on one grid of `anchor_stride_s` seconds, a multiple of 30 s, the same seconds for
every symbol: the 30 s paths of one symbol never overlap, so the maximum adverse excursion's VaR
hits are counted on separate periods, as Kupiec's test assumes (paths of different symbols at the
same second still move together; the test ignores that, as the scalar report's does). At most
`max_anchors` of the grid are kept, drawn at random over all test days (still on the grid).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
from matplotlib.figure import Figure

from diffstock_ml.baselines import ScaleFit
from diffstock_ml.baselines.base import at_anchors
from diffstock_ml.calendar import NEW_YORK
from diffstock_ml.evaluation.report import flat_metrics
from diffstock_ml.forecasting import anchor_context, select_anchors
from diffstock_ml.market import HORIZON_S
from diffstock_ml.model.bundle import ModelBundle
from diffstock_ml.paths.baselines import PATH_BASELINES, OraclePaths, PathBaseline
from diffstock_ml.paths.diffusion import PathDiffusion
from diffstock_ml.paths.metrics import PathMetricsConfig, path_metrics_table, touch_reliability
from diffstock_ml.paths.plots import anchors_in_hour, crps_by_horizon, path_fan
from diffstock_ml.paths.targets import realised_paths
from diffstock_ml.splits import Splits
from diffstock_ml.synthetic import has_latent_state
from diffstock_ml.windows import DayArrays

METRIC_PREFIX = "path"  # flat metric names: path/<model>/<column>
# the columns of the short summary (Dagster metadata, top of `paths.md`)
SUMMARY_COLUMNS = (
    "model",
    "energy_score_bp",
    "variogram_score",
    "crps_mean_bp",
    "crps_h1_bp",
    "crps_h30_bp",
    "touch_up_5bp_forecast",
    "touch_up_5bp_realised",
    "touch_up_5bp_brier",
    "mae_long_var_5_hit_rate",
    "mae_long_var_5_kupiec_p",
    "spread_factor",
)


@dataclass(frozen=True)
class PathEvaluationConfig:
    """Which test anchors are scored, how many paths each model draws, and the fan figure."""

    # The grid of anchors: a multiple of 30 s, so no two paths of one symbol overlap.
    anchor_stride_s: int = HORIZON_S
    n_samples: int = 100  # sample paths per anchor and model
    # At most this many grid anchors over all test days (None: every one). Sampling the model
    # and the oracle, and the energy score cost most: 1,000 x 100 paths of the demo market's
    # four models take under a minute on 2 cores (docs/paths.md).
    max_anchors: int | None = 1_000
    seed: int = 0
    scale_fit: ScaleFit = field(default_factory=ScaleFit)  # the baselines' spread factors
    metrics: PathMetricsConfig = field(default_factory=PathMetricsConfig)
    fan_symbol: str | None = None  # None: the first test day's first symbol
    fan_hour: int = 1  # the fan's hour starts this many hours after the session's first second

    def __post_init__(self) -> None:
        if self.anchor_stride_s < HORIZON_S or self.anchor_stride_s % HORIZON_S:
            raise ValueError(
                f"anchor_stride_s must be a multiple of {HORIZON_S} s (paths must not overlap), "
                f"got {self.anchor_stride_s}"
            )
        if self.n_samples < 2 or (self.max_anchors is not None and self.max_anchors < 1):
            raise ValueError(
                f"n_samples must be >= 2 and max_anchors >= 1, got {self.n_samples}, "
                f"{self.max_anchors}"
            )
        if self.fan_hour < 0:
            raise ValueError(f"fan_hour must be >= 0, got {self.fan_hour}")


@dataclass(frozen=True)
class PathEvaluation:
    """Every model's path scores at the same test anchors, and the figures."""

    metrics: pl.DataFrame  # one row per model: `path_metrics` columns and `spread_factor`
    reliability: pl.DataFrame  # touch reliability tables (model, side, k_bp, bins)
    anchors: pl.DataFrame  # day, symbol, second of every scored anchor, in scoring order
    fan: Figure  # one model's paths for one symbol and hour
    crps_by_horizon: Figure

    def summary(self) -> pl.DataFrame:
        """The headline columns of every model, best energy score first."""
        columns = [c for c in SUMMARY_COLUMNS if c in self.metrics.columns]
        return self.metrics.select(columns).sort("energy_score_bp")

    def flat_metrics(self) -> dict[str, float]:
        """`{"path/<model>/<column>": value}` of every numeric column of the metrics table."""
        return flat_metrics(self.metrics, prefix=f"{METRIC_PREFIX}/")

    def by_metric(self) -> pl.DataFrame:
        """The metrics table turned: one row per metric, one column per model."""
        values = self.metrics.drop("model").cast(pl.Float64)
        return values.transpose(
            include_header=True, header_name="metric", column_names=self.metrics["model"]
        )


def evaluate_paths(
    bundle: ModelBundle | None,
    arrays: Mapping[str, DayArrays],
    splits: Splits,
    config: PathEvaluationConfig | None = None,
    latent_root: Path | None = None,
    log: Callable[[str], None] = lambda text: None,
) -> PathEvaluation:
    """Fit every path model on `splits.train`, draw paths at the same grid anchors of
    `splits.test` with each and score them. The grid is non-overlapping (a multiple of 30 s per
    symbol) so Kupiec's test of the MAE VaR sees separate periods (see the module's docstring).
    """
    config = config or PathEvaluationConfig()
    rng = np.random.default_rng(config.seed)
    models = path_models(bundle, latent_root, config.scale_fit, log)
    train = [arrays[d] for d in splits.train]
    for name, model in models.items():
        start = time.perf_counter()
        model.fit(train, rng)
        log(f"fitted {name} in {time.perf_counter() - start:.1f} s (scale {model.scale:.3f})")
    days = [arrays[d] for d in splits.test]
    anchors = grid_anchors(days, config, rng)
    log(f"{sum(map(len, anchors))} anchors on the {config.anchor_stride_s} s grid of {splits.test}")
    realised = np.concatenate([realised_paths(d, a) for d, a in zip(days, anchors, strict=True)])
    close = np.concatenate([at_anchors(d.close, a) for d, a in zip(days, anchors, strict=True)])
    forecasts = sample_every_model(models, days, anchors, config.n_samples, rng, log)
    table = path_metrics_table(forecasts, realised, close, config.metrics)
    scales = pl.Series("spread_factor", [models[m].scale for m in table["model"]])
    table = table.with_columns(scales)
    name = PathDiffusion.name if PathDiffusion.name in forecasts else next(iter(forecasts))
    fan = fan_of_one_hour(name, models[name], days[0], config, rng)
    return PathEvaluation(
        metrics=table,
        reliability=touch_reliability(forecasts, realised, close, config.metrics),
        anchors=pl.concat(
            anchor_context(d, a).select("day", "symbol", "second")
            for d, a in zip(days, anchors, strict=True)
        ),
        fan=fan,
        crps_by_horizon=crps_by_horizon(table, "CRPS of the cumulative return by horizon"),
    )


def path_models(
    bundle: ModelBundle | None,
    latent_root: Path | None,
    scale_fit: ScaleFit,
    log: Callable[[str], None],
) -> dict[str, PathBaseline]:
    """The diffusion model (a path bundle only), every path baseline, the oracle where the
    synthetic market's latent state exists; all unfitted."""
    models: dict[str, PathBaseline] = {}
    if bundle is not None and bundle.model.config.path_horizons:
        models[PathDiffusion.name] = PathDiffusion(bundle)
    elif bundle is not None:
        log("the model forecasts the 30 s return only: no diffusion paths")
    models.update({name: cls(scale_fit=scale_fit) for name, cls in PATH_BASELINES.items()})
    if has_latent_state(latent_root):
        models[OraclePaths.name] = OraclePaths(latent_root)
    else:
        log(f"no synthetic latent state at {latent_root}: no oracle paths")
    return models


def grid_anchors(
    days: Sequence[DayArrays], config: PathEvaluationConfig, rng: np.random.Generator
) -> list[np.ndarray]:
    """Each day's valid anchors on the `anchor_stride_s` grid, at most `max_anchors` in all
    (a uniform draw over the days, kept in day, symbol, second order)."""
    grids = [select_anchors(day, config.anchor_stride_s) for day in days]
    total = sum(len(g) for g in grids)
    if total == 0:
        raise ValueError(
            f"no valid anchor on the {config.anchor_stride_s} s grid of the test days "
            f"{[d.day for d in days]}"
        )
    if config.max_anchors is None or total <= config.max_anchors:
        return grids
    keep = np.zeros(total, dtype=bool)
    keep[rng.choice(total, config.max_anchors, replace=False)] = True
    parts = np.split(keep, np.cumsum([len(g) for g in grids])[:-1])
    return [grid[part] for grid, part in zip(grids, parts, strict=True)]


def sample_every_model(
    models: Mapping[str, PathBaseline],
    days: Sequence[DayArrays],
    anchors: Sequence[np.ndarray],
    n_samples: int,
    rng: np.random.Generator,
    log: Callable[[str], None],
) -> dict[str, np.ndarray]:
    """`[A, S, H]` paths of every model at the same anchors (the days' anchors in turn)."""
    out = {}
    for name, model in models.items():
        start = time.perf_counter()
        parts = [
            model.sample_paths(day, part, n_samples, rng)
            for day, part in zip(days, anchors, strict=True)
            if len(part)
        ]
        out[name] = np.concatenate(parts)
        seconds = time.perf_counter() - start
        log(f"{name}: {len(out[name])} anchors x {n_samples} paths in {seconds:.1f} s")
    return out


def fan_of_one_hour(
    name: str,
    model: PathBaseline,
    day: DayArrays,
    config: PathEvaluationConfig,
    rng: np.random.Generator,
) -> Figure:
    """`model`'s paths at 4 grid anchors of one symbol in the configured hour of `day`, drawn
    for the figure alone (the scored anchors are thinned: that hour may hold none of them)."""
    symbol = config.fan_symbol or day.symbols[0]
    if symbol not in day.symbols:
        raise ValueError(f"fan_symbol {symbol} is not a symbol of {day.day}: {day.symbols}")
    grid = select_anchors(day, config.anchor_stride_s)
    try:
        rows = anchors_in_hour(grid, list(day.symbols).index(symbol), config.fan_hour * 3600)
    except ValueError as error:
        raise ValueError(
            f"path fan of {symbol} on {day.day}, hour {config.fan_hour}: {error} "
            "(choose another fan_symbol or fan_hour)"
        ) from error
    anchors = grid[rows]
    samples = model.sample_paths(day, anchors, config.n_samples, rng)
    labels = [clock_time(day, int(t)) for t in anchors[:, 1]]
    title = f"{name}: {symbol} on {day.day}, sample paths of the next 30 s"
    return path_fan(samples, realised_paths(day, anchors), labels, title)


def clock_time(day: DayArrays, second: int) -> str:
    """`HH:MM:SS` New York time of a second of `day`."""
    utc = dt.datetime.fromtimestamp(day.start_ts_us / 1e6 + second, tz=dt.UTC)
    return f"{utc.astimezone(ZoneInfo(NEW_YORK)):%H:%M:%S}"
