"""Pinball loss, wQL and the binned Wasserstein distances against closed forms and hand sums;
the forecasts table's q01…q99 columns against numpy's quantiles of the samples."""

import numpy as np
import polars as pl
import pytest
from scipy import stats

from diffstock_ml.evaluation import Anchors, ModelForecasts, evaluate
from diffstock_ml.evaluation.distance import spread_bins, wasserstein_pit, wasserstein_z
from diffstock_ml.evaluation.quantiles import (
    QUANTILE_LEVELS,
    pinball_bp,
    pinball_column,
    quantile_columns,
    quantile_name,
    weighted_quantile_loss,
)
from diffstock_ml.forecasting import quantile_series, to_model_forecasts

BP = 1e4


def test_the_stored_levels_and_their_names() -> None:
    assert QUANTILE_LEVELS == (0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)
    names = [quantile_name(level) for level in QUANTILE_LEVELS]
    assert names == ["q01", "q05", "q10", "q25", "q50", "q75", "q90", "q95", "q99"]
    assert pinball_column(0.05) == "pinball_q05_bp"
    with pytest.raises(ValueError, match="whole percent"):
        quantile_name(0.975)


def test_the_served_model_returns_the_same_levels() -> None:
    from diffstock_assets.model import pyfunc

    assert pyfunc.QUANTILE_LEVELS is QUANTILE_LEVELS


def test_expected_pinball_loss_of_the_true_quantile_has_its_closed_form() -> None:
    """For y ~ N(0, s²) and q its true α-quantile, E[pinball] = s·φ(Φ⁻¹(α))."""
    rng = np.random.default_rng(0)
    s = 3e-4
    target = s * rng.standard_normal(400_000)
    alpha = np.asarray(QUANTILE_LEVELS)
    true_q = s * stats.norm.ppf(alpha)
    loss = pinball_bp(np.tile(true_q, (len(target), 1)), target)  # [B, 9]
    expected = s * stats.norm.pdf(stats.norm.ppf(alpha)) * BP
    np.testing.assert_allclose(loss.mean(axis=0), expected, rtol=0.01)


def test_pinball_by_hand_and_wql_as_gluonts_defines_it() -> None:
    """Two anchors, two levels, worked out by hand (returns in bp units to keep numbers small)."""
    quantile_values = np.array([[-2.0, 1.0], [0.0, 3.0]]) / BP  # [B=2, L=2]
    target = np.array([1.0, -1.0]) / BP
    levels = (0.1, 0.9)
    loss = pinball_bp(quantile_values, target, levels)
    # anchor 1: y=1 above q=-2 -> 0.1*3 = 0.3; y=1 at q=1 -> 0.
    # anchor 2: y=-1 below q=0 -> 0.9*1 = 0.9; y=-1 below q=3 -> 0.1*4 = 0.4.
    np.testing.assert_allclose(loss, [[0.3, 0.0], [0.9, 0.4]], atol=1e-12)
    # wQL_α = 2 Σ pinball / Σ|y| = 2 (0.3 + 0.9) / 2 and 2 (0 + 0.4) / 2.
    np.testing.assert_allclose(weighted_quantile_loss(loss, target), [1.2, 0.4])
    assert np.isnan(weighted_quantile_loss(loss, np.zeros(2))).all()
    frame = pl.DataFrame({pinball_column(q): loss[:, i] for i, q in enumerate(levels)})
    columns = quantile_columns(frame, target, levels)
    assert columns["pinball_q10_bp"] == pytest.approx(0.6)
    assert columns["pinball_mean_bp"] == pytest.approx(0.4)
    assert columns["wql_q90"] == pytest.approx(0.4) and columns["wql"] == pytest.approx(0.8)


def gaussian_case(scale: float, n: int = 20_000, s: int = 64, seed: int = 1) -> tuple:
    """Outcomes N(0, sigma²) with sigma varying by anchor; forecasts N(0, (scale·sigma)²)."""
    rng = np.random.default_rng(seed)
    sigma = 5e-4 * np.exp(0.5 * rng.standard_normal(n))
    target = sigma * rng.standard_normal(n)
    samples = scale * sigma[:, None] * rng.standard_normal((n, s))
    return samples, target, sigma


def test_wasserstein_is_near_zero_when_calibrated_and_large_when_mis_scaled() -> None:
    calibrated = gaussian_case(1.0)
    bins = spread_bins(calibrated[0], 10)
    assert sorted(np.unique(bins)) == list(range(1, 11))
    near_zero = wasserstein_z(*calibrated, bins)
    assert near_zero.shape == (10,) and near_zero.mean() < 0.05
    wide = gaussian_case(2.0)
    # W1(N(0, 1), N(0, 2²)) = (2 − 1)·√(2/π) ≈ 0.80 in units of sigma
    far = wasserstein_z(*wide, spread_bins(wide[0], 10))
    assert far.mean() == pytest.approx(np.sqrt(2 / np.pi), rel=0.1)


def test_pit_wasserstein_against_the_uniform() -> None:
    rng = np.random.default_rng(2)
    bins = np.repeat([1, 2], 5_000)
    uniform = wasserstein_pit(rng.random(10_000), bins)
    assert uniform.shape == (2,) and uniform.max() < 0.02
    # a PIT always at ½ (far too wide forecasts): W1 = ∫|1{u ≥ ½} − u| du = 1/4
    assert wasserstein_pit(np.full(10_000, 0.5), bins) == pytest.approx([0.25, 0.25], abs=1e-3)


def test_evaluate_reports_the_quantile_and_distance_columns() -> None:
    samples, target, sigma = gaussian_case(1.0, n=3_000)
    n = len(target)
    anchors = Anchors(
        target=target,
        symbol=np.array(["A", "B", "C"]).repeat(n // 3),
        ts=np.tile(np.arange(n // 3) * 30, 3) + 1_762_180_200,
        seconds_since_open=np.tile(np.arange(n // 3) * 30.0, 3),
        sigma=sigma,
        close=np.full(n, 1e6),  # a fine price grid: continuous returns are unaffected
    )
    result = evaluate(
        {
            "calibrated": ModelForecasts(samples, anchors, latency_ms=0.5),
            "wide": ModelForecasts(2 * samples, anchors),
        }
    )
    row = result.overall.row(0, named=True)
    for level in QUANTILE_LEVELS:
        assert row[pinball_column(level)] > 0
        assert f"wql_{quantile_name(level)}" in result.overall.columns
    assert row["pinball_mean_bp"] == pytest.approx(
        np.mean([row[pinball_column(q)] for q in QUANTILE_LEVELS])
    )
    wide = result.overall.row(1, named=True)
    assert wide["wql"] > row["wql"] and wide["pinball_mean_bp"] > row["pinball_mean_bp"]
    assert wide["wasserstein_z"] > 0.5 > 0.1 > row["wasserstein_z"]
    assert wide["wasserstein_pit"] > 0.05 > 0.03 > row["wasserstein_pit"]
    assert row["latency_ms"] == 0.5 and wide["latency_ms"] is None
    assert "calibrated/wql" in result.metrics() and "wide/latency_ms" not in result.metrics()


def test_forecast_quantile_columns_are_numpy_quantiles_of_the_samples() -> None:
    rng = np.random.default_rng(3)
    samples = rng.standard_normal((50, 37))
    frame = pl.DataFrame(quantile_series(samples))
    assert frame.columns == [quantile_name(q) for q in QUANTILE_LEVELS]
    np.testing.assert_allclose(frame.to_numpy(), np.quantile(samples, QUANTILE_LEVELS, axis=1).T)


def test_latency_of_a_model_is_its_total_time_over_all_its_anchors() -> None:
    rows = []
    for model, latencies in {"a": (1.0, 4.0), "b": (2.0, 2.0)}.items():
        for day, (count, latency) in enumerate(zip((1, 3), latencies, strict=True)):
            for i in range(count):
                rows.append((model, f"2025110{day + 3}", f"S{i}", i, 1e-4, latency))
    table = pl.DataFrame(
        rows, schema=["model", "day", "symbol", "second", "target", "latency_ms"], orient="row"
    ).with_columns(
        samples=pl.lit([0.0, 1e-4], dtype=pl.Array(pl.Float64, 2)),
        ts=pl.datetime(2025, 11, 3, 14, 30, time_zone="UTC"),
        seconds_since_open=pl.lit(0.0),
        sigma=pl.lit(1e-4),
        close=pl.lit(10.0),
        last_1s_return=pl.lit(0.0),
    )
    forecasts = to_model_forecasts(table)
    # a: 1 anchor at 1 ms and 3 at 4 ms -> 13 ms over 4 anchors
    assert forecasts["a"].latency_ms == pytest.approx(13 / 4)
    assert forecasts["b"].latency_ms == pytest.approx(2.0)
    assert to_model_forecasts(table.drop("latency_ms"))["a"].latency_ms is None
