"""Realised paths: log returns of the forward-filled close at every second after an anchor, NaN
past the session, and at 30 s the pipeline's own `ret_30s` target."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from diffstock_ml.config import WindowConfig
from diffstock_ml.features import FEATURE_COLUMNS
from diffstock_ml.market import HORIZON_S
from diffstock_ml.paths import HORIZONS, realised_paths
from diffstock_ml.windows import DayArrays, load_day_arrays


def hand_day(close: np.ndarray) -> DayArrays:
    """A `DayArrays` around a hand-written close `[S, T]` (features and targets unused)."""
    n_symbols, n_seconds = close.shape
    nan = np.full((n_symbols, n_seconds), np.nan)
    return DayArrays(
        day="20251103",
        symbols=tuple(f"S{i}" for i in range(n_symbols)),
        feature_names=FEATURE_COLUMNS,
        start_ts_us=0,
        config=WindowConfig(),
        x=np.zeros((n_symbols, n_seconds, len(FEATURE_COLUMNS)), np.float32),
        target=nan,
        sigma=nan,
        close=close,
        anchors=np.zeros((0, 2), np.int32),
    )


def test_horizons_are_every_second_up_to_the_one_market_horizon() -> None:
    assert tuple(range(1, HORIZON_S + 1)) == HORIZONS


def test_a_path_is_the_log_return_from_the_anchor_at_every_horizon() -> None:
    close = np.array([[10.00, 10.01, 10.01, 9.99, 10.02], [50.0, 50.5, 49.5, 50.0, 51.0]])
    anchors = np.array([[0, 1], [1, 0]], np.int32)
    paths = realised_paths(hand_day(close), anchors, horizons=(1, 2, 3))
    expected = [
        [np.log(10.01 / 10.01), np.log(9.99 / 10.01), np.log(10.02 / 10.01)],
        [np.log(50.5 / 50.0), np.log(49.5 / 50.0), np.log(50.0 / 50.0)],
    ]
    np.testing.assert_allclose(paths, expected, rtol=0, atol=1e-15)


def test_horizons_past_the_last_second_of_the_day_are_nan() -> None:
    close = np.linspace(10.0, 11.0, 100)[None, :]
    paths = realised_paths(hand_day(close), np.array([[0, 90]], np.int32))  # 9 s left
    assert paths.shape == (1, HORIZON_S)
    assert np.isfinite(paths[0, :9]).all()
    assert np.isnan(paths[0, 9:]).all()


@pytest.mark.parametrize("horizons", [(), (0, 1), (-1,)])
def test_horizons_must_be_positive_seconds(horizons: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="horizons"):
        realised_paths(hand_day(np.ones((1, 10))), np.array([[0, 1]]), horizons)


def test_anchors_must_be_symbol_second_pairs() -> None:
    with pytest.raises(ValueError, match=r"\[A, 2\]"):
        realised_paths(hand_day(np.ones((1, 10))), np.array([0, 1]))


def test_the_30s_end_point_is_the_pipelines_ret_30s_target(tiny_windows: list[Path]) -> None:
    """Every second of a synthetic day, not only the anchors: where both exist they agree."""
    day = load_day_arrays(tiny_windows[0])
    symbol, second = np.indices(day.close.shape).reshape(2, -1)
    every = np.stack([symbol, second], axis=1)
    end = realised_paths(day, every, (HORIZON_S,))[:, 0]
    target = np.asarray(day.target).reshape(-1)
    both = np.isfinite(end) & np.isfinite(target)
    assert both.sum() > 0.9 * np.isfinite(target).sum()
    np.testing.assert_allclose(np.expm1(end[both]), target[both], rtol=1e-9, atol=1e-12)
    # and the anchors' realised paths are complete
    assert np.isfinite(realised_paths(day, day.anchors)).all()
