"""Run configuration of the model stage: overrides on top of the profile's settings."""

import dataclasses

import dagster as dg

from diffstock_ml.model.config import ModelConfig
from diffstock_ml.train.config import TrainConfig
from diffstock_ml.train.profiles import Profile, parse_split

ENCODERS = ("transformer", "cnn_lstm")  # the choices of ModelConfig.encoder


class DiffusionModelConfig(dg.Config):
    """Leave a field empty to keep the profile's value (DIFFSTOCK_PROFILE: demo or full)."""

    encoder: str | None = None  # "transformer" or "cnn_lstm"
    max_steps: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    seed: int | None = None
    # "train,val,test" days: re-divides the sessions the as-of partition maps back (their number
    # is fixed when the definitions load: DIFFSTOCK_SPLIT or the profile's split)
    split: str | None = None
    registered_model_name: str = "diffstock-diffusion"

    def resolve_split(self, profile: Profile) -> Profile:
        if self.split is None:
            return profile
        train, val, test = parse_split(self.split)
        if train + val + test != profile.days:
            raise ValueError(
                f"split {self.split} covers {train + val + test} days, but the model maps back "
                f"{profile.days} sessions ({'/'.join(map(str, profile.split))}); to change how "
                "many, set DIFFSTOCK_SPLIT and reload the definitions"
            )
        return profile.with_split(train, val, test)

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
