"""Run configuration of the evaluation stage."""

import dagster as dg
import polars as pl

from diffstock_ml.evaluation import EvaluationConfig
from diffstock_ml.evaluation.promotion import Promotion, promotion_decision
from diffstock_ml.forecasting import DIFFUSION, ForecastConfig

_FORECAST = ForecastConfig()
_EVALUATION = EvaluationConfig()
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

    def direction_steps(self, profile_steps: int) -> int:
        """Training steps of the side models: the configured ones, else the profile's (≤ 300)."""
        if self.direction_max_steps is not None:
            return self.direction_max_steps
        return min(DIRECTION_STEPS, profile_steps)

    def to_forecast_config(self) -> ForecastConfig:
        return ForecastConfig(self.anchor_stride_s, self.n_samples, self.seed)


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
