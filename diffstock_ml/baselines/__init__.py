"""Baseline forecasts of the 30 s return, drawn at exactly the model's anchors (DESIGN §8).

Every distributional baseline is a `Baseline`: `fit(train_days, rng)` learns from training days
only (parameters, then one spread factor matched to 90 % training coverage), and
`sample(day, anchors, n_samples, rng)` returns `[B, S]` float64 returns snapped to the $0.01
grid, strictly causal (same day, seconds <= t). `BASELINES` names those that run on any data:

- `rolling_gaussian`, `ewma_gaussian` (`volatility`), `garch_t` (`garch`), `empirical`
  (`empirical`), `gaussian_head`, `student_t_head` (`heads`, on the diffusion encoder).

`Oracle` (synthetic data only, from the latent state) has the same interface but needs the latent
folder. Not distributional:

- the direction classifiers (`DIRECTION_CLASSIFIERS`: `lstm_direction`, `transformer_direction`
  (`direction`), `image_cnn_direction` (`image_cnn`, seed 003)) only give `prob_up`;
- the point regressors (`POINT_REGRESSORS`: `rnn_regressor`, `gru_regressor`, `lstm_regressor`
  (`regressors`, seed 004)) only give one number, `predict`.
"""

from diffstock_ml.baselines.base import (
    BASELINES,
    Baseline,
    Draws,
    ScaleFit,
    fit_spread_scale,
    mean_coverage,
    snap_returns,
)
from diffstock_ml.baselines.direction import (
    DIRECTION_CLASSIFIERS,
    DirectionClassifier,
    LstmDirection,
    TransformerDirection,
)
from diffstock_ml.baselines.empirical import RollingEmpirical
from diffstock_ml.baselines.garch import GarchParams, GarchT
from diffstock_ml.baselines.heads import GaussianHead, StudentTHead
from diffstock_ml.baselines.image_cnn import ImageCnnDirection, ImageConfig
from diffstock_ml.baselines.oracle import Oracle
from diffstock_ml.baselines.regressors import (
    POINT_REGRESSORS,
    GruRegressor,
    LstmRegressor,
    PointRegressor,
    RnnRegressor,
    Stopping,
)
from diffstock_ml.baselines.volatility import EwmaGaussian, RollingGaussian

__all__ = [
    "BASELINES",
    "DIRECTION_CLASSIFIERS",
    "POINT_REGRESSORS",
    "Baseline",
    "DirectionClassifier",
    "Draws",
    "EwmaGaussian",
    "GarchParams",
    "GarchT",
    "GaussianHead",
    "GruRegressor",
    "ImageCnnDirection",
    "ImageConfig",
    "LstmDirection",
    "LstmRegressor",
    "Oracle",
    "PointRegressor",
    "RnnRegressor",
    "RollingEmpirical",
    "RollingGaussian",
    "ScaleFit",
    "Stopping",
    "StudentTHead",
    "TransformerDirection",
    "fit_spread_scale",
    "mean_coverage",
    "snap_returns",
]
