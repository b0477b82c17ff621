"""The image CNN direction classifier (seed 003): bars drawn from a window, and learning.

A known window is drawn to a known image by hand; a batch is drawn as its windows one by one;
the classifier learns a planted momentum signal on hand-made days well above chance.
"""

from __future__ import annotations

import numpy as np
import torch
from planted_days import planted_day

from diffstock_ml.baselines import DIRECTION_CLASSIFIERS, ImageCnnDirection, ImageConfig
from diffstock_ml.baselines.image_cnn import ImageDirectionNetwork, bar_prices, render_bars
from diffstock_ml.train.config import TrainConfig
from diffstock_ml.windows import DayArrays

FEATURES = ("logret_1s", "hl_range")


def test_a_known_window_is_drawn_to_a_known_image() -> None:
    # four seconds, two bars of two seconds; closes relative to the last: 0, .01, .02, 0
    log_return = torch.tensor([[0.0, 0.01, 0.01, -0.02]])
    hl_range = torch.tensor([[0.0, 0.0, 0.03, 0.0]])  # second 2: open .01, close .02, range .03
    prices = bar_prices(log_return, hl_range, bars=2)  # [1, 2, 4]: O, H, L, C
    expected_prices = [[0.0, 0.01, 0.0, 0.01], [0.01, 0.03, 0.0, 0.0]]
    torch.testing.assert_close(prices[0], torch.tensor(expected_prices), atol=1e-7, rtol=0)
    image = render_bars(prices, height=4)  # prices 0 .. .03 -> rows 3 .. 0
    expected = [
        # bar 1: O H-L C | bar 2: O H-L C
        [0, 0, 0, 0, 1, 0],
        [0, 0, 0, 0, 1, 0],
        [0, 1, 1, 1, 1, 0],
        [1, 1, 0, 0, 1, 1],
    ]
    assert image.shape == (1, 1, 4, 6)
    assert image[0, 0].tolist() == expected


def test_a_flat_window_is_drawn_on_the_middle_row() -> None:
    image = render_bars(bar_prices(torch.zeros(1, 6), torch.zeros(1, 6), bars=3), height=5)
    assert image[0, 0, 2].tolist() == [1.0] * 9
    assert image.sum() == 9


def test_a_batch_is_drawn_as_its_windows_one_by_one() -> None:
    generator = torch.Generator().manual_seed(0)
    log_return = 1e-3 * torch.randn(16, 40, generator=generator)
    hl_range = 1e-3 * torch.rand(16, 40, generator=generator)
    batch = render_bars(bar_prices(log_return, hl_range, bars=10), height=16)
    one_by_one = torch.cat(
        [
            render_bars(bar_prices(log_return[i : i + 1], hl_range[i : i + 1], 10), 16)
            for i in range(16)
        ]
    )
    assert torch.equal(batch, one_by_one)
    # every bar has its high-low column drawn, its open and close on rows of that column
    assert (batch[:, 0, :, 1::3].sum(dim=1) >= 1).all()


def test_the_network_reads_only_the_two_features_it_draws() -> None:
    names = ("noise", *FEATURES)
    network = ImageDirectionNetwork(ImageConfig(bars=5, height=8, channels=(2, 2)), names)
    x = torch.randn(3, 20, 3) * 1e-3
    images = network.images(x)
    x[:, :, 0] = 99.0  # the other feature does not change the picture
    assert torch.equal(network.images(x), images)


def test_it_is_registered_beside_the_other_direction_classifiers() -> None:
    assert DIRECTION_CLASSIFIERS["image_cnn_direction"] is ImageCnnDirection


def momentum_day(day: str, seed: int) -> DayArrays:
    """Up when the last 8 s rose (10 % of labels flipped): visible in the last two bars."""
    rng = np.random.default_rng(seed)
    log_return = 1e-4 * rng.standard_normal((4, 1_000))
    hl_range = np.abs(log_return) + 5e-5 * rng.random((4, 1_000))
    x = np.stack([log_return, hl_range], axis=-1)

    def plant(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        recent = np.cumsum(x[:, :, 0], axis=1)
        recent[:, 8:] -= recent[:, :-8].copy()
        flip = np.where(rng.random(recent.shape) < 0.1, -1.0, 1.0)
        return np.sign(recent) * flip * 1e-3

    return planted_day(day, FEATURES, x, plant, seed, length=40)


def test_it_learns_a_planted_direction_signal_above_chance() -> None:
    train = [momentum_day("20250102", 1), momentum_day("20250103", 2)]
    test = momentum_day("20250106", 3)
    classifier = ImageCnnDirection(
        train_config=TrainConfig(batch_size=128, max_steps=50, warmup_steps=10, lr=5e-3),
        image=ImageConfig(bars=10, height=16, channels=(4, 8)),
    )
    classifier.fit(train, np.random.default_rng(0))
    p = classifier.prob_up(test, test.anchors)
    up = test.target[test.anchors[:, 0], test.anchors[:, 1]] > 0
    accuracy = np.mean((p > 0.5) == up)
    assert accuracy > 0.65, accuracy  # 0.9 is the best possible, 0.5 chance (0.77 seen)
