"""One day's model-ready arrays and the index of valid anchor seconds.

Arrays are `[symbol, second, feature]` float32 over the full session grid; an anchor `(s, t)`
names the window `x[s, t-N+1 : t+1]` and the target `ret_30s[s, t]`. Windows are never copied
out: `diffstock_ml.batches` gathers them by index. An anchor is valid when

- the whole window lies inside the session (`t >= N - 1`; the grid holds one session only, so a
  window can never cross a day) and every feature in it is finite;
- no second of the window, nor `t + horizon`, is stale (each configurable);
- the target `ret_30s` and the scale `sigma_30s` at `t` are present.

The day is stored as plain `.npy` files so that loading is a memory map (zero copy).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from diffstock_ml.config import WindowConfig
from diffstock_ml.features import FEATURE_COLUMNS
from diffstock_ml.market import HORIZON_S

ARRAY_FILES = ("x", "target", "sigma", "close", "anchors")
# Each array file: (type and shape, meaning); S symbols, T seconds, F features, A anchors.
ARRAY_TABLE: dict[str, tuple[str, str]] = {
    "x": ("float32 [S, T, F]", "the features of every second, in FEATURE_COLUMNS order"),
    "target": ("float64 [S, T]", "ret_30s, NaN where absent"),
    "sigma": ("float64 [S, T]", "sigma_30s"),
    "close": ("float64 [S, T]", "forward-filled close"),
    "anchors": ("int32 [A, 2]", "valid anchors: (symbol index, second index)"),
}
META_FILE = "meta.json"


@dataclass(frozen=True)
class DayArrays:
    """A day's arrays (possibly memory-mapped) and the valid anchors."""

    day: str
    symbols: tuple[str, ...]
    feature_names: tuple[str, ...]
    start_ts_us: int  # UTC microseconds of second 0 (the session open)
    config: WindowConfig
    x: np.ndarray  # float32 [S, T, F]
    target: np.ndarray  # float64 [S, T] ret_30s (NaN where absent)
    sigma: np.ndarray  # float64 [S, T] sigma_30s
    close: np.ndarray  # float64 [S, T] forward-filled close
    anchors: np.ndarray  # int32 [A, 2]: (symbol index, second index)
    # Memory-mapped days: each mapped file's identity when it was mapped (`file_identity`), so
    # that a reader may reopen it by name only while the name still holds that very file.
    mapped_files: dict[str, tuple[int, ...]] = field(
        default_factory=dict, compare=False, repr=False
    )

    @property
    def nbytes(self) -> int:
        return sum(getattr(self, name).nbytes for name in ARRAY_FILES)

    def anchors_per_symbol(self) -> dict[str, int]:
        counts = np.bincount(self.anchors[:, 0], minlength=len(self.symbols))
        return dict(zip(self.symbols, counts.tolist(), strict=True))

    def valid_share(self) -> float:
        seconds = self.x.shape[0] * self.x.shape[1]
        return len(self.anchors) / seconds if seconds else 0.0


def build_day_arrays(features: pl.DataFrame, day: str, config: WindowConfig) -> DayArrays:
    """Features of one session (FEATURES_SCHEMA rows, full grid per symbol) -> `DayArrays`."""
    features = features.sort("symbol", "ts")
    symbols = tuple(features["symbol"].unique(maintain_order=True).to_list())
    n_symbols = len(symbols)
    if n_symbols == 0:
        raise ValueError(f"{day}: no features rows to build windows from")
    n_seconds = features.height // n_symbols
    if n_seconds * n_symbols != features.height:
        raise ValueError(f"{day}: symbols do not all have the same number of seconds")

    def grid(column: str, dtype: type) -> np.ndarray:
        values = features[column].cast(pl.Float64).fill_null(np.nan).to_numpy()
        return values.astype(dtype).reshape(n_symbols, n_seconds)

    x = (
        features.select(pl.col(c).cast(pl.Float32).fill_null(np.nan) for c in FEATURE_COLUMNS)
        .to_numpy()
        .reshape(n_symbols, n_seconds, len(FEATURE_COLUMNS))
    )
    stale = features["stale"].to_numpy().reshape(n_symbols, n_seconds)
    arrays = {
        "x": np.ascontiguousarray(x, dtype=np.float32),
        "target": grid("ret_30s", np.float64),
        "sigma": grid("sigma_30s", np.float64),
        "close": grid("close", np.float64),
    }
    anchors = valid_anchors(arrays["x"], stale, arrays["target"], arrays["sigma"], config)
    start = features["ts"][0]
    return DayArrays(
        day=day,
        symbols=symbols,
        feature_names=FEATURE_COLUMNS,
        start_ts_us=int(start.timestamp() * 1_000_000),
        config=config,
        anchors=anchors,
        **arrays,
    )


def valid_anchors(
    x: np.ndarray,
    stale: np.ndarray,
    target: np.ndarray,
    sigma: np.ndarray,
    config: WindowConfig,
) -> np.ndarray:
    """`(symbol, second)` pairs whose window, target and scale satisfy the anchor rules."""
    n_symbols, n_seconds = stale.shape
    length, horizon = config.length, HORIZON_S
    bad = ~np.isfinite(x).all(axis=-1)
    if config.exclude_stale_window:
        bad |= stale
    # bad seconds inside the window [t-N+1, t], by a running count
    counts = np.concatenate([np.zeros((n_symbols, 1), np.int64), np.cumsum(bad, axis=1)], axis=1)
    in_window = np.zeros((n_symbols, n_seconds), dtype=bool)
    t = np.arange(length - 1, n_seconds)
    in_window[:, t] = (counts[:, t + 1] - counts[:, t + 1 - length]) == 0
    ok = in_window & np.isfinite(target) & np.isfinite(sigma) & (sigma > 0)
    if config.exclude_stale_target:
        ahead = np.ones_like(stale)
        ahead[:, : n_seconds - horizon] = stale[:, horizon:]
        ok &= ~stale & ~ahead
    symbol, second = np.nonzero(ok)
    return np.stack([symbol, second], axis=1).astype(np.int32)


def complete_path_anchors(day: DayArrays, horizon: int) -> np.ndarray:
    """`[A]` bool: which of the day's anchors have a finite, positive close at every second
    t .. t + `horizon` inside the session, so that their path target (`batches.WindowLoader`
    with `path_horizons`) is complete.

    With `horizon` <= HORIZON_S this holds for every anchor built by `build_day_arrays`: a
    finite `ret_30s` needs t + 30 inside the session and a close at t, and the close is
    forward-filled. Hand-built days (or longer horizons) can break it; such anchors are not used
    for path training.
    """
    close = np.asarray(day.close, dtype=np.float64)  # [S, T]
    n_symbols, n_seconds = close.shape
    with np.errstate(invalid="ignore"):
        bad = ~(np.isfinite(close) & (close > 0))
    counts = np.concatenate([np.zeros((n_symbols, 1), np.int64), np.cumsum(bad, axis=1)], axis=1)
    symbol, second = np.asarray(day.anchors, dtype=np.int64).T
    inside = second + horizon < n_seconds
    end = np.minimum(second + horizon, n_seconds - 1) + 1
    return inside & (counts[symbol, end] - counts[symbol, second] == 0)


def save_day_arrays(arrays: DayArrays, folder: Path) -> None:
    """Write the `.npy` files and `meta.json` into `folder` (the caller makes it atomic)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ARRAY_FILES:
        np.save(folder / f"{name}.npy", getattr(arrays, name), allow_pickle=False)
    meta = {
        "day": arrays.day,
        "symbols": list(arrays.symbols),
        "feature_names": list(arrays.feature_names),
        "start_ts_us": arrays.start_ts_us,
        "config": asdict(arrays.config),
    }
    (folder / META_FILE).write_text(json.dumps(meta, indent=1))


def load_day_arrays(folder: Path, mmap: bool = True) -> DayArrays:
    """Load a day written by `save_day_arrays`; memory-mapped (zero copy) by default."""
    meta = json.loads((folder / META_FILE).read_text())
    mode = "c" if mmap else None  # copy-on-write: writable in memory, file untouched
    arrays, mapped = {}, {}
    for name in ARRAY_FILES:
        path = folder / f"{name}.npy"
        before = file_identity(path)
        arrays[name] = np.load(path, mmap_mode=mode)
        if mmap and file_identity(path) == before:  # not replaced while it was being mapped
            mapped[str(arrays[name].filename)] = before
    return DayArrays(
        day=meta["day"],
        symbols=tuple(meta["symbols"]),
        feature_names=tuple(meta["feature_names"]),
        start_ts_us=meta["start_ts_us"],
        config=_window_config(meta["config"]),
        mapped_files=mapped,
        **arrays,
    )


def feature_mismatch(names: Sequence[str]) -> str | None:
    """What differs between `names` and this version's FEATURE_COLUMNS (None: nothing)."""
    if tuple(names) == FEATURE_COLUMNS:
        return None
    missing = [n for n in FEATURE_COLUMNS if n not in names]
    extra = [n for n in names if n not in FEATURE_COLUMNS]
    parts = [f"hold {len(names)} features where this version builds {len(FEATURE_COLUMNS)}"]
    parts += [f"lack {', '.join(missing)}"] if missing else []
    parts += [f"have {', '.join(extra)} that it no longer builds"] if extra else []
    if not missing and not extra:
        parts = ["hold this version's features in another order"]
    return "; ".join(parts)


def file_identity(path: Path | str | int) -> tuple[int, ...]:
    """(device, inode, size, modification ns) of a file, by path or open descriptor."""
    status = os.fstat(path) if isinstance(path, int) else os.stat(path)
    return (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns)


def _window_config(saved: dict) -> WindowConfig:
    """The `WindowConfig` of a `meta.json`; days written while the horizon was one of its fields
    (always 30 s, now `HORIZON_S`) carry a `horizon_s` that is dropped here."""
    return WindowConfig(**{k: v for k, v in saved.items() if k != "horizon_s"})
