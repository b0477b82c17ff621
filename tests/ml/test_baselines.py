"""Baselines on the tiny synthetic market: fitted on day 1, forecasting day 3.

Shapes on the price grid, causality (the future does not move a forecast, the past does), the
spread factor's training coverage, reference checks of the volatilities against the features,
and the oracle beating every distributional baseline in CRPS.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest
import scoringrules as sr

from diffstock_ml.baselines import (
    BASELINES,
    DIRECTION_CLASSIFIERS,
    Baseline,
    Draws,
    EwmaGaussian,
    GarchT,
    GaussianHead,
    Oracle,
    RollingEmpirical,
    RollingGaussian,
    ScaleFit,
    StudentTHead,
    fit_spread_scale,
    mean_coverage,
    snap_returns,
)
from diffstock_ml.baselines.base import at_anchors
from diffstock_ml.train.profiles import PROFILES
from diffstock_ml.windows import DayArrays, load_day_arrays

TINY = PROFILES["tiny"]
FIT = ScaleFit(max_anchors=3_000)
HEAD_STEPS = 20
N_SAMPLES = 200
SCALED = [
    "rolling_gaussian",
    "ewma_gaussian",
    "garch_t",
    "empirical",
    "gaussian_head",
    "student_t_head",
]
CAUSAL = SCALED  # the heads' windows end at t too: checked alike


@pytest.fixture(scope="module")
def days(tiny_windows: list[Path]) -> list[DayArrays]:
    return [load_day_arrays(folder) for folder in tiny_windows]


@pytest.fixture(scope="module")
def train_day(days: list[DayArrays]) -> DayArrays:
    return days[0]


@pytest.fixture(scope="module")
def test_day(days: list[DayArrays]) -> DayArrays:
    return days[2]


@pytest.fixture(scope="module")
def fitted(train_day: DayArrays, tiny_market: Path) -> dict[str, Baseline]:
    baselines: dict[str, Baseline] = {
        "rolling_gaussian": RollingGaussian(scale_fit=FIT),
        "ewma_gaussian": EwmaGaussian(scale_fit=FIT),
        "garch_t": GarchT(scale_fit=FIT),
        "empirical": RollingEmpirical(scale_fit=FIT),
        "gaussian_head": GaussianHead(TINY.model, TINY.train, scale_fit=FIT),
        "student_t_head": StudentTHead(TINY.model, TINY.train, scale_fit=FIT),
        "oracle": Oracle.beside(tiny_market),
    }
    for seed, baseline in enumerate(baselines.values()):
        rng = np.random.default_rng(seed)
        if isinstance(baseline, GaussianHead | StudentTHead):
            baseline.fit([train_day], rng, max_steps=HEAD_STEPS)
        else:
            baseline.fit([train_day], rng)
    return baselines


def some_anchors(day: DayArrays, count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return day.anchors[np.sort(rng.choice(len(day.anchors), count, replace=False))]


def test_the_registry_names_every_distributional_baseline() -> None:
    assert set(BASELINES) == set(SCALED)
    assert all(BASELINES[name].name == name for name in BASELINES)
    assert set(DIRECTION_CLASSIFIERS) == {
        "lstm_direction",
        "transformer_direction",
        "image_cnn_direction",
    }


@pytest.mark.parametrize("name", [*SCALED, "oracle"])
def test_samples_are_returns_on_the_price_grid(fitted, test_day: DayArrays, name: str) -> None:
    anchors = some_anchors(test_day, 300, seed=1)
    samples = fitted[name].sample(test_day, anchors, N_SAMPLES, np.random.default_rng(0))
    assert samples.shape == (300, N_SAMPLES) and samples.dtype == np.float64
    assert np.isfinite(samples).all()
    k0 = np.round(at_anchors(test_day.close, anchors) / 0.01)[:, None]
    ticks = k0 * (1 + samples)
    assert np.abs(ticks - np.round(ticks)).max() < 1e-6, "every sample is a whole-tick move"
    assert (samples.std(axis=1) > 0).mean() > 0.9, "forecasts are not point masses"


def perturbed(day: DayArrays, t: int, past: bool, seed: int) -> DayArrays:
    """A copy of `day` whose seconds after t (or, if `past`, the 100 s up to t) are changed."""
    rng = np.random.default_rng(seed)
    span = slice(t - 99, t + 1) if past else slice(t + 1, None)
    arrays = {k: np.array(getattr(day, k)) for k in ("x", "target", "sigma", "close")}
    shape = arrays["close"][:, span].shape
    arrays["close"][:, span] *= np.exp(2e-3 * rng.standard_normal(shape))
    arrays["sigma"][:, span] *= 2.0
    arrays["target"][:, span] = 0.0
    arrays["x"][:, span] += rng.standard_normal(arrays["x"][:, span].shape).astype(np.float32)
    return dataclasses.replace(day, **arrays)


@pytest.mark.parametrize("name", CAUSAL)
def test_a_forecast_depends_on_the_past_and_never_on_the_future(
    fitted, test_day: DayArrays, name: str
) -> None:
    baseline = fitted[name]
    moved_by_past = False
    for t in (2_000, 9_001, 20_017):
        anchors = test_day.anchors[test_day.anchors[:, 1] == t]
        assert len(anchors) > 0

        def forecast(day: DayArrays, anchors=anchors) -> np.ndarray:
            return baseline.sample(day, anchors, 64, np.random.default_rng(3))

        before = forecast(test_day)
        np.testing.assert_array_equal(forecast(perturbed(test_day, t, False, t)), before)
        moved_by_past |= not np.array_equal(forecast(perturbed(test_day, t, True, t)), before)
    assert moved_by_past, f"{name} ignores the data before t"


@pytest.mark.parametrize("name", SCALED)
def test_the_spread_factor_brings_training_coverage_to_nominal(
    fitted, train_day: DayArrays, name: str
) -> None:
    baseline = fitted[name]
    assert 0.2 < baseline.scale < 5.0, "the factor is inside its search grid"
    anchors = some_anchors(train_day, 3_000, seed=2)
    samples = baseline.sample(train_day, anchors, N_SAMPLES, np.random.default_rng(4))
    target, close = at_anchors(train_day.target, anchors), at_anchors(train_day.close, anchors)
    assert mean_coverage(samples, target, close, 0.9) == pytest.approx(0.9, abs=0.03)


def test_root_30_times_one_second_volatility_over_covers_before_its_factor(
    fitted, train_day: DayArrays
) -> None:
    anchors = some_anchors(train_day, 3_000, seed=5)
    target, close = at_anchors(train_day.target, anchors), at_anchors(train_day.close, anchors)
    for name in ("rolling_gaussian", "ewma_gaussian"):
        draws = fitted[name].draw(train_day, anchors, N_SAMPLES, np.random.default_rng(6))
        unscaled = snap_returns(draws.center[:, None] + draws.deviations, close)
        assert mean_coverage(unscaled, target, close) > 0.95
        assert fitted[name].scale < 0.8


def test_fit_spread_scale_recovers_a_known_factor() -> None:
    rng = np.random.default_rng(0)
    deviations = rng.standard_normal((5_000, 200))  # unit forecasts ...
    target = 0.5 * rng.standard_normal(5_000)  # ... of targets with half their spread
    close = np.full(5_000, 1e7)  # a price so high that the grid does not matter
    factor = fit_spread_scale(Draws(np.zeros(5_000), deviations), close, target)
    assert factor == pytest.approx(0.5, rel=0.03)


def test_volatilities_match_the_feature_columns(test_day: DayArrays) -> None:
    ewma = EwmaGaussian(halflife_s=300).volatility_30s(test_day)
    np.testing.assert_allclose(ewma, test_day.sigma, rtol=1e-10)  # same half-life and floor
    rolling = RollingGaussian(window_s=300).volatility_30s(test_day)
    rv = test_day.x[:, :, test_day.feature_names.index("rv_300s")] * np.sqrt(30 / 300)
    known = np.isfinite(rv) & (rv > 1e-5)
    np.testing.assert_allclose(rolling[known], rv[known], rtol=1e-5)  # rv is float32


def test_garch_fits_finite_stationary_parameters(fitted, train_day: DayArrays) -> None:
    params = fitted["garch_t"].params
    assert set(params) == set(train_day.symbols)
    for p in params.values():
        values = np.array([p.mu, p.omega, p.alpha, p.beta, p.nu, p.initial_variance])
        assert np.isfinite(values).all() and p.converged
        assert p.omega > 0 and p.alpha >= 0 and p.beta >= 0 and p.alpha + p.beta < 1
        assert p.nu > 2 and p.n_returns > 700


@pytest.mark.parametrize("name", ["gaussian_head", "student_t_head"])
def test_the_heads_train_to_finite_parameters(fitted, test_day: DayArrays, name: str) -> None:
    head = fitted[name]
    assert len(head.losses) == HEAD_STEPS and np.isfinite(head.losses).all()
    loc, scale, df = head.parameters_at(test_day, some_anchors(test_day, 200, seed=7))
    assert np.isfinite(loc).all() and (scale > 0).all()
    assert (df is None) == (name == "gaussian_head")
    assert df is None or (df > 2).all()


@pytest.mark.parametrize("name", sorted(DIRECTION_CLASSIFIERS))
def test_direction_classifiers_give_probabilities(
    train_day: DayArrays, test_day: DayArrays, name: str
) -> None:
    classifier = DIRECTION_CLASSIFIERS[name](TINY.model, TINY.train)
    classifier.fit([train_day], np.random.default_rng(0), max_steps=10)
    assert len(classifier.losses) == 10 and np.isfinite(classifier.losses).all()
    p = classifier.prob_up(test_day, some_anchors(test_day, 300, seed=8))
    assert p.shape == (300,) and ((p >= 0) & (p <= 1)).all()


def test_the_oracle_beats_every_distributional_baseline_in_crps(
    fitted, test_day: DayArrays
) -> None:
    # 1000 anchors: the oracle's edge is ~0.35 bp (7 %) with a per-anchor sd near 2 bp
    anchors = some_anchors(test_day, 1_000, seed=9)
    target = at_anchors(test_day.target, anchors)
    crps_bp = {
        name: 1e4
        * sr.crps_ensemble(
            target,
            baseline.sample(test_day, anchors, N_SAMPLES, np.random.default_rng(10)),
            estimator="pwm",
        ).mean()
        for name, baseline in fitted.items()
    }
    oracle = crps_bp.pop("oracle")
    assert all(oracle < crps for crps in crps_bp.values()), (oracle, crps_bp)


def test_the_oracle_names_the_missing_latent_state(test_day: DayArrays, tmp_path: Path) -> None:
    oracle = Oracle.beside(tmp_path / "raw")
    with pytest.raises(
        FileNotFoundError, match=re.escape(str(tmp_path / "raw_latent" / "params.json"))
    ):
        oracle.fit([test_day], np.random.default_rng(0))
    with pytest.raises(FileNotFoundError, match=re.escape(f"raw_latent/{test_day.day}.parquet")):
        oracle.sample(test_day, test_day.anchors[:5], 10, np.random.default_rng(0))


def test_the_empirical_forecast_needs_enough_past_returns(test_day: DayArrays) -> None:
    early = np.array([[0, 60]], dtype=np.int32)  # 31 past 30 s returns at second 60
    with pytest.raises(ValueError, match="second 60 has 31 past 30 s returns"):
        RollingEmpirical().sample(test_day, early, 10, np.random.default_rng(0))


def test_fit_spread_scale_counts_coverage_exactly_as_the_report() -> None:
    """The fast search equals snapping every candidate's samples and reading the report's PIT
    coverage: the factor it picks is the grid point nearest to nominal by `mean_coverage`."""
    rng = np.random.default_rng(1)
    close = rng.choice([9.87, 14.02, 55.5], 800)  # cheap names: the grid matters
    center = 2e-5 * rng.standard_normal(800)
    deviations = 4e-4 * rng.standard_t(4, (800, 60))
    target = snap_returns((5e-4 * rng.standard_t(4, 800))[:, None], close)[:, 0]
    config = ScaleFit(points=41, low=0.5, high=2.0)
    factor = fit_spread_scale(Draws(center, deviations), close, target, config)
    coverage = [
        mean_coverage(snap_returns(center[:, None] + c * deviations, close), target, close)
        for c in config.grid()
    ]
    assert factor == pytest.approx(config.grid()[np.argmin(np.abs(np.array(coverage) - 0.9))])
