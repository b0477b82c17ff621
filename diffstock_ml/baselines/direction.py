"""LSTM and Transformer classifiers of the direction of the 30 s move (seed notebooks).

Not distributional baselines: they give P(up) for directional accuracy only. Trained on the same
windows (`WindowLoader`, normaliser fitted on the training days) by binary cross-entropy on
`ret_30s > 0`, with zero moves left out of the loss (they are neither up nor down).
The Transformer is the diffusion model's condition encoder (`build_encoder`); the LSTM is a
plain LSTM over the window's features, its last hidden state feeding a linear logit.
`register_classifier` lists a classifier in `DIRECTION_CLASSIFIERS` (the image CNN of
`image_cnn` too); a subclass may build another network (`build_network`) and scale windows its
own way (`window_normaliser`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import ClassVar, Literal, TypeVar

import numpy as np
import torch
from torch import nn

from diffstock_ml.baselines.heads import (
    HEAD_TRAINING,
    seeded,
    train_on_windows,
    training_loader,
    windows_at,
)
from diffstock_ml.batches import Batch, Normaliser
from diffstock_ml.model.config import ModelConfig
from diffstock_ml.model.encoders import build_encoder
from diffstock_ml.train.config import TrainConfig
from diffstock_ml.windows import DayArrays

Kind = Literal["lstm", "transformer"]


class LstmEncoder(nn.Module):
    """A plain LSTM over `[B, N, F]`; the condition is the normalised last hidden state."""

    def __init__(self, config: ModelConfig, n_features: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(
            n_features,
            config.d_model,
            num_layers=config.lstm_layers,
            batch_first=True,
            dropout=config.dropout if config.lstm_layers > 1 else 0.0,
        )
        self.norm = nn.LayerNorm(config.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, (h_n, _) = self.lstm(x)  # h_n: [layers, B, d]
        return self.norm(h_n[-1])  # [B, d]


class DirectionNetwork(nn.Module):
    """Encoder + linear layer: a window `[B, N, F]` -> the logit of an up move `[B]`."""

    def __init__(self, config: ModelConfig, n_features: int, kind: Kind) -> None:
        super().__init__()
        if kind == "lstm":
            self.encoder: nn.Module = LstmEncoder(config, n_features)
        else:
            self.encoder = build_encoder(
                dataclasses.replace(config, encoder="transformer"), n_features
            )
        self.logit = nn.Linear(config.d_model, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logit(self.encoder(x))[:, 0]  # [B]


def direction_loss(logit: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of `logit [B]` for `target [B] > 0`, averaged over the non-zero
    moves only (a zero move is neither up nor down)."""
    moved = (target != 0).float()  # [B]
    bce = nn.functional.binary_cross_entropy_with_logits(
        logit, (target > 0).float(), reduction="none"
    )
    return (bce * moved).sum() / moved.sum().clamp(min=1.0)


class DirectionClassifier:
    """P(the 30 s move is up) at anchors of a day, from a network trained on training days."""

    name: ClassVar[str]
    kind: ClassVar[Kind]

    def __init__(
        self,
        model_config: ModelConfig | None = None,
        train_config: TrainConfig = HEAD_TRAINING,
        device: torch.device | str = "cpu",
        chunk: int = 1024,
        normaliser: Normaliser | None = None,
    ) -> None:
        self.model_config = model_config or ModelConfig()
        self.train_config = train_config
        self.device = torch.device(device)
        self.chunk = chunk
        self.network: nn.Module | None = None
        self.given_normaliser = normaliser  # None: fitted on the training days in `fit`
        self.normaliser: Normaliser | None = None
        self.losses: list[float] = []

    def fit(
        self,
        train_days: Sequence[DayArrays],
        rng: np.random.Generator,
        max_steps: int | None = None,
    ) -> None:
        """Train on the windows of `train_days` for `max_steps` (default: the train config's)."""
        seed = seeded(rng)
        config = dataclasses.replace(self.train_config, seed=seed)
        if max_steps is not None:
            config = dataclasses.replace(config, max_steps=max_steps)
        self.normaliser, loader = training_loader(
            train_days, config, seed, self.window_normaliser(train_days), self.device
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            network = self.build_network(train_days[0].feature_names).to(self.device)

            def loss(batch: Batch) -> torch.Tensor:
                return direction_loss(network(batch.x), batch.target)

            self.losses = train_on_windows(network, loss, loader, config)
        self.network = network

    def build_network(self, feature_names: Sequence[str]) -> nn.Module:
        """The untrained network: a window `[B, N, F]` -> the logit of an up move `[B]`."""
        return DirectionNetwork(self.model_config, len(feature_names), self.kind)

    def window_normaliser(self, train_days: Sequence[DayArrays]) -> Normaliser | None:
        """How windows are scaled: the given normaliser, else (None) one fitted on the
        training days by `training_loader`."""
        return self.given_normaliser

    @torch.no_grad()
    def prob_up(self, day: DayArrays, anchors: np.ndarray) -> np.ndarray:
        """`[B]` float64 probability that `ret_30s > 0` given a move, at `anchors [B, 2]`."""
        if self.network is None or self.normaliser is None:
            raise RuntimeError(f"{self.name} is not fitted: call fit(train_days, rng) first")
        anchors = np.asarray(anchors)
        parts = [
            torch.sigmoid(
                self.network(
                    windows_at(day, anchors[i : i + self.chunk], self.normaliser, self.device)
                )
            )
            for i in range(0, len(anchors), self.chunk)
        ]
        return torch.cat(parts).double().cpu().numpy() if parts else np.empty(0)


DIRECTION_CLASSIFIERS: dict[str, type[DirectionClassifier]] = {}
_C = TypeVar("_C", bound=type[DirectionClassifier])


def register_classifier(cls: _C) -> _C:
    """Class decorator: list a direction classifier in `DIRECTION_CLASSIFIERS` by its `name`."""
    if cls.name in DIRECTION_CLASSIFIERS:
        raise ValueError(f"direction classifier {cls.name!r} is registered twice")
    DIRECTION_CLASSIFIERS[cls.name] = cls
    return cls


@register_classifier
class LstmDirection(DirectionClassifier):
    name = "lstm_direction"
    kind = "lstm"


@register_classifier
class TransformerDirection(DirectionClassifier):
    name = "transformer_direction"
    kind = "transformer"
