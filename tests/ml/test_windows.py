"""Anchor rules at the open, the close and around stale gaps; storage; no window crosses a day."""

import datetime as dt
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from diffstock_ml.config import WindowConfig
from diffstock_ml.features import FEATURE_COLUMNS, FEATURES_SCHEMA
from diffstock_ml.windows import (
    META_FILE,
    build_day_arrays,
    load_day_arrays,
    save_day_arrays,
    valid_anchors,
)

OPEN = dt.datetime(2025, 11, 3, 14, 30, tzinfo=dt.UTC)


def _features(
    n_seconds: int = 400, symbols: tuple[str, ...] = ("A", "B"), seed: int = 0
) -> pl.DataFrame:
    """A FEATURES_SCHEMA frame with random finite values and a 30 s target where it exists."""
    rng = np.random.default_rng(seed)
    rows = []
    for symbol in symbols:
        close = 100 * np.exp(np.cumsum(rng.normal(0, 1e-4, n_seconds)))
        target = np.full(n_seconds, np.nan)
        target[:-30] = close[30:] / close[:-30] - 1
        frame = {
            "symbol": [symbol] * n_seconds,
            "ts": [OPEN + dt.timedelta(seconds=s) for s in range(n_seconds)],
            **{c: rng.normal(size=n_seconds).astype(np.float32) for c in FEATURE_COLUMNS},
            "sigma_30s": np.full(n_seconds, 5e-4),
            "ret_30s": target,
            "close": close,
            "stale": np.zeros(n_seconds, bool),
            "filled": np.zeros(n_seconds, bool),
        }
        rows.append(pl.DataFrame(frame).with_columns(pl.col("ret_30s").fill_nan(None)))
    return pl.concat(rows).cast(dict(FEATURES_SCHEMA))


CONFIG = WindowConfig(length=60)


def _anchor_set(features: pl.DataFrame, config: WindowConfig = CONFIG) -> set[tuple[int, int]]:
    return {tuple(a) for a in build_day_arrays(features, "20251103", config).anchors.tolist()}


def test_anchors_need_a_full_window_after_the_open_and_a_target_before_the_close() -> None:
    anchors = _anchor_set(_features())
    seconds = sorted({t for s, t in anchors if s == 0})
    assert seconds[0] == CONFIG.length - 1  # the first full window starts at the open
    assert seconds[-1] == 400 - 30 - 1  # the last second whose t+30 is in the session
    assert len(seconds) == 400 - 30 - (CONFIG.length - 1)


def test_a_nan_feature_removes_every_window_that_contains_it() -> None:
    features = _features().with_row_index()
    bad = 200  # symbol A, second 200
    features = features.with_columns(
        pl.when(pl.col("index") == bad).then(None).otherwise(pl.col("rv_60s")).alias("rv_60s")
    ).drop("index")
    seconds = {t for s, t in _anchor_set(features) if s == 0}
    assert not seconds & set(range(bad, bad + CONFIG.length))
    assert {bad - 1, bad + CONFIG.length} <= seconds
    assert len({t for s, t in _anchor_set(features) if s == 1}) == 400 - 30 - 59  # B untouched


def test_stale_seconds_exclude_windows_and_targets() -> None:
    n = 400
    stale = np.zeros((1, n), bool)
    stale[0, 200] = True
    x = np.zeros((1, n, 2), np.float32)
    target = np.zeros((1, n))
    sigma = np.ones((1, n))
    seconds = set(valid_anchors(x, stale, target, sigma, CONFIG)[:, 1].tolist())
    assert not seconds & set(range(200, 260))  # window holds the stale second
    assert 200 - 30 not in seconds  # t + 30 is stale
    assert {169 - 1, 260} <= seconds
    relaxed = WindowConfig(length=60, exclude_stale_window=False, exclude_stale_target=False)
    assert 230 in set(valid_anchors(x, stale, target, sigma, relaxed)[:, 1].tolist())


def test_missing_target_or_scale_is_not_an_anchor() -> None:
    x = np.zeros((1, 100, 1), np.float32)
    stale = np.zeros((1, 100), bool)
    target = np.zeros((1, 100))
    sigma = np.ones((1, 100))
    target[0, 70] = np.nan
    sigma[0, 71] = 0.0
    seconds = set(valid_anchors(x, stale, target, sigma, CONFIG)[:, 1].tolist())
    assert 70 not in seconds and 71 not in seconds and 69 in seconds


def test_round_trip_is_memory_mapped(tmp_path: Path) -> None:
    arrays = build_day_arrays(_features(), "20251103", CONFIG)
    save_day_arrays(arrays, tmp_path / "20251103")
    loaded = load_day_arrays(tmp_path / "20251103")
    assert isinstance(loaded.x, np.memmap)
    np.testing.assert_array_equal(loaded.x, arrays.x)
    np.testing.assert_array_equal(loaded.anchors, arrays.anchors)
    assert loaded.symbols == ("A", "B") and loaded.config == CONFIG
    assert loaded.x.dtype == np.float32 and loaded.x.shape == (2, 400, len(FEATURE_COLUMNS))


def test_days_written_with_a_horizon_field_still_load(tmp_path: Path) -> None:
    folder = tmp_path / "20251103"
    save_day_arrays(build_day_arrays(_features(), "20251103", CONFIG), folder)
    meta = json.loads((folder / META_FILE).read_text())
    meta["config"]["horizon_s"] = 30  # what meta.json held before the horizon became a constant
    (folder / META_FILE).write_text(json.dumps(meta))
    assert load_day_arrays(folder).config == CONFIG


def test_uneven_symbols_are_rejected() -> None:
    features = _features().filter(~((pl.col("symbol") == "B") & (pl.col("ts") == OPEN)))
    with pytest.raises(ValueError, match="same number of seconds"):
        build_day_arrays(features, "20251103", CONFIG)
