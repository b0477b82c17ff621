"""The conditional diffusion model of the 30 s-ahead return (or of the 1..30 s path, as an option):
config, schedule, samplers, model."""

from diffstock_ml.model.config import ModelConfig, SamplerConfig
from diffstock_ml.model.denoiser import Denoiser, sinusoidal_embedding
from diffstock_ml.model.diffusion import DiffusionForecaster
from diffstock_ml.model.encoders import CnnLstmEncoder, TransformerEncoder, build_encoder
from diffstock_ml.model.forecast import (
    Forecast,
    PathForecast,
    dequantise,
    dequantise_paths,
    forecast,
    forecast_paths,
    path_scale,
    snap_path_returns,
    snap_to_grid,
    target_scale,
    to_model_target,
    to_path_target,
    to_returns,
)
from diffstock_ml.model.schedule import (
    Schedule,
    cosine_alpha_bar,
    linear_betas,
    make_schedule,
)
from diffstock_ml.model.schedulers import (
    DDIMScheduler,
    DDPMScheduler,
    StepResult,
    make_scheduler,
    randn_tensor,
    spaced_timesteps,
    to_clean,
)

__all__ = [
    "CnnLstmEncoder",
    "DDIMScheduler",
    "DDPMScheduler",
    "Denoiser",
    "DiffusionForecaster",
    "Forecast",
    "ModelConfig",
    "PathForecast",
    "SamplerConfig",
    "Schedule",
    "StepResult",
    "TransformerEncoder",
    "build_encoder",
    "cosine_alpha_bar",
    "dequantise",
    "dequantise_paths",
    "forecast",
    "forecast_paths",
    "linear_betas",
    "make_schedule",
    "make_scheduler",
    "path_scale",
    "randn_tensor",
    "sinusoidal_embedding",
    "snap_path_returns",
    "snap_to_grid",
    "spaced_timesteps",
    "target_scale",
    "to_clean",
    "to_model_target",
    "to_path_target",
    "to_returns",
]
