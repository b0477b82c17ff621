"""RNN, GRU and LSTM point regressors of the 30 s return (seed 004), with early stopping.

Seed 004 regressed the next price *level* and reported R² near 0.93, which any forecaster that
repeats the last price gets; here the target is the return itself, so R² measures skill. Each
regressor reads the same normalised windows as the other models (`WindowLoader`, normaliser
fitted on the training days), runs a recurrent network over the window's features and maps its
last hidden state to one number by a linear layer.

The target is standardised as the heads' is: the network predicts z = ret_30s / sigma_30s (the
anchor's causal volatility scale) and is trained by mean squared error on z; its point forecast
of the return is ẑ · sigma_30s. (MSE on z is MSE on the return weighted by 1/sigma²: calm and
busy anchors count alike.) AdamW with warm-up + cosine LR and gradient clipping
(`train_on_windows`); every `max_steps / checks` steps the MSE on a fixed subset of validation
windows is measured, the best weights are kept and training stops after `patience` checks
without improvement (`EarlyStopping`).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

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
from diffstock_ml.batches import Batch, Normaliser, WindowLoader
from diffstock_ml.model.config import ModelConfig
from diffstock_ml.train.config import TrainConfig
from diffstock_ml.windows import DayArrays

Cell = Literal["rnn", "gru", "lstm"]
_CELLS: dict[Cell, type[nn.RNNBase]] = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}
DROPOUT = 0.2  # between recurrent layers (seed 004), when there are several


@dataclass(frozen=True)
class Stopping:
    """Early stopping on validation days: how often, on how many windows, how patient."""

    checks: int = 10  # validations over `max_steps` (one every max_steps // checks steps)
    patience: int = 3  # checks without a lower validation MSE before stopping
    # fixed validation subset (the same windows at every check); None: as many as the diffusion
    # model validates on (`TrainConfig.val_windows`: 128 tiny, 500 demo, 20,000 full)
    val_windows: int | None = None

    def __post_init__(self) -> None:
        if min(self.checks, self.patience, self.val_windows or 1) < 1:
            raise ValueError("checks, patience and val_windows must be at least 1")


class RecurrentRegressor(nn.Module):
    """A recurrent network over `[B, N, F]`; its last hidden state -> ẑ `[B]`.

    Width `d_model` and `lstm_layers` layers of the model config, as `lstm_direction` (seed 004
    used 2 × 64; one layer halves the cost on a CPU).
    """

    def __init__(self, cell: Cell, config: ModelConfig, n_features: int) -> None:
        super().__init__()
        layers = config.lstm_layers
        self.rnn = _CELLS[cell](
            n_features,
            config.d_model,
            num_layers=layers,
            batch_first=True,
            dropout=DROPOUT if layers > 1 else 0.0,
        )
        self.out = nn.Linear(config.d_model, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, hidden = self.rnn(x)  # [layers, B, d] (for the LSTM: (h, c))
        h_n = hidden[0] if isinstance(hidden, tuple) else hidden
        return self.out(h_n[-1])[:, 0]  # [B]


def z_loss(network: nn.Module, batch: Batch) -> torch.Tensor:
    """Mean squared error of ẑ against z = ret_30s / sigma_30s."""
    z = (batch.target / batch.sigma).float()
    return nn.functional.mse_loss(network(batch.x), z)


class EarlyStopping:
    """`after_step` of `train_on_windows`: validates every `every` steps, keeps the best
    weights in memory and says stop after `patience` checks without improvement."""

    def __init__(
        self, network: nn.Module, val_batch: Batch | None, every: int, patience: int
    ) -> None:
        self.network, self.val_batch = network, val_batch
        self.every, self.patience = every, patience
        self.best = float("inf")
        self.best_step = 0
        self.best_state: dict[str, torch.Tensor] | None = None
        self.since_best = 0  # checks since the best one
        self.history: list[tuple[int, float]] = []  # (step, validation MSE of z)

    def __call__(self, step: int) -> bool:
        if self.val_batch is None or step % self.every:
            return False
        self.network.eval()
        with torch.no_grad():
            mse = float(z_loss(self.network, self.val_batch))
        self.network.train()
        self.history.append((step, mse))
        if mse < self.best:
            self.best, self.best_step, self.since_best = mse, step, 0
            self.best_state = copy.deepcopy(self.network.state_dict())
        else:
            self.since_best += 1
        return self.since_best >= self.patience

    def restore_best(self) -> None:
        """Load the best validated weights (no-op when nothing was validated)."""
        if self.best_state is not None:
            self.network.load_state_dict(self.best_state)


def validation_batch(
    val_days: Sequence[DayArrays],
    normaliser: Normaliser,
    n_windows: int,
    device: torch.device,
) -> Batch | None:
    """A fixed random subset of `n_windows` validation windows (None without validation days)."""
    if not val_days or sum(len(day.anchors) for day in val_days) == 0:
        return None
    loader = WindowLoader(
        val_days, batch_size=n_windows, normaliser=normaliser, seed=0, device=device
    )
    return next(iter(loader))


class PointRegressor:
    """A point forecast of ret_30s at anchors, from a recurrent network on training days."""

    name: ClassVar[str]
    cell: ClassVar[Cell]

    def __init__(
        self,
        model_config: ModelConfig | None = None,
        train_config: TrainConfig = HEAD_TRAINING,
        device: torch.device | str = "cpu",
        chunk: int = 1024,
        stopping: Stopping | None = None,
    ) -> None:
        self.model_config = model_config or ModelConfig()
        self.train_config = train_config
        self.device = torch.device(device)
        self.chunk = chunk
        self.stopping = stopping or Stopping()
        self.network: RecurrentRegressor | None = None
        self.normaliser: Normaliser | None = None
        self.losses: list[float] = []
        self.validation: list[tuple[int, float]] = []  # (step, val MSE of z) at each check
        self.best_step = 0

    def fit(
        self,
        train_days: Sequence[DayArrays],
        rng: np.random.Generator,
        val_days: Sequence[DayArrays] = (),
        max_steps: int | None = None,
    ) -> None:
        """Train on `train_days`, stopping early on `val_days` (none: the full budget)."""
        seed = seeded(rng)
        config = dataclasses.replace(self.train_config, seed=seed)
        if max_steps is not None:
            config = dataclasses.replace(config, max_steps=max_steps)
        self.normaliser, loader = training_loader(train_days, config, seed, None, self.device)
        n_val = self.stopping.val_windows or config.val_windows
        val = validation_batch(val_days, self.normaliser, n_val, self.device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            n_features = len(train_days[0].feature_names)
            network = RecurrentRegressor(self.cell, self.model_config, n_features)
            network = network.to(self.device)
            every = max(1, config.max_steps // self.stopping.checks)
            stopper = EarlyStopping(network, val, every, self.stopping.patience)
            self.losses = train_on_windows(
                network, lambda batch: z_loss(network, batch), loader, config, stopper
            )
            stopper.restore_best()
        self.network, self.validation = network, stopper.history
        self.best_step = stopper.best_step if stopper.history else len(self.losses)

    @torch.no_grad()
    def predict(self, day: DayArrays, anchors: np.ndarray) -> np.ndarray:
        """`[B]` float64 point forecast of ret_30s at `anchors [B, 2]` of `day`."""
        if self.network is None or self.normaliser is None:
            raise RuntimeError(f"{self.name} is not fitted: call fit(train_days, rng) first")
        anchors = np.asarray(anchors).reshape(-1, 2)
        parts = [
            self.network(windows_at(day, anchors[i : i + self.chunk], self.normaliser, self.device))
            for i in range(0, len(anchors), self.chunk)
        ]
        z = torch.cat(parts).double().cpu().numpy() if parts else np.empty(0)
        return z * np.asarray(day.sigma[anchors[:, 0], anchors[:, 1]], dtype=np.float64)


class RnnRegressor(PointRegressor):
    name = "rnn_regressor"
    cell = "rnn"


class GruRegressor(PointRegressor):
    name = "gru_regressor"
    cell = "gru"


class LstmRegressor(PointRegressor):
    name = "lstm_regressor"
    cell = "lstm"


POINT_REGRESSORS: dict[str, type[PointRegressor]] = {
    cls.name: cls for cls in (RnnRegressor, GruRegressor, LstmRegressor)
}
