"""Batches of windows gathered by index from whole-day arrays, and the training-day normaliser.

Each day is loaded once (memory-mapped `.npy`, or moved to the GPU once) and never cut into
per-window copies: a batch is `x_day[symbol, t-N+1 : t+1]` for B anchors at a time. Each such
window is one contiguous block of the day array, so a batch is one `index_select` of whole rows
of an overlapping strided view per day present in the batch, written straight into the batch.
Shuffling is across days and deterministic for a given seed and epoch.

With `path_horizons` the loader also gives each window's path target: the cumulative log
returns log(close[t + h] / close[t]) of the forward-filled close at those seconds after the
anchor (`Batch.path`), from future closes only (the window ends at t). Anchors whose path is not
complete inside the session are then left out (`windows.complete_path_anchors`; with horizons up
to 30 s none of a built day's anchors is).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from diffstock_ml.market import HORIZON_S
from diffstock_ml.windows import DayArrays, complete_path_anchors


class Batch(NamedTuple):
    """A batch of windows and what the model needs at their anchors."""

    x: torch.Tensor  # [B, N, F] float32, normalised when the loader has a normaliser
    target: torch.Tensor  # [B] ret_30s
    sigma: torch.Tensor  # [B] sigma_30s
    close: torch.Tensor  # [B] close at the anchor (for snapping to the price grid)
    anchor: torch.Tensor  # [B, 3] int64: (day index, symbol index, second index)
    # [B, H] float32 log(close[t + h] / close[t]) at the loader's path horizons; None without
    path: torch.Tensor | None = None


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
        shift, inverse_scale = _constants(self, x.dtype, x.device)
        # (x - median) / scale as one fused multiply-add: x * (1/scale) + (-median/scale)
        return torch.addcmul(shift, x, inverse_scale).clamp_(-self.clip, self.clip)

    def apply_(self, x: torch.Tensor) -> torch.Tensor:
        """`apply` in place (the same values, no new tensor); returns `x`."""
        shift, inverse_scale = _constants(self, x.dtype, x.device)
        return torch.addcmul(shift, x, inverse_scale, out=x).clamp_(-self.clip, self.clip)

    def to_dict(self) -> dict[str, object]:
        return {"median": list(self.median), "scale": list(self.scale), "clip": self.clip}

    @classmethod
    def from_dict(cls, data: dict) -> Normaliser:
        return cls(tuple(data["median"]), tuple(data["scale"]), float(data["clip"]))


@functools.lru_cache(maxsize=16)
def _constants(
    normaliser: Normaliser, dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    median = torch.tensor(normaliser.median, dtype=torch.float64)
    inverse_scale = 1 / torch.tensor(normaliser.scale, dtype=torch.float64)
    shift = -median * inverse_scale
    return shift.to(device, dtype), inverse_scale.to(device, dtype)


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
        shard: tuple[int, int] = (0, 1),
        path_horizons: Sequence[int] = (),
    ) -> None:
        if not days:
            raise ValueError("WindowLoader needs at least one day")
        self.path_horizons = tuple(int(h) for h in path_horizons)
        if any(not 1 <= h <= HORIZON_S for h in self.path_horizons):
            raise ValueError(
                f"path_horizons must be whole seconds in 1..{HORIZON_S}, got {self.path_horizons}"
            )
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
        paths = bool(self.path_horizons)
        self._days = [_DayTensors.from_arrays(day, self.device, self.length, paths) for day in days]
        self._n_seconds = torch.tensor([day.x.shape[1] for day in days], device=self.device)
        anchors = torch.from_numpy(
            np.concatenate([self._day_anchors(i, day) for i, day in enumerate(days)])
        )  # [A, 3] int32 on the CPU: (day, symbol, second)
        rank, world = shard  # data-parallel training: each rank keeps every world-th anchor
        self.anchors = anchors[rank::world]

    def _day_anchors(self, index: int, day: DayArrays) -> np.ndarray:
        """`[A, 3]` int32 (day, symbol, second) of the day's anchors (with a path target: those
        whose path is complete)."""
        anchors = np.asarray(day.anchors)
        if self.path_horizons:
            anchors = anchors[complete_path_anchors(day, max(self.path_horizons))]
        return np.column_stack([np.full(len(anchors), index), anchors]).astype(np.int32)

    def __len__(self) -> int:
        full, rest = divmod(len(self.anchors), self.batch_size)
        return full + (0 if self.drop_last or rest == 0 else 1)

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration use `epoch`'s order (e.g. when resuming training)."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[Batch]:
        epoch = self.epoch
        self.epoch += 1
        return self.iterate(epoch)

    def iterate(self, epoch: int, start_batch: int = 0) -> Iterator[Batch]:
        """The batches of `epoch` from batch number `start_batch` on (resuming mid-epoch)."""
        order = self._order(epoch)
        for start in range(start_batch * self.batch_size, len(order), self.batch_size):
            index = order[start : start + self.batch_size]
            if self.drop_last and len(index) < self.batch_size:
                break
            batch = self.anchors[index]
            # order inside a batch does not matter for training: group it by day (cheaper)
            yield self._gather_sorted(batch[torch.argsort(batch[:, 0], stable=True)].long())

    def _order(self, epoch: int) -> torch.Tensor:
        if not self.shuffle:
            return torch.arange(len(self.anchors))
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(len(self.anchors), generator=generator, dtype=torch.int32)

    def gather(self, anchors: torch.Tensor) -> Batch:
        """The batch of the given `[B, 3]` anchors, in their order."""
        anchors = anchors.long()
        day_index = anchors[:, 0]
        by_day = torch.argsort(day_index, stable=True)
        sorted_batch = self._gather_sorted(anchors[by_day])
        if torch.equal(by_day, torch.arange(len(anchors))):
            return sorted_batch
        back = torch.argsort(by_day).to(self.device)  # undo the sort
        return Batch(*(None if field is None else field[back] for field in sorted_batch))

    def _gather_sorted(self, anchors: torch.Tensor) -> Batch:
        """Anchors grouped by day: one block gather per day, written into the batch in place."""
        days, counts = torch.unique_consecutive(anchors[:, 0], return_counts=True)
        anchors = anchors.to(self.device)
        day, symbol, second = anchors.unbind(1)
        cells = symbol * self._n_seconds[day] + second  # flat (symbol, second) within its day
        n_features = self._days[0].x.shape[-1]
        x = torch.empty(len(anchors), self.length * n_features, device=self.device)
        scalars = torch.empty(len(anchors), 3, device=self.device)
        start = 0
        for d, count in zip(days.tolist(), counts.tolist(), strict=True):
            end, tensors = start + count, self._days[d]
            cell = cells[start:end]
            # each window is one contiguous block of the day array: a row of `windows`
            torch.index_select(tensors.windows, 0, cell - (self.length - 1), out=x[start:end])
            torch.index_select(tensors.scalars, 0, cell, out=scalars[start:end])
            start = end
        x = x.view(len(anchors), self.length, n_features)  # [B, N, F]
        if self.normaliser is not None:  # in place: no second [B, N, F] tensor per batch
            self.normaliser.apply_(x)
        target, sigma, close = scalars.T.contiguous()  # 3 x [B]
        path = self._paths(day, cells) if self.path_horizons else None
        return Batch(x, target, sigma, close, anchors, path)

    def _paths(self, day: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
        """`[B, H]` float32 log(close[t + h] / close[t]) of anchors at flat `cells` of days
        `day [B]` (complete inside the session: the anchors were filtered for it)."""
        steps = torch.tensor(self.path_horizons, device=self.device)  # [H]
        path = torch.empty(len(cells), len(steps), dtype=torch.float64, device=self.device)
        for d in torch.unique(day).tolist():
            rows = day == d
            log_close, cell = self._days[d].log_close, cells[rows]
            path[rows] = log_close[cell[:, None] + steps] - log_close[cell][:, None]  # [b, H]
        return path.float()


@dataclass(frozen=True)
class _DayTensors:
    """One day as tensors sharing memory with the (memory-mapped) arrays; on the GPU if asked."""

    x: torch.Tensor  # [S, T, F] float32
    windows: torch.Tensor  # [S*T - N + 1, N*F] overlapping view: row i is the window at cell i
    scalars: torch.Tensor  # [S*T, 3] float32: target, sigma, close of each (symbol, second)
    log_close: torch.Tensor | None = None  # [S*T] float64 log close (path targets only)

    @classmethod
    def from_arrays(
        cls, day: DayArrays, device: torch.device, length: int, paths: bool = False
    ) -> _DayTensors:
        # The batch is float32; one small table makes the three scalars one gather, not three.
        scalars = np.stack([day.target, day.sigma, day.close], axis=-1, dtype=np.float32)
        x, scalars = torch.from_numpy(np.asarray(day.x)), torch.from_numpy(scalars)
        log_close = None
        if paths:  # float64: in float32 a log price of ~4.6 is off by up to 2.4e-7
            with np.errstate(invalid="ignore", divide="ignore"):
                values = np.log(np.asarray(day.close, dtype=np.float64)).reshape(-1)
            log_close = torch.from_numpy(values).to(device)
        if device.type == "cuda":
            x, scalars = x.to(device, non_blocking=True), scalars.to(device, non_blocking=True)
        x = x.contiguous()  # the strided view below assumes C order (a no-op for .npy)
        n_symbols, n_seconds, n_features = x.shape
        # Row i starts at cell i = symbol*T + second and spans N seconds. Rows that would run
        # into the next symbol exist in the view but are never selected (anchors have a full
        # window inside their own day and symbol).
        rows = max(n_symbols * n_seconds - length + 1, 0)
        windows = x.as_strided((rows, length * n_features), (n_features, 1))
        return cls(x, windows, scalars.reshape(n_symbols * n_seconds, 3), log_close)
