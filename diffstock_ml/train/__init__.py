"""Training of the diffusion forecaster: `train(...)` and `python -m diffstock_ml.train`."""

from diffstock_ml.train.config import TrainConfig
from diffstock_ml.train.loop import (
    EvalMetrics,
    SilentCallback,
    StepMetrics,
    TrainCallback,
    TrainResult,
    lr_factor,
    train,
)

__all__ = [
    "EvalMetrics",
    "SilentCallback",
    "StepMetrics",
    "TrainCallback",
    "TrainConfig",
    "TrainResult",
    "lr_factor",
    "train",
]
