"""Run configuration of the evaluation stage."""

import dagster as dg
import polars as pl

from diffstock_ml.baselines import ScaleFit
from diffstock_ml.evaluation import EvaluationConfig
from diffstock_ml.evaluation.promotion import Promotion, promotion_decision
from diffstock_ml.forecasting import DIFFUSION, ForecastConfig
from diffstock_ml.paths.evaluation import PathEvaluationConfig

_FORECAST = ForecastConfig()
_EVALUATION = EvaluationConfig()
_PATHS = PathEvaluationConfig()
DIRECTION_STEPS = 300


class ForecastsConfig(dg.Config):
    """Which test anchors are forecast and how; baselines train on the model's training days."""

    anchor_stride_s: int = _FORECAST.anchor_stride_s
    n_samples: int = _FORECAST.n_samples
    seed: int = _FORECAST.seed
    # Likelihood heads: None = the diffusion model's own training budget (its TrainConfig,
    # max_steps included) on its encoder configuration -- a fair fight.
    head_max_steps: int | None = None
    # The direction classifiers and point regressors (side models, not scored by CRPS): None =
    # the profile's training steps, at most DIRECTION_STEPS (a tiny profile stays tiny).
    direction_max_steps: int | None = None
    # Baselines fitted at a time, each in a forked process of its own (Linux, CPU): None = one
    # per torch thread (two on a 2-core laptop); 1 = one after another in the step's process.
    fit_workers: int | None = _FORECAST.fit_workers

    def direction_steps(self, profile_steps: int) -> int:
        """Training steps of the side models: the configured ones, else the profile's (≤ 300)."""
        if self.direction_max_steps is not None:
            return self.direction_max_steps
        return min(DIRECTION_STEPS, profile_steps)

    def to_forecast_config(self) -> ForecastConfig:
        return ForecastConfig(
            self.anchor_stride_s, self.n_samples, self.seed, fit_workers=self.fit_workers
        )


class EvaluationReportConfig(dg.Config):
    """Costs of the backtest and the promotion rule of the model."""

    fees_bp: float = _EVALUATION.fees_bp
    half_spread_bp: float = _EVALUATION.half_spread_bp
    promotion_baseline: str = "ewma_gaussian"
    promotion_max_dm_pvalue: float = 0.05
    promotion_coverage_tolerance: float = 0.03  # |coverage_90 - 0.90|

    def to_evaluation_config(self) -> EvaluationConfig:
        return EvaluationConfig(fees_bp=self.fees_bp, half_spread_bp=self.half_spread_bp)

    def promotion(self, overall: pl.DataFrame) -> Promotion:
        """The gate's decision on the diffusion model's row of `overall`."""
        return promotion_decision(
            overall,
            DIFFUSION,
            self.promotion_baseline,
            self.promotion_max_dm_pvalue,
            self.promotion_coverage_tolerance,
        )


class PathReportConfig(dg.Config):
    """Which test anchors the path forecasts are scored at, and how many paths are drawn."""

    anchor_stride_s: int = _PATHS.anchor_stride_s  # a multiple of 30 s: paths never overlap
    n_samples: int = _PATHS.n_samples
    max_anchors: int | None = _PATHS.max_anchors  # over all test days; None: the whole grid
    seed: int = _PATHS.seed
    # the baselines' spread factors: training anchors and samples of the fit
    fit_anchors: int = _PATHS.scale_fit.max_anchors
    fit_samples: int = _PATHS.scale_fit.n_samples
    fan_symbol: str | None = None  # None: the first symbol of the first test day
    fan_hour: int = _PATHS.fan_hour

    def to_path_evaluation_config(self) -> PathEvaluationConfig:
        return PathEvaluationConfig(
            anchor_stride_s=self.anchor_stride_s,
            n_samples=self.n_samples,
            max_anchors=self.max_anchors,
            seed=self.seed,
            scale_fit=ScaleFit(max_anchors=self.fit_anchors, n_samples=self.fit_samples),
            fan_symbol=self.fan_symbol,
            fan_hour=self.fan_hour,
        )
