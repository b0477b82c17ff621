"""CRPS (fair ensemble estimator) against references, skill, interval score and median errors."""

import numpy as np
import properscoring as ps
import pytest
from scipy import stats

from diffstock_ml.evaluation import crps_bp, crps_skill, interval_score_bp
from diffstock_ml.evaluation.scores import BP, direction_probabilities


def gaussian_crps(mu: np.ndarray, sd: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Closed-form CRPS of N(mu, sd²) at y (Gneiting & Raftery 2007, eq. 5)."""
    z = (y - mu) / sd
    return sd * (z * (2 * stats.norm.cdf(z) - 1) + 2 * stats.norm.pdf(z) - 1 / np.sqrt(np.pi))


def test_crps_matches_properscoring_with_the_fair_correction() -> None:
    # properscoring's ensemble CRPS is the plug-in (biased) one: mean|X − y| − Σ|Xi − Xj|/(2m²);
    # the fair estimator divides the spread term by 2m(m − 1) instead.
    rng = np.random.default_rng(0)
    samples = rng.normal(0, 2e-4, size=(50, 8))
    target = rng.normal(0, 2e-4, size=50)
    m = samples.shape[1]
    spread = np.abs(samples[:, :, None] - samples[:, None, :]).sum(axis=(1, 2))
    fair = ps.crps_ensemble(target, samples) - 0.5 * spread * (1 / (m * (m - 1)) - 1 / m**2)
    np.testing.assert_allclose(crps_bp(samples, target), fair * BP, rtol=1e-10)


def test_presorted_samples_give_the_same_crps() -> None:
    rng = np.random.default_rng(1)
    samples = rng.normal(size=(20, 30))
    target = rng.normal(size=20)
    np.testing.assert_allclose(
        crps_bp(np.sort(samples, axis=1), target, presorted=True), crps_bp(samples, target)
    )


def test_large_gaussian_ensemble_matches_the_closed_form() -> None:
    rng = np.random.default_rng(2)
    mu, sd = rng.normal(0, 1e-4, 40), rng.uniform(1e-4, 5e-4, 40)
    target = mu + sd * rng.normal(size=40)
    samples = mu[:, None] + sd[:, None] * rng.normal(size=(40, 20_000))
    expected = gaussian_crps(mu, sd, target) * BP
    np.testing.assert_allclose(crps_bp(samples, target), expected, rtol=0.02, atol=0.01)


def test_fair_estimator_is_unbiased_for_tiny_ensembles_while_the_plugin_is_not() -> None:
    # Many 4-member ensembles from N(0, 1) scored at y ~ N(0, 1): the mean fair CRPS equals
    # E CRPS(N(0, 1), y) = 1/sqrt(pi); the plug-in estimator is biased up by E|X − X'|/(2m).
    rng = np.random.default_rng(3)
    n, m = 40_000, 4
    samples, target = rng.normal(size=(n, m)), rng.normal(size=n)
    truth = 1 / np.sqrt(np.pi)
    fair = crps_bp(samples, target).mean() / BP
    plugin = ps.crps_ensemble(target, samples).mean()
    assert fair == pytest.approx(truth, rel=0.01)
    assert plugin == pytest.approx(truth + (2 / np.sqrt(np.pi)) / (2 * m), rel=0.01)


def test_crps_skill_is_relative_improvement_of_mean_crps() -> None:
    assert crps_skill(np.array([1.0, 2.0]), np.array([2.0, 2.0])) == pytest.approx(0.25)
    assert crps_skill(np.array([3.0]), np.array([2.0])) == pytest.approx(-0.5)
    with pytest.raises(ValueError, match="baseline mean CRPS"):
        crps_skill(np.array([1.0]), np.array([0.0]))


def test_interval_score_is_width_plus_scaled_miss_distance() -> None:
    lower, upper = np.full(3, -1e-4), np.full(3, 1e-4)
    target = np.array([0.0, 3e-4, -2e-4])  # inside, 2 bp above, 1 bp below
    # alpha = 0.1: width 2 bp, penalty (2 / 0.1) x distance
    expected = np.array([2.0, 2.0 + 20 * 2.0, 2.0 + 20 * 1.0])
    np.testing.assert_allclose(interval_score_bp(lower, upper, target, 0.9), expected)


def test_direction_probabilities_ignore_exact_zero_moves() -> None:
    ordered = np.sort(np.array([[-1e-4, 0.0, 0.0, 0.0, 1e-4, 2e-4]]), axis=1)
    up, down = direction_probabilities(ordered, np.array([1e-9]))
    assert (up[0], down[0]) == (pytest.approx(2 / 6), pytest.approx(1 / 6))
