"""Randomised PIT: uniform for calibrated forecasts, with and without ties on a price grid."""

import numpy as np
import pytest
from scipy import stats

from diffstock_ml.evaluation import (
    central_coverage,
    pit_histogram,
    pit_interval,
    pit_uniformity_pvalue,
    randomised_pit,
    reliability,
)

TOL = 1e-9


def test_pit_of_a_correct_gaussian_forecast_is_uniform() -> None:
    rng = np.random.default_rng(0)
    n, s = 5_000, 200
    target = rng.normal(size=n)
    ordered = np.sort(rng.normal(size=(n, s)), axis=1)
    pit = randomised_pit(ordered, target, TOL, rng)
    assert stats.kstest(pit, "uniform").pvalue > 0.01
    assert pit_uniformity_pvalue(pit, 10) > 0.01


def test_pit_of_a_too_narrow_forecast_is_u_shaped_and_rejected() -> None:
    rng = np.random.default_rng(1)
    target = rng.normal(size=5_000)
    ordered = np.sort(0.5 * rng.normal(size=(5_000, 100)), axis=1)
    counts = pit_histogram(randomised_pit(ordered, target, TOL, rng), 10)
    assert counts[0] > 2 * counts[5] and counts[-1] > 2 * counts[5]
    assert pit_uniformity_pvalue(randomised_pit(ordered, target, TOL, rng), 10) < 1e-6


def test_randomised_pit_is_uniform_for_a_discretised_forecast_with_ties() -> None:
    # Target and samples on a coarse grid (5 to 7 distinct values carry nearly all mass): the
    # plain PIT (share of samples <= y) piles up; the randomised PIT is uniform.
    rng = np.random.default_rng(2)
    n, s = 5_000, 100
    target = np.round(rng.normal(size=n) / 0.75) * 0.75
    ordered = np.sort(np.round(rng.normal(size=(n, s)) / 0.75) * 0.75, axis=1)
    lower, upper = pit_interval(ordered, target, TOL)
    assert np.mean(upper - lower > 0.1) > 0.8  # ties are the rule here
    plain = (ordered <= target[:, None] + TOL).mean(axis=1)
    assert pit_uniformity_pvalue(plain, 10) < 1e-10
    pit = randomised_pit(ordered, target, TOL, rng)
    assert pit_uniformity_pvalue(pit, 10) > 0.01
    assert stats.kstest(pit, "uniform").pvalue > 0.01


def test_central_coverage_is_nominal_for_a_calibrated_discrete_forecast() -> None:
    rng = np.random.default_rng(3)
    n, s = 20_000, 50
    target = np.round(rng.normal(size=n) / 0.75) * 0.75
    ordered = np.sort(np.round(rng.normal(size=(n, s)) / 0.75) * 0.75, axis=1)
    lower, upper = pit_interval(ordered, target, TOL)
    for level in (0.5, 0.8, 0.9, 0.95):
        assert central_coverage(lower, upper, level).mean() == pytest.approx(level, abs=0.01)


def test_central_coverage_gives_partial_credit_to_ties_only() -> None:
    lower = np.array([0.0, 0.5, 0.04, 0.99])
    upper = np.array([0.01, 0.51, 0.06, 1.0])
    np.testing.assert_allclose(central_coverage(lower, upper, 0.9), [0.0, 1.0, 0.5, 0.0])


def test_pit_interval_counts_ties_within_tolerance() -> None:
    ordered = np.array([[-2.0, -1.0, 0.0, 0.0, 0.0 + 1e-12, 1.0]])
    lower, upper = pit_interval(ordered, np.array([0.0]), 1e-9)
    assert (lower[0], upper[0]) == (pytest.approx(2 / 7), pytest.approx(6 / 7))


def test_reliability_reads_the_share_below_each_level() -> None:
    pit = np.array([0.05, 0.15, 0.5, 0.95])
    np.testing.assert_allclose(reliability(pit, np.array([0.1, 0.5, 0.9])), [0.25, 0.75, 0.75])
