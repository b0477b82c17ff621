"""Batches of windows gathered by index from whole-day arrays, and the training-day normaliser.

Every day is held once and never cut into per-window copies: a batch is
`x_day[symbol, t-N+1 : t+1]` for B anchors at a time. The days' `[S*T, F]` cells lie end to
end in one store, and each window is one contiguous block of it, so a batch of any mix of days
is one `index_select` of whole rows of an overlapping strided view, written straight into the
batch (rows that would span two symbols or days exist in the view but are never selected).
Shuffling is across days and deterministic for a given seed and epoch.

A single day without a normaliser is the memory-mapped `.npy` itself (zero copy: forecasting
gathers a few windows of a test day). Otherwise the store is the loader's own copy, read from
the files (not through the mappings, so the process holds each day once; on the GPU, on the
device), and a normaliser is applied to it once: every second of a day sits in N windows, so
that is N times less normalising than doing it per batch, and a batch is a bare gather. The
values are bit-identical to normalising each batch (the same elementwise float32 operations).

With `path_horizons` the loader also gives each window's path target: the cumulative log
returns log(close[t + h] / close[t]) of the forward-filled close at those seconds after the
anchor (`Batch.path`), from future closes only (the window ends at t). Anchors whose path is not
complete inside the session are then left out (`windows.complete_path_anchors`; with horizons up
to 30 s none of a built day's anchors is).
"""

from __future__ import annotations

import functools
import mmap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from diffstock_ml.market import HORIZON_S
from diffstock_ml.permutation import LazyPermutation
from diffstock_ml.windows import DayArrays, complete_path_anchors, file_identity


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
        self._store = _Store.build(days, self.device, self.length, normaliser, self.path_horizons)
        anchors = torch.from_numpy(
            np.concatenate([self._day_anchors(i, day) for i, day in enumerate(days)])
        )  # [A, 3] int32 on the CPU: (day, symbol, second)
        rank, world = shard  # data-parallel training: each rank keeps every world-th anchor
        self.anchors = anchors[rank::world]

    def _day_anchors(self, index: int, day: DayArrays) -> np.ndarray:
        """`[A, 3]` int32 (day, symbol, second) of the day's anchors (with a path target: those
        whose path is complete)."""
        anchors = _private_copy(day, "anchors")  # not through the mapping: copied below
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
        size = self.batch_size
        # Anchors and their cells are found for CHUNK_BATCHES batches at a time (one gather, one
        # sort), then each batch is two gathers of slices: the per-batch Python and the small
        # tensor ops were a third of an epoch's time.
        for chunk in self._order(epoch, start_batch * size, size * CHUNK_BATCHES):
            anchors = self.anchors[chunk]  # [C, 3] int32, on the host
            # each batch's windows in day order (a stable sort on (batch, day) is each batch's
            # stable sort on day). numpy's, on the host: ~1 ms for these 32k keys, as torch's
            # CPU argsort on a quiet host, but torch's two OpenMP threads took 160 ms beside
            # another busy process.
            batch_number = np.arange(len(chunk)) // size
            key = batch_number * len(self._store.offset) + anchors[:, 0].numpy()  # (batch, day)
            by_batch_and_day = torch.from_numpy(np.argsort(key, kind="stable"))
            anchors = anchors[by_batch_and_day].to(self.device, torch.long)
            cells = self._cells(anchors)
            for start in range(0, len(chunk), size):
                if self.drop_last and len(chunk) - start < size:
                    return
                rows = slice(start, start + size)
                yield self._batch(anchors[rows], cells[rows])

    def _order(self, epoch: int, start: int, chunk: int) -> Iterator[torch.Tensor]:
        """`epoch`'s order of the anchors from position `start` on, `chunk` at a time.

        Shuffled by a `LazyPermutation` seeded by (seed, epoch): drawn as the batches are read,
        so the first batch does not wait for the whole epoch's order (torch.randperm took 0.7 s
        for ten full days) and resuming mid-epoch draws nothing it skips.
        """
        if not self.shuffle:
            return iter(torch.arange(start, len(self.anchors)).split(chunk))
        return LazyPermutation(len(self.anchors), (self.seed, epoch)).chunks(chunk, start)

    def gather(self, anchors: torch.Tensor) -> Batch:
        """The batch of the given `[B, 3]` (day, symbol, second) anchors, in their order."""
        anchors = anchors.to(self.device, torch.long)
        return self._batch(anchors, self._cells(anchors))

    def _cells(self, anchors: torch.Tensor) -> torch.Tensor:
        """`[B]` flat cells in the store of `[B, 3]` int64 (day, symbol, second) anchors."""
        day, symbol, second = anchors.unbind(1)
        return self._store.offset[day] + symbol * self._store.n_seconds[day] + second

    def _batch(self, anchors: torch.Tensor, cells: torch.Tensor) -> Batch:
        store = self._store
        x = torch.index_select(store.windows, 0, cells - (self.length - 1))
        x = x.view(len(anchors), self.length, -1)  # [B, N, F], normalised with the store
        target, sigma, close = torch.index_select(store.scalars, 0, cells).T.contiguous()
        path = self._paths(cells) if self.path_horizons else None
        return Batch(x, target, sigma, close, anchors, path)

    def _paths(self, cells: torch.Tensor) -> torch.Tensor:
        """`[B, H]` float32 log(close[t + h] / close[t]) of anchors at flat `cells` (complete
        inside their session: the anchors were filtered for it)."""
        steps = torch.tensor(self.path_horizons, device=self.device)  # [H]
        log_close = self._store.log_close
        return (log_close[cells[:, None] + steps] - log_close[cells][:, None]).float()


CHUNK_BATCHES = 64  # batches whose anchors and cells are found at once
NORMALISE_ROWS = 16_384  # cells normalised at a time (1.8 MB of 28 features): add and clip in cache


@dataclass(frozen=True)
class _Store:
    """All days' cells end to end, as tensors on the loader's device."""

    windows: torch.Tensor  # [C - N + 1, N*F] overlapping view: row i spans cells i .. i + N - 1
    scalars: torch.Tensor  # [C, 3] float32: target, sigma, close of each cell
    offset: torch.Tensor  # [D] int64: the first cell of each day
    n_seconds: torch.Tensor  # [D] int64: T of each day (a cell is offset + symbol * T + second)
    log_close: torch.Tensor | None  # [C] float64 log close (path targets only)

    @classmethod
    def build(
        cls,
        days: Sequence[DayArrays],
        device: torch.device,
        length: int,
        normaliser: Normaliser | None,
        path_horizons: Sequence[int],
    ) -> _Store:
        sizes = [day.x.shape[0] * day.x.shape[1] for day in days]
        n_features = days[0].x.shape[-1]
        if len(days) == 1 and normaliser is None and device.type == "cpu":
            x = torch.from_numpy(np.asarray(days[0].x)).reshape(sizes[0], n_features)  # mapped
        else:
            x = _cells(days, sum(sizes), n_features, device)
        if normaliser is not None:  # once, in place, a cache-sized block at a time
            for block in x.split(NORMALISE_ROWS):
                normaliser.apply_(block)
        # One small table makes the three scalars one gather, not three.
        scalars = torch.from_numpy(np.concatenate([_scalars(day) for day in days])).to(device)
        log_close = None
        if path_horizons:  # float64: in float32 a log price of ~4.6 is off by up to 2.4e-7
            with np.errstate(invalid="ignore", divide="ignore"):
                closes = [np.log(_private_copy(day, "close"), dtype=np.float64) for day in days]
            log_close = torch.from_numpy(np.concatenate([c.reshape(-1) for c in closes]))
            log_close = log_close.to(device)
        rows = max(len(x) - length + 1, 0)
        return cls(
            windows=x.as_strided((rows, length * n_features), (n_features, 1)),
            scalars=scalars,
            offset=torch.tensor(np.cumsum([0, *sizes[:-1]]), dtype=torch.long, device=device),
            n_seconds=torch.tensor([day.x.shape[1] for day in days], device=device),
            log_close=log_close,
        )


def _cells(
    days: Sequence[DayArrays], n_cells: int, n_features: int, device: torch.device
) -> torch.Tensor:
    """`[C, F]` float32: every day's features end to end, in the loader's own memory."""
    x = torch.empty(n_cells, n_features, dtype=torch.float32, device=device)
    start = 0
    for day in days:
        end = start + day.x.shape[0] * day.x.shape[1]
        if device.type == "cpu":
            _read_into(day, "x", x[start:end].numpy())
        else:
            x[start:end].copy_(torch.from_numpy(np.asarray(day.x)).reshape(end - start, -1))
        start = end
    return x


def _scalars(day: DayArrays) -> np.ndarray:
    """`[S*T, 3]` float32 target, sigma and close of a day."""
    columns = [_private_copy(day, name) for name in ("target", "sigma", "close")]
    return np.stack(columns, axis=-1, dtype=np.float32).reshape(-1, 3)


def _read_into(day: DayArrays, name: str, out: np.ndarray) -> None:
    """Copy the day's array `name` into `out` (as many values). A memory-mapped `.npy`
    is read from its file, so that the process does not hold it twice (the mapping's pages and
    the copy) - but only while its name still holds the file that was mapped; otherwise (the
    day was rewritten or deleted since) through the mapping, which still holds what was loaded."""
    array = getattr(day, name)
    identity = day.mapped_files.get(str(array.filename)) if _is_mapped_file(array) else None
    if identity is not None and array.dtype == out.dtype and array.size == out.size:
        try:
            with open(array.filename, "rb") as file:
                if file_identity(file.fileno()) == identity:
                    file.seek(array.offset)
                    if file.readinto(memoryview(out.reshape(-1)).cast("B")) == out.nbytes:
                        return
        except OSError:
            pass
    out.reshape(array.shape)[...] = array


def _is_mapped_file(array: np.ndarray) -> bool:
    """A whole memory-mapped file (as `np.load` maps it), not a view into one: its `offset`
    and size then locate its bytes in the file."""
    return (
        isinstance(array, np.memmap)
        and isinstance(array.base, mmap.mmap)
        and bool(array.filename)
        and array.flags.c_contiguous
    )


def _private_copy(day: DayArrays, name: str) -> np.ndarray:
    """A writable in-memory copy of the day's array `name` (read as `_read_into` reads)."""
    array = getattr(day, name)
    copy = np.empty(array.shape, dtype=array.dtype)
    _read_into(day, name, copy)
    return copy
