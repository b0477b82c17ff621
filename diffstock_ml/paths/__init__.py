"""Forecasts and evaluation of price PATHS: every second of the next 30 s (issue 13).

- `targets`: the realised path `[A, H]` of cumulative log returns at a day's anchors.
- `baselines`: path baselines (`EwmaRandomWalk`, `GarchTPaths`, and `OraclePaths` on synthetic
  data) that draw `[A, S, H]` sample paths snapped to the price grid at every second.
- `metrics`: energy and variogram scores, CRPS per horizon, touch probabilities and the VaR of
  the maximum adverse excursion, as one tidy table per model.
- `plots`: a fan of sample paths and CRPS by horizon.
- `diffusion`: `PathDiffusion`, a diffusion model trained with the path target
  (`ModelConfig.path_horizons`) as a path baseline, so its paths are scored beside theirs.
- `evaluation`: `evaluate_paths`, every model fitted, drawn at the same test anchors and scored
  in one call (what the `path_report` asset runs); `document.write_path_report` writes its files.

Not here yet: serving.
"""

from diffstock_ml.paths.baselines import (
    PATH_BASELINES,
    EwmaRandomWalk,
    GarchTPaths,
    OraclePaths,
    PathBaseline,
    PathDraws,
    snap_paths,
)
from diffstock_ml.paths.diffusion import PathDiffusion
from diffstock_ml.paths.document import write_path_report
from diffstock_ml.paths.evaluation import PathEvaluation, PathEvaluationConfig, evaluate_paths
from diffstock_ml.paths.metrics import (
    PathMetricsConfig,
    path_metrics,
    path_metrics_table,
    touch_reliability,
)
from diffstock_ml.paths.targets import HORIZONS, realised_paths

__all__ = [
    "HORIZONS",
    "PATH_BASELINES",
    "EwmaRandomWalk",
    "GarchTPaths",
    "OraclePaths",
    "PathBaseline",
    "PathDiffusion",
    "PathDraws",
    "PathEvaluation",
    "PathEvaluationConfig",
    "PathMetricsConfig",
    "evaluate_paths",
    "path_metrics",
    "path_metrics_table",
    "realised_paths",
    "snap_paths",
    "touch_reliability",
    "write_path_report",
]
