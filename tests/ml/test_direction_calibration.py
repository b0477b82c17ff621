"""Direction classifiers' probabilities calibrated on validation days, and the threshold rule.

Platt and isotonic calibration lower the Brier score of deliberately over-confident
probabilities out of sample and agree with scikit-learn's; the reliability table by hand; the
threshold and the calibrators depend on the validation rows only (changing the test rows'
outcomes changes neither).
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy import special

from diffstock_ml.evaluation import EvaluationConfig
from diffstock_ml.evaluation.direction_calibration import (
    brier_score,
    calibrate_directions,
    confidence_signal,
    expected_calibration_error,
    fit_isotonic,
    fit_platt,
    log_loss,
    reliability_table,
)


def overconfident(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Outcomes drawn with P(up) in [0.35, 0.65], reported as sigmoid(3 · logit) + a tilt."""
    rng = np.random.default_rng(seed)
    truth = rng.uniform(0.35, 0.65, n)
    up = rng.random(n) < truth
    reported = special.expit(3 * special.logit(truth) + 0.3)
    return reported, up


@pytest.mark.parametrize("fit", [fit_platt, fit_isotonic])
def test_calibration_on_validation_lowers_the_test_brier_score(fit) -> None:
    p_val, up_val = overconfident(20_000, seed=0)
    p_test, up_test = overconfident(20_000, seed=1)
    calibrate = fit(p_val, up_val)
    raw, calibrated = brier_score(p_test, up_test), brier_score(calibrate(p_test), up_test)
    assert calibrated < raw - 0.002, (raw, calibrated)
    assert log_loss(calibrate(p_test), up_test) < log_loss(p_test, up_test)
    ece = [
        expected_calibration_error(reliability_table(q, up_test))
        for q in (p_test, calibrate(p_test))
    ]
    assert ece[1] < ece[0] / 2, ece


def test_platt_and_isotonic_agree_with_scikit_learn() -> None:
    sklearn = pytest.importorskip("sklearn")
    from sklearn.isotonic import IsotonicRegression
    from sklearn.linear_model import LogisticRegression

    assert sklearn  # the reference implementations
    p, up = overconfident(3_000, seed=2)
    p = np.round(p, 3)  # ties, pooled alike
    grid = np.linspace(0.01, 0.99, 99)
    reference = IsotonicRegression(out_of_bounds="clip").fit(p, up).predict(grid)
    np.testing.assert_allclose(fit_isotonic(p, up)(grid), reference, atol=1e-12)
    logistic = LogisticRegression(C=np.inf, tol=1e-10, max_iter=1_000)
    logistic.fit(special.logit(p)[:, None], up)
    reference = logistic.predict_proba(special.logit(grid)[:, None])[:, 1]
    np.testing.assert_allclose(fit_platt(p, up)(grid), reference, atol=1e-5)


def test_the_reliability_table_by_hand() -> None:
    p = np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.8])
    up = np.array([False, False, True, True, True, False])
    table = reliability_table(p, up, bins=2)
    assert table["n"].to_list() == [3, 3]
    assert table["mean_predicted"].to_list() == pytest.approx([0.2, 0.7])
    assert table["observed"].to_list() == pytest.approx([1 / 3, 2 / 3])
    assert expected_calibration_error(table) == pytest.approx((2 / 15 + 1 / 30) / 2)
    assert brier_score(p, up) == pytest.approx((0.01 + 0.04 + 0.49 + 0.16 + 0.09 + 0.64) / 6)


def test_the_confidence_rule_trades_only_beyond_the_threshold() -> None:
    p = np.array([0.40, 0.49, 0.5, 0.52, 0.7])
    assert confidence_signal(p, 0.05).tolist() == [-1.0, 0.0, 0.0, 0.0, 1.0]
    assert confidence_signal(p, 0.0).tolist() == [-1.0, -1.0, 0.0, 1.0, 1.0]


def direction_table(split: str, day: str, confident_right: bool, seed: int) -> pl.DataFrame:
    """Twelve symbols on a 120 s grid: confident calls (|p − 0.5| = 0.2) right and the rest
    wrong when `confident_right`, the other way round otherwise."""
    rng = np.random.default_rng(seed)
    seconds = np.arange(120, 23_400, 120)
    symbol = np.repeat([f"S{i}" for i in range(12)], len(seconds))
    second = np.tile(seconds, 12)
    confident = rng.random(len(second)) < 0.3
    call = rng.choice([-1.0, 1.0], len(second))
    p = 0.5 + call * np.where(confident, 0.2, 0.02)
    right = confident == confident_right
    size = np.exp(rng.normal(np.log(5e-4), 0.3, len(second)))
    target = np.where(right, call, -call) * size
    start = np.datetime64(f"{day[:4]}-{day[4:6]}-{day[6:]}T14:30", "s").astype(np.int64)
    return pl.DataFrame(
        {
            "day": day,
            "symbol": symbol,
            "second": second,
            "ts": pl.from_epoch(pl.Series(start + second), time_unit="s").dt.replace_time_zone(
                "UTC"
            ),
            "target": target,
            "close": 50.0,
            "split": split,
            "prob_up_clf": p,
        }
    )


def test_the_threshold_and_calibrators_are_chosen_on_validation_days_only() -> None:
    val = direction_table("val", "20250102", confident_right=True, seed=0)
    test = direction_table("test", "20250103", confident_right=False, seed=1)
    config = EvaluationConfig(fees_bp=0.0, half_spread_bp=0.0)
    result = calibrate_directions(pl.concat([val, test]), config)
    raw = result.thresholds.filter(pl.col("method") == "raw").row(0, named=True)
    # on validation only the confident calls pay: the rule keeps those (|p − 0.5| = 0.2)
    assert 0.02 <= raw["threshold"] < 0.2
    assert raw["val_accuracy"] == 1.0 and raw["val_coverage"] == pytest.approx(0.3, abs=0.03)
    assert raw["test_accuracy"] == 0.0  # the test days punish it: they were not looked at

    # the test rows' outcomes reversed: the same thresholds and calibration maps
    flipped = test.with_columns(pl.col("target") * -1)
    again = calibrate_directions(pl.concat([val, flipped]), config)
    assert again.thresholds["threshold"].to_list() == result.thresholds["threshold"].to_list()
    predicted = result.reliability["mean_predicted"].to_list()
    assert again.reliability["mean_predicted"].to_list() == predicted
    assert result.scores["method"].to_list() == ["raw", "platt", "isotonic"]
    assert set(result.reliability["model"]) == {"clf"}


def test_a_table_without_validation_rows_is_refused() -> None:
    test = direction_table("test", "20250103", confident_right=False, seed=1)
    with pytest.raises(ValueError, match="no val rows"):
        calibrate_directions(test)
    with pytest.raises(ValueError, match="no `split` column"):
        calibrate_directions(test.drop("split"))
