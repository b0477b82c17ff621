"""Run configuration of the model stage: overrides on top of the profile's settings."""

import dataclasses

import dagster as dg

from diffstock_ml.model.config import ModelConfig
from diffstock_ml.train.config import TrainConfig
from diffstock_ml.train.profiles import Profile

ENCODERS = ("transformer", "cnn_lstm")  # the choices of ModelConfig.encoder


class DiffusionModelConfig(dg.Config):
    """Leave a field empty to keep the profile's value (DIFFSTOCK_PROFILE: demo or full)."""

    encoder: str | None = None  # "transformer" or "cnn_lstm"
    max_steps: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    seed: int | None = None
    registered_model_name: str = "diffstock-diffusion"

    def resolve(self, profile: Profile) -> tuple[ModelConfig, TrainConfig]:
        model = profile.model
        if self.encoder is not None:
            if self.encoder not in ENCODERS:
                raise ValueError(f"encoder must be one of {ENCODERS}, got {self.encoder!r}")
            model = dataclasses.replace(model, encoder=self.encoder)
        overrides = {
            name: getattr(self, name)
            for name in ("max_steps", "batch_size", "lr", "seed")
            if getattr(self, name) is not None
        }
        return model, dataclasses.replace(profile.train, **overrides)
