"""A CNN on grayscale images of the window's price bars (seed 003, ImageTrading).

As that seed (after "(Re-)Imag(in)ing Price Trends"), each bar is 3 pixels wide on a black
image: the open a pixel in the left column, the high–low range filled in the middle column, the
close a pixel in the right column; prices are rescaled so the window's lowest low is the bottom
row and its highest high the top row. Two blocks `Conv(5×3) → BatchNorm → ReLU → MaxPool(2×1)`,
dropout and a linear layer give the logit of an up move (`direction_loss`: BCE on
`ret_30s > 0`, zero moves left out, as the other direction classifiers).

A window holds per-second features, not raw OHLC, so the bars are derived from two of them:

- close: relative to the anchor's close, from the 1 s log returns,
  `log c_j − log c_t = −Σ_{u=j+1..t} logret_1s_u`;
- open: the previous second's close, `log c_j − logret_1s_j`;
- high and low: `hl_range = (high − low) / close` is a feature but not where the range sits, so
  a second's bar spans its open and close and is widened symmetrically to `hl_range` (in log
  price) when the range is wider than that body.

`ImageConfig.bars` bars of `N // bars` seconds each cover the last `bars · (N // bars)` seconds
of the window (open of the first second, highest high, lowest low, close of the last). The
seed's moving-average line and volume bars are not drawn. Channel widths are smaller than the
seed's 64/128 so that training fits the direction classifiers' CPU budget.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from diffstock_ml.baselines.direction import DirectionClassifier, register_classifier
from diffstock_ml.baselines.heads import HEAD_TRAINING
from diffstock_ml.batches import Normaliser
from diffstock_ml.model.config import ModelConfig
from diffstock_ml.train.config import TrainConfig
from diffstock_ml.windows import DayArrays

RETURN_FEATURE = "logret_1s"
RANGE_FEATURE = "hl_range"


@dataclass(frozen=True)
class ImageConfig:
    """Image size and network widths of the image CNN."""

    bars: int = 20  # bars drawn per window (each 3 px wide): 6 s bars of a 120 s window
    height: int = 24  # pixel rows between the lowest low and the highest high
    channels: tuple[int, int] = (8, 16)  # the two conv blocks (seed: 64, 128; CPU budget)
    dropout: float = 0.5

    def __post_init__(self) -> None:
        if self.bars < 1 or self.height < 4 or min(self.channels) < 1:
            raise ValueError(
                f"need bars >= 1, height >= 4 and channels >= 1, got {self.bars}, "
                f"{self.height}, {self.channels}"
            )


def bar_prices(log_return: torch.Tensor, hl_range: torch.Tensor, bars: int) -> torch.Tensor:
    """`[B, bars, 4]` log open, high, low, close (relative to the last close) of the window.

    `log_return`, `hl_range`: `[B, N]` per second (the window's `logret_1s` and `hl_range`).
    """
    n = log_return.shape[1]
    per_bar = n // bars
    if per_bar < 1:
        raise ValueError(f"a window of {n} s cannot be drawn as {bars} bars")
    close = torch.cumsum(log_return, dim=1)
    close = close - close[:, -1:]  # [B, N] log close relative to the anchor's close
    open_ = close - log_return
    top, bottom = torch.maximum(open_, close), torch.minimum(open_, close)
    extra = (hl_range - (top - bottom)).clamp(min=0.0) / 2  # [B, N] range beyond the body
    seconds = torch.stack([open_, top + extra, bottom - extra, close], dim=-1)  # [B, N, 4]
    grouped = seconds[:, n - bars * per_bar :].reshape(-1, bars, per_bar, 4)  # [B, bars, k, 4]
    return torch.stack(
        [
            grouped[:, :, 0, 0],  # open of the bar's first second
            grouped[:, :, :, 1].amax(dim=2),
            grouped[:, :, :, 2].amin(dim=2),
            grouped[:, :, -1, 3],  # close of its last second
        ],
        dim=-1,
    )


def render_bars(prices: torch.Tensor, height: int) -> torch.Tensor:
    """`[B, 1, height, 3 · bars]` float images (1 = drawn) of bars `[B, bars, 4]` (O, H, L, C).

    Row 0 is the top (the highest high); a window without any range is drawn on the middle row.
    """
    low = prices[:, :, 2].amin(dim=1)[:, None, None]  # [B, 1, 1]
    span = prices[:, :, 1].amax(dim=1)[:, None, None] - low
    flat = span <= 0
    level = (prices - low) / torch.where(flat, torch.ones_like(span), span) * (height - 1)
    level = torch.where(flat, torch.full_like(level, (height - 1) // 2), level.round())
    row = (height - 1 - level).long()  # [B, bars, 4]: pixel row of O, H, L, C
    rows = torch.arange(height, device=prices.device)[None, :, None]  # [1, H, 1]
    columns = torch.stack(
        [
            rows == row[:, None, :, 0],  # left: open
            (rows >= row[:, None, :, 1]) & (rows <= row[:, None, :, 2]),  # middle: high to low
            rows == row[:, None, :, 3],  # right: close
        ],
        dim=-1,
    )  # [B, H, bars, 3]
    return columns.flatten(2).float()[:, None]  # [B, 1, H, 3 · bars]


def _conv_block(c_in: int, c_out: int) -> nn.Sequential:
    conv = nn.Conv2d(c_in, c_out, kernel_size=(5, 3), padding=(2, 1))
    nn.init.xavier_uniform_(conv.weight)
    return nn.Sequential(conv, nn.BatchNorm2d(c_out), nn.ReLU(), nn.MaxPool2d((2, 1)))


class ImageDirectionNetwork(nn.Module):
    """Raw window `[B, N, F]` -> image `[B, 1, H, 3·bars]` -> two conv blocks -> logit `[B]`."""

    def __init__(self, config: ImageConfig, feature_names: Sequence[str]) -> None:
        super().__init__()
        missing = {RETURN_FEATURE, RANGE_FEATURE} - set(feature_names)
        if missing:
            raise ValueError(f"the image CNN draws bars from features {sorted(missing)}: absent")
        self.config = config
        self.return_index = list(feature_names).index(RETURN_FEATURE)
        self.range_index = list(feature_names).index(RANGE_FEATURE)
        c1, c2 = config.channels
        self.blocks = nn.Sequential(_conv_block(1, c1), _conv_block(c1, c2))
        size = c2 * (config.height // 4) * 3 * config.bars
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(config.dropout), nn.Linear(size, 1))

    def images(self, x: torch.Tensor) -> torch.Tensor:
        """`[B, 1, H, 3·bars]` images of raw (not normalised) windows `x [B, N, F]`."""
        prices = bar_prices(x[:, :, self.return_index], x[:, :, self.range_index], self.config.bars)
        return render_bars(prices, self.config.height)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.images(x)))[:, 0]  # [B]


@register_classifier
class ImageCnnDirection(DirectionClassifier):
    """P(up) from a CNN on images of the window's bars; windows are read raw (not normalised):
    the image is scale-free by construction."""

    name = "image_cnn_direction"

    def __init__(
        self,
        model_config: ModelConfig | None = None,
        train_config: TrainConfig = HEAD_TRAINING,
        device: torch.device | str = "cpu",
        chunk: int = 1024,
        image: ImageConfig | None = None,
    ) -> None:
        super().__init__(model_config, train_config, device, chunk)
        self.image = image or ImageConfig()  # the model config is not used: no encoder

    def build_network(self, feature_names: Sequence[str]) -> nn.Module:
        return ImageDirectionNetwork(self.image, feature_names)

    def window_normaliser(self, train_days: Sequence[DayArrays]) -> Normaliser:
        n = len(train_days[0].feature_names)
        return Normaliser((0.0,) * n, (1.0,) * n, clip=float("inf"))  # the identity
