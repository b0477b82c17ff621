"""Trial scoring uses the report's definitions: a calibrated forecast scores nominal."""

import numpy as np
import pytest

from diffstock_ml.baselines import ScaleFit, snap_returns
from diffstock_ml.baselines.volatility import EwmaGaussian, RollingGaussian
from diffstock_ml.evaluation import crps_bp
from diffstock_ml.experiments import ScoreConfig, paired_difference, score_models, score_samples
from diffstock_ml.forecasting import model_rng
from diffstock_ml.windows import load_day_arrays


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


def test_each_model_is_scored_from_its_own_stream(tiny_windows) -> None:
    """`score_models` draws every model from `model_rng(name, seed)`: a model's scores are the
    same alone and after another model (with one shared generator they moved)."""

    train, val = (load_day_arrays(folder) for folder in tiny_windows[:2])
    fit = ScaleFit(max_anchors=300, n_samples=50)
    models = {
        "rolling_gaussian": RollingGaussian(scale_fit=fit),
        "ewma_gaussian": EwmaGaussian(scale_fit=fit),
    }
    for name, model in models.items():
        model.fit([train], model_rng(name, 0))
    config = ScoreConfig(anchor_stride_s=60, n_samples=20)
    alone = score_models({"ewma_gaussian": models["ewma_gaussian"]}, [val], config)
    after = score_models(models, [val], config)
    np.testing.assert_array_equal(
        after["ewma_gaussian"].per_anchor, alone["ewma_gaussian"].per_anchor
    )
    reseeded = score_models(
        {"ewma_gaussian": models["ewma_gaussian"]},
        [val],
        ScoreConfig(anchor_stride_s=60, n_samples=20, seed=1),
    )
    assert not np.array_equal(
        reseeded["ewma_gaussian"].per_anchor, alone["ewma_gaussian"].per_anchor
    )
