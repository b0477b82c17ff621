"""Evaluation of sampled 30 s return forecasts: scores, calibration, tests, backtest, report.

Pure numpy/scipy/polars. `evaluate` produces every figure of the report with the DESIGN §8
metric names; the modules hold the pieces for use on their own.
"""

from diffstock_ml.evaluation.backtest import Backtest, backtest, max_drawdown, positions
from diffstock_ml.evaluation.breakdowns import BREAKDOWNS, breakdown
from diffstock_ml.evaluation.calibration import (
    central_coverage,
    interval_coverage,
    pit_histogram,
    pit_interval,
    pit_uniformity_pvalue,
    randomised_pit,
    reliability,
)
from diffstock_ml.evaluation.config import EvaluationConfig, level_name
from diffstock_ml.evaluation.criteria import SEED_PLAN, SuccessCriteria, success_criteria
from diffstock_ml.evaluation.direction import (
    DirectionalAccuracy,
    directional_accuracy,
    forecast_direction,
    reversal_direction,
)
from diffstock_ml.evaluation.distance import wasserstein_pit, wasserstein_z
from diffstock_ml.evaluation.dm import (
    DieboldMarianoResult,
    block_bootstrap_pvalue,
    cross_sectional_mean,
    diebold_mariano,
    diebold_mariano_naive,
    newey_west_variance,
)
from diffstock_ml.evaluation.forecasts import Anchors, ModelForecasts, non_overlapping
from diffstock_ml.evaluation.pointwise import score_anchors
from diffstock_ml.evaluation.quantiles import QUANTILE_LEVELS, pinball_bp, weighted_quantile_loss
from diffstock_ml.evaluation.report import EvaluationResult, evaluate
from diffstock_ml.evaluation.scores import crps_bp, crps_skill, interval_score_bp
from diffstock_ml.evaluation.var import (
    VaRBacktest,
    christoffersen_independence_lr,
    kupiec_lr,
    transition_counts,
    var_backtest,
    var_hits,
)

__all__ = [
    "BREAKDOWNS",
    "QUANTILE_LEVELS",
    "SEED_PLAN",
    "Anchors",
    "Backtest",
    "DieboldMarianoResult",
    "DirectionalAccuracy",
    "EvaluationConfig",
    "EvaluationResult",
    "ModelForecasts",
    "SuccessCriteria",
    "VaRBacktest",
    "backtest",
    "block_bootstrap_pvalue",
    "breakdown",
    "central_coverage",
    "christoffersen_independence_lr",
    "cross_sectional_mean",
    "crps_bp",
    "crps_skill",
    "diebold_mariano",
    "diebold_mariano_naive",
    "directional_accuracy",
    "evaluate",
    "forecast_direction",
    "interval_coverage",
    "interval_score_bp",
    "kupiec_lr",
    "level_name",
    "max_drawdown",
    "newey_west_variance",
    "non_overlapping",
    "pinball_bp",
    "pit_histogram",
    "pit_interval",
    "pit_uniformity_pvalue",
    "positions",
    "randomised_pit",
    "reliability",
    "reversal_direction",
    "score_anchors",
    "success_criteria",
    "transition_counts",
    "var_backtest",
    "var_hits",
    "wasserstein_pit",
    "wasserstein_z",
    "weighted_quantile_loss",
]
