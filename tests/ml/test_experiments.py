"""Trial scoring uses the report's definitions: a calibrated forecast scores nominal."""

import numpy as np
import pytest

from diffstock_ml.baselines import snap_returns
from diffstock_ml.evaluation import crps_bp
from diffstock_ml.experiments import paired_difference, score_samples


def test_a_calibrated_snapped_forecast_scores_nominal_coverage_and_an_unbiased_median() -> None:
    rng = np.random.default_rng(0)
    close = rng.choice([9.5, 14.0, 80.0], 4_000)  # cheap names: many ties on the grid
    scale = 6e-4 * rng.uniform(0.5, 2.0, 4_000)
    draws = scale[:, None] * rng.standard_t(5, (4_000, 101))
    samples = snap_returns(draws[:, 1:], close)
    target = snap_returns(draws[:, :1], close)[:, 0]  # exchangeable with the samples
    scores = score_samples(samples, target, close)
    for level, coverage in scores.coverage.items():
        assert coverage == pytest.approx(int(level) / 100, abs=0.02)
    assert scores.median_below == pytest.approx(0.5, abs=0.02)
    assert scores.crps_bp == pytest.approx(crps_bp(samples, target).mean())
    assert scores.anchors == 4_000


def test_a_shifted_forecast_shows_in_the_median_share() -> None:
    rng = np.random.default_rng(1)
    close = np.full(4_000, 1e6)  # a grid so fine that it does not matter
    samples = rng.standard_normal((4_000, 100)) + 0.3  # median too high
    target = rng.standard_normal(4_000)
    assert score_samples(samples * 1e-4, target * 1e-4, close).median_below > 0.58


def test_paired_difference_compares_the_same_anchors_and_refuses_others() -> None:
    rng = np.random.default_rng(2)
    close = np.full(2_000, 1e6)
    target = rng.standard_normal(2_000) * 1e-4
    right = score_samples(rng.standard_normal((2_000, 50)) * 1e-4, target, close)
    wide = score_samples(rng.standard_normal((2_000, 50)) * 3e-4, target, close)
    worse = paired_difference(wide, right)
    assert worse["crps_pct"] == pytest.approx(100 * (wide.crps_bp / right.crps_bp - 1))
    assert worse["crps_pct"] > 10 * worse["crps_se_pct"] > 0  # the true spread wins clearly
    assert paired_difference(right, right) == {"crps_pct": 0.0, "crps_se_pct": 0.0}
    fewer = score_samples(rng.standard_normal((10, 50)) * 1e-4, target[:10], close[:10])
    with pytest.raises(ValueError, match="same anchors"):
        paired_difference(fewer, right)
