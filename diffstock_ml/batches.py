"""Batches of windows gathered by index from whole-day arrays, and the training-day normaliser.

Each day is loaded once (memory-mapped `.npy`, or moved to the GPU once) and never cut into
per-window copies: a batch is `x_day[symbol, t-N+1 : t+1]` for B anchors at a time, done with
one advanced-indexing gather per day present in the batch. Shuffling is across days and
deterministic for a given seed and epoch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from diffstock_ml.windows import DayArrays


class Batch(NamedTuple):
    """A batch of windows and what the model needs at their anchors."""

    x: torch.Tensor  # [B, N, F] float32, normalised when the loader has a normaliser
    target: torch.Tensor  # [B] ret_30s
    sigma: torch.Tensor  # [B] sigma_30s
    close: torch.Tensor  # [B] close at the anchor (for snapping to the price grid)
    anchor: torch.Tensor  # [B, 3] int64: (day index, symbol index, second index)


@dataclass(frozen=True)
class Normaliser:
    """Robust per-feature scaling `(x - median) / scale`, clipped, fitted on training days only."""

    median: tuple[float, ...]
    scale: tuple[float, ...]
    clip: float = 10.0

    @classmethod
    def fit(
        cls, days: Sequence[DayArrays], max_rows: int = 200_000, seed: int = 0, clip: float = 10.0
    ) -> Normaliser:
        """Median and IQR/1.349 of each feature at the valid anchors of `days` (a subsample)."""
        rng = np.random.default_rng(seed)
        per_day = max(1, max_rows // max(1, len(days)))
        rows = []
        for day in days:
            anchors = day.anchors
            if len(anchors) > per_day:
                anchors = anchors[np.sort(rng.choice(len(anchors), per_day, replace=False))]
            rows.append(np.asarray(day.x[anchors[:, 0], anchors[:, 1]], dtype=np.float64))
        if not rows or sum(len(r) for r in rows) == 0:
            raise ValueError("cannot fit the normaliser: the training days have no valid anchors")
        values = np.concatenate(rows)
        median = np.median(values, axis=0)
        q25, q75 = np.quantile(values, [0.25, 0.75], axis=0)
        scale = (q75 - q25) / 1.349
        # A feature constant on the training days (a flag that never fires) is left unscaled.
        scale = np.where(scale > 1e-12, scale, np.maximum(np.abs(values).mean(axis=0), 1.0))
        return cls(tuple(median.tolist()), tuple(scale.tolist()), clip)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise a `[..., F]` tensor on its own device."""
        median = torch.tensor(self.median, dtype=x.dtype, device=x.device)
        scale = torch.tensor(self.scale, dtype=x.dtype, device=x.device)
        return ((x - median) / scale).clamp_(-self.clip, self.clip)

    def to_dict(self) -> dict[str, object]:
        return {"median": list(self.median), "scale": list(self.scale), "clip": self.clip}

    @classmethod
    def from_dict(cls, data: dict) -> Normaliser:
        return cls(tuple(data["median"]), tuple(data["scale"]), float(data["clip"]))


class WindowLoader:
    """Iterate over batches of windows of `days` (each held once, on `device`)."""

    def __init__(
        self,
        days: Sequence[DayArrays],
        *,
        batch_size: int,
        normaliser: Normaliser | None = None,
        shuffle: bool = True,
        seed: int = 0,
        device: torch.device | str = "cpu",
        drop_last: bool = False,
    ) -> None:
        if not days:
            raise ValueError("WindowLoader needs at least one day")
        lengths = {day.config.length for day in days}
        if len(lengths) != 1:
            raise ValueError(f"days were built with different window lengths: {sorted(lengths)}")
        self.length = lengths.pop()
        self.batch_size = batch_size
        self.normaliser = normaliser
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.device = torch.device(device)
        self.epoch = 0
        self._days = [_DayTensors.from_arrays(day, self.device) for day in days]
        self.anchors = torch.cat(
            [
                torch.cat([torch.full((len(d.anchors), 1), i), d.anchors], dim=1)
                for i, d in enumerate(self._days)
            ]
        )  # [A, 3] on the CPU: (day, symbol, second)
        self._offsets = torch.arange(-self.length + 1, 1)  # [N]

    def __len__(self) -> int:
        full, rest = divmod(len(self.anchors), self.batch_size)
        return full + (0 if self.drop_last or rest == 0 else 1)

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration use `epoch`'s order (e.g. when resuming training)."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[Batch]:
        order = self._order(self.epoch)
        self.epoch += 1
        for start in range(0, len(order), self.batch_size):
            index = order[start : start + self.batch_size]
            if self.drop_last and len(index) < self.batch_size:
                break
            yield self.gather(self.anchors[index])

    def _order(self, epoch: int) -> torch.Tensor:
        if not self.shuffle:
            return torch.arange(len(self.anchors))
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(len(self.anchors), generator=generator)

    def gather(self, anchors: torch.Tensor) -> Batch:
        """The batch of the given `[B, 3]` anchors, in their order."""
        size = len(anchors)
        n_features = self._days[0].x.shape[-1]
        x = torch.empty((size, self.length, n_features), dtype=torch.float32, device=self.device)
        scalars = torch.empty((3, size), dtype=torch.float32, device=self.device)
        day_index = anchors[:, 0]
        for d in torch.unique(day_index).tolist():
            rows = torch.nonzero(day_index == d).squeeze(1)
            symbol = anchors[rows, 1].to(self.device)
            second = anchors[rows, 2].to(self.device)
            day = self._days[d]
            seconds = second[:, None] + self._offsets.to(self.device)  # [b, N]
            target_rows = rows.to(self.device)
            x[target_rows] = day.x[symbol[:, None], seconds]
            scalars[:, target_rows] = day.scalars[:, symbol, second]
        if self.normaliser is not None:
            x = self.normaliser.apply(x)
        return Batch(x, scalars[0], scalars[1], scalars[2], anchors.to(self.device))


@dataclass(frozen=True)
class _DayTensors:
    x: torch.Tensor  # [S, T, F] float32
    scalars: torch.Tensor  # [3, S, T] float32: target, sigma, close
    anchors: torch.Tensor  # [A, 2] int64

    @classmethod
    def from_arrays(cls, day: DayArrays, device: torch.device) -> _DayTensors:
        x = torch.from_numpy(np.asarray(day.x))
        scalars = torch.from_numpy(np.stack([day.target, day.sigma, day.close]).astype(np.float32))
        if device.type == "cuda":
            x, scalars = x.to(device, non_blocking=True), scalars.to(device, non_blocking=True)
        return cls(x, scalars, torch.from_numpy(np.asarray(day.anchors, dtype=np.int64)))
