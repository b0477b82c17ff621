"""The EMA of the weights forgets its initialisation (the demo model's median bias came from a
1,000-step EMA that was still 37 % initial weights)."""

import pytest
import torch

from diffstock_ml.train.ema import ema_decay_at, exponential_moving_average


def test_warm_up_decay_grows_to_the_configured_decay() -> None:
    assert ema_decay_at(0, 0.999, warmup=True) == pytest.approx(0.1)
    assert ema_decay_at(90, 0.999, warmup=True) == pytest.approx(0.91)
    assert ema_decay_at(100_000, 0.999, warmup=True) == 0.999
    assert ema_decay_at(0, 0.999, warmup=False) == 0.999


@pytest.mark.parametrize(("warmup", "initial_share"), [(True, 0.0), (False, 0.999**1000)])
def test_share_of_the_initial_weights_after_a_short_training(
    warmup: bool, initial_share: float
) -> None:
    model = torch.nn.Linear(3, 1)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema = exponential_moving_average(model, 0.999, warmup)
    ema.update_parameters(model)  # the first update copies: after step 1 ≈ the initial weights
    with torch.no_grad():
        model.weight.fill_(0.0)  # "trained" weights, fixed from the first step on
    for _ in range(1_000):
        ema.update_parameters(model)
    share = ema.module.weight.mean().item()
    assert share == pytest.approx(initial_share, abs=2e-3)
