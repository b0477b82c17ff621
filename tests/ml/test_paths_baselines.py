"""Path baselines on the tiny synthetic market: fitted on day 1, drawing paths on day 3.

Prices on the tick grid at every second, end points distributed as the scalar baselines'
forecasts, the spread factor matching theirs and covering 90 % of training end points,
causality, and oracle paths that are one path each rather than independent horizons.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from diffstock_ml.baselines import EwmaGaussian, GarchT, ScaleFit
from diffstock_ml.baselines.base import Baseline, at_anchors, fit_spread_scale
from diffstock_ml.evaluation.calibration import interval_coverage
from diffstock_ml.market import HORIZON_S, TICK
from diffstock_ml.paths import (
    EwmaRandomWalk,
    GarchTPaths,
    OraclePaths,
    PathBaseline,
    realised_paths,
    snap_paths,
)
from diffstock_ml.windows import DayArrays, load_day_arrays

FIT = ScaleFit(max_anchors=2_000, n_samples=100)
N_ANCHORS = 200
N_SAMPLES = 100


@pytest.fixture(scope="module")
def days(tiny_windows: list[Path]) -> list[DayArrays]:
    return [load_day_arrays(folder) for folder in tiny_windows]


@pytest.fixture(scope="module")
def anchors(days: list[DayArrays]) -> np.ndarray:
    """`N_ANCHORS` anchors of the test day (every symbol, spread over the session)."""
    rows = np.random.default_rng(0).choice(len(days[2].anchors), N_ANCHORS, replace=False)
    return days[2].anchors[np.sort(rows)]


@pytest.fixture(scope="module")
def fitted(days: list[DayArrays], tiny_market: Path) -> dict[str, PathBaseline]:
    baselines = {
        "ewma_random_walk": EwmaRandomWalk(scale_fit=FIT),
        "garch_t_paths": GarchTPaths(scale_fit=FIT),
        "oracle_paths": OraclePaths.beside(tiny_market),
    }
    for seed, baseline in enumerate(baselines.values()):
        baseline.fit(days[:1], np.random.default_rng(seed))
    return baselines


@pytest.fixture(scope="module")
def scalar(days: list[DayArrays]) -> dict[str, Baseline]:
    """The scalar baselines the path baselines extend, fitted alike."""
    baselines = {"ewma_random_walk": EwmaGaussian(scale_fit=FIT), "garch_t_paths": GarchT(FIT)}
    for seed, baseline in enumerate(baselines.values()):
        baseline.fit(days[:1], np.random.default_rng(seed))
    return baselines


@pytest.mark.parametrize("name", ["ewma_random_walk", "garch_t_paths", "oracle_paths"])
def test_every_sampled_price_lies_on_the_tick_grid(
    fitted, days: list[DayArrays], anchors: np.ndarray, name: str
) -> None:
    paths = fitted[name].sample_paths(days[2], anchors, N_SAMPLES, np.random.default_rng(1))
    assert paths.shape == (N_ANCHORS, N_SAMPLES, HORIZON_S)
    assert np.isfinite(paths).all()
    ticks = at_anchors(days[2].close, anchors)[:, None, None] * np.exp(paths) / TICK
    np.testing.assert_allclose(ticks, np.round(ticks), rtol=0, atol=1e-6)
    assert (np.diff(paths, axis=-1) != 0).any()  # the paths move


def test_snapping_moves_a_price_to_the_nearest_tick() -> None:
    close = np.array([14.0])
    paths = np.log(np.array([[[14.004, 14.006, 13.9951]]]) / 14.0)
    expected = np.log(np.array([14.00, 14.01, 14.00]) / 14.0)
    np.testing.assert_allclose(snap_paths(paths, close)[0, 0], expected, atol=1e-15)


@pytest.mark.parametrize("name", ["ewma_random_walk", "garch_t_paths"])
def test_the_end_point_is_distributed_as_the_scalar_forecast(
    fitted, scalar, days: list[DayArrays], anchors: np.ndarray, name: str
) -> None:
    """Same scales per anchor, so the pooled end points of both have one distribution."""
    end = fitted[name].draw_paths(days[2], anchors, N_SAMPLES, np.random.default_rng(2))
    draws = scalar[name].draw(days[2], anchors, N_SAMPLES, np.random.default_rng(3))
    np.testing.assert_allclose(end.center[:, -1], draws.center, atol=1e-15)
    assert stats.ks_2samp(end.deviations[:, :, -1].ravel(), draws.deviations.ravel()).pvalue > 1e-3
    # and a path's variance grows linearly with the horizon, as a random walk's
    spread = end.deviations.std(axis=1).mean(axis=0)  # [H]
    np.testing.assert_allclose(spread / spread[-1], np.sqrt(np.arange(1, 31) / 30), rtol=0.1)


@pytest.mark.parametrize("name", ["ewma_random_walk", "garch_t_paths"])
def test_end_points_drawn_alone_are_the_paths_last_second(
    fitted, days: list[DayArrays], anchors: np.ndarray, name: str
) -> None:
    """What the spread factor is fitted on, drawn without the 29 seconds before it: the same
    centre, and deviations of the same distribution as the paths' last second."""
    baseline = fitted[name]
    alone = baseline.draw_end_points(days[2], anchors, N_SAMPLES, np.random.default_rng(6))
    paths = baseline.draw_paths(days[2], anchors, N_SAMPLES, np.random.default_rng(7))
    np.testing.assert_allclose(alone.center, paths.center[:, -1], atol=1e-15)
    assert alone.deviations.shape == (N_ANCHORS, N_SAMPLES)
    ends = paths.deviations[:, :, -1]
    assert stats.ks_2samp(alone.deviations.ravel(), ends.ravel()).pvalue > 1e-3
    # per anchor too: the spread of each anchor's draws agrees within sampling error (~7 %)
    ratio = alone.deviations.std(axis=1) / ends.std(axis=1)
    assert np.median(ratio) == pytest.approx(1.0, abs=0.03)


def test_garch_paths_carry_the_student_t_tails_of_the_fit(
    scalar, days: list[DayArrays], anchors: np.ndarray
) -> None:
    """With ν = 4 (the tiny market's fits have ν > 10, close to Gaussian) the end points are
    the scalar forecast's Student-t, and a Gaussian of the same variance is told apart."""
    fit = scalar["garch_t_paths"]
    paths, garch = GarchTPaths(), GarchT()
    for model in (paths.garch, garch):  # the fitted parameters with ν = 4
        model.params = {s: dataclasses.replace(p, nu=4.0) for s, p in fit.params.items()}
        model.pooled = dataclasses.replace(fit.pooled, nu=4.0)
    end = paths.draw_paths(days[2], anchors, N_SAMPLES, np.random.default_rng(8))
    draws = garch.draw(days[2], anchors, N_SAMPLES, np.random.default_rng(9))
    ends, scalar_ends = end.deviations[:, :, -1], draws.deviations
    assert stats.ks_2samp(ends.ravel(), scalar_ends.ravel()).pvalue > 1e-3
    sd = scalar_ends.std(axis=1, keepdims=True)
    gaussian = sd * np.random.default_rng(10).standard_normal(scalar_ends.shape)
    assert stats.ks_2samp(ends.ravel(), gaussian.ravel()).pvalue < 1e-3


@pytest.mark.parametrize("name", ["ewma_random_walk", "garch_t_paths"])
def test_the_spread_factor_is_the_scalar_baselines(fitted, scalar, name: str) -> None:
    """Same training anchors, other draws: equal up to Monte Carlo noise (the coverage of
    2,000 anchors has a standard error of ~0.007, ~2 % of the factor)."""
    assert fitted[name].scale != 1.0
    assert fitted[name].scale / scalar[name].scale == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("name", ["ewma_random_walk", "garch_t_paths"])
def test_fitted_paths_cover_90_percent_of_training_end_points(
    fitted, days: list[DayArrays], name: str
) -> None:
    """The factor is fitted in `fit_spread_scale`'s simple-return arithmetic; coverage counted
    with the paths' own log-return grid still lands on 90 %."""
    train = days[0]
    rows = np.random.default_rng(4).choice(len(train.anchors), 2_000, replace=False)
    chosen = train.anchors[rows]
    paths = fitted[name].sample_paths(train, chosen, FIT.n_samples, np.random.default_rng(5))
    end, close = realised_paths(train, chosen, (HORIZON_S,))[:, 0], at_anchors(train.close, chosen)
    coverage = interval_coverage(paths[:, :, -1], end, close, 0.9, TICK).mean()
    assert abs(coverage - 0.9) < 0.02


@pytest.mark.parametrize("name", ["ewma_random_walk", "garch_t_paths"])
def test_the_factor_search_in_simple_returns_picks_the_exact_log_grid_factor(
    fitted, days: list[DayArrays], name: str
) -> None:
    """`fit_spread_scale` snaps k0·(1 + x), the paths k0·exp(x): on the same draws, the factor
    it picks is the one whose coverage, counted on the paths' own grid, is nearest 90 %."""
    train, rng = days[0], np.random.default_rng(11)
    chosen = train.anchors[rng.choice(len(train.anchors), 2_000, replace=False)]
    end = fitted[name].draw_paths(train, chosen, FIT.n_samples, rng).end_point()
    close, target = at_anchors(train.close, chosen), realised_paths(train, chosen)[:, -1]
    picked = fit_spread_scale(end, close, target, FIT)
    grid = FIT.grid()
    near = grid[max(np.searchsorted(grid, picked) - 4, 0) :][:9]
    coverage = [
        interval_coverage(
            snap_paths((end.center[:, None] + c * end.deviations)[:, :, None], close)[:, :, 0],
            target,
            close,
            FIT.level,
            TICK,
        ).mean()
        for c in near
    ]
    assert near[np.argmin(np.abs(np.array(coverage) - FIT.level))] == picked


@pytest.mark.parametrize("name", ["ewma_random_walk", "garch_t_paths"])
def test_a_path_depends_on_the_past_and_never_on_the_future(
    fitted, days: list[DayArrays], name: str
) -> None:
    day = days[2]
    anchor = day.anchors[len(day.anchors) // 2][None, :]  # [1, 2]
    s, t = anchor[0]
    future, past = day.close.copy(), day.close.copy()
    future[s, t + 1 :] *= 1.05
    past[s, t - 200 : t - 100] *= 1.05
    draw = fitted[name].sample_paths
    base = draw(day, anchor, N_SAMPLES, np.random.default_rng(6))
    moved = draw(
        dataclasses.replace(day, close=future), anchor, N_SAMPLES, np.random.default_rng(6)
    )
    np.testing.assert_array_equal(base, moved)
    changed = draw(
        dataclasses.replace(day, close=past), anchor, N_SAMPLES, np.random.default_rng(6)
    )
    assert not np.array_equal(base, changed)


def test_an_oracle_path_is_one_path_not_independent_horizons(
    fitted, days: list[DayArrays], anchors: np.ndarray
) -> None:
    """Horizons drawn independently would make the last 1 s step as wide as √2 x the 30 s
    spread; along one path it is a single second's move."""
    paths = fitted["oracle_paths"].sample_paths(
        days[2], anchors, N_SAMPLES, np.random.default_rng(7)
    )
    last_step = (paths[:, :, -1] - paths[:, :, -2]).std(axis=1)
    assert np.median(last_step / paths[:, :, -1].std(axis=1)) < 0.5
    assert fitted["oracle_paths"].scale == 1.0


def test_the_oracle_needs_the_latent_state(days: list[DayArrays], tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="latent"):
        OraclePaths(tmp_path).fit(days[:1], np.random.default_rng(0))
