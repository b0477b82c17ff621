"""Hand-made `DayArrays` with a planted signal, for the direction and point model tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from diffstock_ml.config import WindowConfig
from diffstock_ml.windows import DayArrays

# target [S, T] from the features x [S, T, F] and a noise generator
Plant = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def planted_day(
    day: str,
    feature_names: tuple[str, ...],
    x: np.ndarray,
    plant: Plant,
    seed: int,
    length: int,
) -> DayArrays:
    """A day of features `x [S, T, F]` whose target is `plant(x, rng)`; sigma 1e-3, close $50;
    every second with a full window (and a target) is an anchor."""
    n_symbols, n_seconds, _ = x.shape
    rng = np.random.default_rng(seed)
    target = plant(x, rng)
    target[:, n_seconds - 30 :] = np.nan  # the session ends: no target
    seconds = np.arange(length - 1, n_seconds - 30)
    anchors = np.stack(np.meshgrid(np.arange(n_symbols), seconds, indexing="ij"), axis=-1)
    return DayArrays(
        day=day,
        symbols=tuple(f"S{i}" for i in range(n_symbols)),
        feature_names=feature_names,
        start_ts_us=int(np.datetime64(f"{day[:4]}-{day[4:6]}-{day[6:]}T14:30", "us").astype(int)),
        config=WindowConfig(length=length),
        x=x.astype(np.float32),
        target=target,
        sigma=np.full((n_symbols, n_seconds), 1e-3),
        close=np.full((n_symbols, n_seconds), 50.0),
        anchors=anchors.reshape(-1, 2).astype(np.int32),
    )
