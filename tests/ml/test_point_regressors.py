"""Point regressors of the 30 s return (seed 004) and how point forecasts are scored.

The metrics against hand computation; a regressor learns a planted linear signal (R² of the
return well above zero) and keeps its best validated weights; early stopping stops on a
validation loss that stops improving; the report's table joins regressors and sample means.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch
from planted_days import planted_day
from torch import nn

from diffstock_ml.baselines import POINT_REGRESSORS, Stopping
from diffstock_ml.baselines.regressors import EarlyStopping, z_loss
from diffstock_ml.batches import Batch
from diffstock_ml.evaluation.point_forecasts import (
    point_forecast_scores,
    point_forecast_table,
    sample_means,
)
from diffstock_ml.model.config import ModelConfig
from diffstock_ml.train.config import TrainConfig
from diffstock_ml.windows import DayArrays

FEATURES = ("signal", "noise")


def test_the_metrics_match_hand_computation() -> None:
    y = np.array([1e-4, -2e-4, 0.0, 3e-4])
    f = np.array([2e-4, -1e-4, 1e-4, -1e-4])
    table = point_forecast_scores(y, {"f": f}, tolerance=1e-9)
    row = table.row(0, named=True)
    # errors 1, 1, 1, -4 bp
    assert row["mae_bp"] == pytest.approx(7 / 4)
    assert row["rmse_bp"] == pytest.approx(np.sqrt(19 / 4))
    # SSE 19e-8; y mean 0.5e-4: Σ(y - ȳ)² = (0.25 + 6.25 + 0.25 + 6.25)e-8 = 13e-8; Σy² = 14e-8
    assert row["r2"] == pytest.approx(1 - 19 / 13)
    assert row["r2_vs_zero"] == pytest.approx(1 - 19 / 14)
    # the zero move is left out: up/up right, down/down right, up/down wrong
    assert row["directional_n"] == 3 and row["directional_accuracy"] == pytest.approx(2 / 3)
    perfect = point_forecast_scores(y, {"y": y}).row(0, named=True)
    assert perfect["r2"] == 1.0 and perfect["mae_bp"] == 0.0


def test_a_forecast_of_the_wrong_length_is_named() -> None:
    with pytest.raises(ValueError, match="'short' has shape"):
        point_forecast_scores(np.zeros(3), {"short": np.zeros(2)})


def linear_day(day: str, seed: int) -> DayArrays:
    """ret_30s = sigma · (0.8 · signal_t + 0.6 · noise): R² 0.64 at best."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((3, 800, 2))

    def plant(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return 1e-3 * (0.8 * x[:, :, 0] + 0.6 * rng.standard_normal(x.shape[:2]))

    return planted_day(day, FEATURES, x, plant, seed, length=20)


@pytest.mark.parametrize(
    ("stopping", "expected"), [(Stopping(), 96), (Stopping(val_windows=200), 200)]
)
def test_validation_windows_follow_the_training_profile_unless_set(
    monkeypatch: pytest.MonkeyPatch, stopping: Stopping, expected: int
) -> None:
    """By default a regressor validates on as many windows as the diffusion model of its
    profile (`TrainConfig.val_windows`): a tiny profile stays tiny."""
    import diffstock_ml.baselines.regressors as regressors

    asked = []
    real = regressors.validation_batch

    def recording(days, normaliser, n_windows, device):
        asked.append(n_windows)
        return real(days, normaliser, n_windows, device)

    monkeypatch.setattr(regressors, "validation_batch", recording)
    regressor = POINT_REGRESSORS["rnn_regressor"](
        ModelConfig(d_model=8, n_heads=2),
        TrainConfig(batch_size=64, max_steps=4, warmup_steps=1, val_windows=96),
        stopping=stopping,
    )
    regressor.fit(
        [linear_day("20250102", 1)], np.random.default_rng(0), [linear_day("20250106", 3)]
    )
    assert asked == [expected]


@pytest.mark.parametrize("name", sorted(POINT_REGRESSORS))
def test_a_regressor_learns_a_planted_linear_signal(name: str) -> None:
    train = [linear_day("20250102", 1), linear_day("20250103", 2)]
    val, test = linear_day("20250106", 3), linear_day("20250107", 4)
    regressor = POINT_REGRESSORS[name](
        ModelConfig(d_model=16, n_heads=2),
        TrainConfig(batch_size=128, max_steps=120, warmup_steps=10, lr=3e-3),
        stopping=Stopping(checks=6, patience=2, val_windows=512),
    )
    regressor.fit(train, np.random.default_rng(0), [val])
    anchors = test.anchors
    target = test.target[anchors[:, 0], anchors[:, 1]]
    forecast = regressor.predict(test, anchors)
    r2 = point_forecast_scores(target, {name: forecast})["r2"][0]
    assert r2 > 0.3, r2  # 0.64 is the best possible, 0 no skill
    assert regressor.validation, "validated on the validation day"
    best_step, _ = min(regressor.validation, key=lambda check: check[1])
    assert regressor.best_step == best_step


def test_early_stopping_stops_after_patience_and_restores_the_best_weights() -> None:
    network = nn.Linear(1, 1, bias=False)
    x = torch.ones(4, 1)
    batch = Batch(x, torch.full((4,), 2.0), torch.ones(4), torch.ones(4), torch.zeros(4, 3))

    class Flat(nn.Module):  # windows [B, N, F] -> the linear layer of the first value
        def __init__(self) -> None:
            super().__init__()
            self.inner = network

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(x.reshape(len(x), -1)[:, :1])[:, 0]

    flat = Flat()
    stopper = EarlyStopping(flat, batch, every=10, patience=2)
    decisions = []
    for step, weight in ((10, 1.0), (20, 2.0), (30, 0.0), (40, 5.0)):
        with torch.no_grad():
            network.weight.fill_(weight)  # z loss: (w - 2)²
        decisions.append(stopper(step))
        assert not stopper(step + 1), "only every 10 steps"
    assert decisions == [False, False, False, True]
    assert stopper.best_step == 20 and [s for s, _ in stopper.history] == [10, 20, 30, 40]
    stopper.restore_best()
    assert network.weight.item() == 2.0 and z_loss(flat, batch).item() == 0.0


def test_the_table_scores_regressors_and_sample_means_on_the_same_anchors() -> None:
    keys = {"day": ["20250102"] * 2, "symbol": ["A", "B"], "second": [600, 600]}
    ts = pl.from_epoch(pl.Series([1_735_830_000] * 2), time_unit="s")
    context = pl.DataFrame({**keys, "target": [1e-4, -1e-4], "close": [50.0, 20.0]})
    context = context.with_columns(ts=ts.dt.replace_time_zone("UTC"))
    samples = pl.Series("samples", [[1e-4, 3e-4], [-1e-4, -1e-4]], dtype=pl.Array(pl.Float64, 2))
    forecasts = context.with_columns(samples, model=pl.lit("diffusion"))
    assert sample_means(forecasts)["diffusion"].to_list() == pytest.approx([2e-4, -1e-4])
    points = pl.DataFrame({**keys, "target": [1e-4, -1e-4], "point_rnn_regressor": [0.0, 0.0]})
    table = point_forecast_table(forecasts, points)
    assert table["model"].to_list() == ["rnn_regressor", "diffusion"]
    assert table["kind"].to_list() == ["regressor", "distribution mean"]
    assert table["mae_bp"].to_list() == pytest.approx([1.0, 0.5])
    assert table["directional_n"].to_list() == [0, 2]  # a zero forecast makes no call
    with pytest.raises(ValueError, match="1 of 2 anchors"):
        point_forecast_table(forecasts, points.head(1))
