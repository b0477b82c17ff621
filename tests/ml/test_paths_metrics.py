"""Path metrics on random walks whose truth is known: realised paths drawn from the same walk
as the forecast are calibrated; half the volatility, or a shifted walk, is caught.

Also reference checks of the energy score against its formula, the touch and adverse-excursion
definitions on hand-written paths, the tidy table, and the figures.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from diffstock_ml.evaluation.calibration import tie_tolerance
from diffstock_ml.market import TICK
from diffstock_ml.paths import HORIZONS, PathMetricsConfig, path_metrics_table, touch_reliability
from diffstock_ml.paths.baselines import random_walk, snap_paths
from diffstock_ml.paths.metrics import (
    adverse_excursion,
    energy_score_bp,
    mae_var,
    touches,
    variogram_score_bp,
)
from diffstock_ml.paths.plots import anchors_in_hour, crps_by_horizon, path_fan, write_png

N_ANCHORS = 3_000
N_SAMPLES = 100


class World:
    """Independent anchors at prices of $14 to $120, a per-second volatility of 1 to 4 bp,
    one realised random-walk path each and forecasts drawn from variants of the same walk."""

    def __init__(self, seed: int = 0, n_anchors: int = N_ANCHORS) -> None:
        self.rng = np.random.default_rng(seed)
        self.close = self.rng.choice([14.0, 50.0, 120.0], n_anchors)
        self.sigma = self.rng.uniform(1e-4, 4e-4, n_anchors)
        self.realised = self.walks(1)[:, 0]  # [A, H]
        self.tolerance = tie_tolerance(self.close, TICK)

    def walks(self, n: int, vol: float = 1.0, shift_bp: float = 0.0) -> np.ndarray:
        """`[A, n, H]` snapped random-walk paths at `vol` x the true volatility."""
        paths = vol * self.sigma[:, None, None] * random_walk((len(self.sigma), n), self.rng)
        return snap_paths(paths + shift_bp / 1e4, self.close)


@pytest.fixture(scope="module")
def world() -> World:
    return World()


@pytest.fixture(scope="module")
def forecasts(world: World) -> dict[str, np.ndarray]:
    return {"true": world.walks(N_SAMPLES), "half_vol": world.walks(N_SAMPLES, vol=0.5)}


def touch_gap_z(world: World, samples: np.ndarray, k: float, side: str) -> float:
    """(realised frequency − mean forecast) / its sampling standard error."""
    p = touches(samples, k, side, world.tolerance[:, None]).mean(axis=1)
    hit = touches(world.realised, k, side, world.tolerance)
    se = np.sqrt(np.mean(p * (1 - p)) * (1 + 1 / samples.shape[1]) / len(p))
    return float((hit.mean() - p.mean()) / se)


@pytest.mark.parametrize(("k", "side"), [(5, "up"), (5, "down"), (10, "up"), (10, "down")])
def test_touch_probability_of_the_true_walk_is_calibrated_and_half_volatility_is_not(
    world: World, forecasts: dict[str, np.ndarray], k: float, side: str
) -> None:
    assert abs(touch_gap_z(world, forecasts["true"], k, side)) < 4
    assert touch_gap_z(world, forecasts["half_vol"], k, side) > 4  # touches more than forecast


@pytest.mark.parametrize("position", ["long", "short"])
@pytest.mark.parametrize("alpha", [0.01, 0.05])
def test_kupiec_accepts_the_mae_var_of_the_true_walk_and_rejects_half_volatility(
    world: World, forecasts: dict[str, np.ndarray], position: str, alpha: float
) -> None:
    def var(name: str) -> dict[str, float]:
        samples = forecasts[name]
        rng = np.random.default_rng(1)
        return mae_var(samples, world.realised, position, alpha, world.tolerance, rng)

    true, half = var("true"), var("half_vol")
    assert true["kupiec_p"] > 0.01
    assert half["kupiec_p"] < 0.01 and half["hit_rate"] > 2 * alpha
    assert half["bp"] > true["bp"]  # a smaller loss quantile: too narrow


def test_energy_score_is_lower_for_the_true_distribution() -> None:
    world = World(seed=2, n_anchors=400)
    true, shifted = world.walks(N_SAMPLES), world.walks(N_SAMPLES, shift_bp=5.0)
    half = world.walks(N_SAMPLES, vol=0.5)
    forecasts = {"true": true, "shifted": shifted, "half": half}
    score = {n: energy_score_bp(x, world.realised).mean() for n, x in forecasts.items()}
    assert score["true"] < score["shifted"] and score["true"] < score["half"]
    # the variogram score reads differences between horizons: blind to a shift, not to scale
    vs_true, vs_half = (variogram_score_bp(x, world.realised).mean() for x in (true, half))
    assert vs_true < vs_half


def test_energy_score_is_the_fair_estimator_in_bp() -> None:
    rng = np.random.default_rng(3)
    samples, realised = rng.normal(0, 1e-3, (2, 5, 4)), rng.normal(0, 1e-3, (2, 4))
    x, y = samples * 1e4, realised * 1e4
    m = x.shape[1]
    for a in range(2):
        error = np.linalg.norm(x[a] - y[a], axis=1).mean()
        spread = np.linalg.norm(x[a][:, None] - x[a][None, :], axis=2).sum() / (m * (m - 1))
        assert energy_score_bp(samples, realised)[a] == pytest.approx(error - spread / 2)


def test_a_price_exactly_on_the_threshold_touches_it() -> None:
    """$100: 5 ticks are 5 bp of price; log(1.0005) < 5e-4 < −log(0.9995) must not matter."""
    close = np.array([100.0])
    tol = tie_tolerance(close, TICK)
    up, down, short = (np.log(np.array([[p]]) / 100.0) for p in (100.05, 99.95, 100.04))
    assert touches(up, 5, "up", tol).all() and touches(down, 5, "down", tol).all()
    assert not touches(short, 5, "up", tol).any() and not touches(up, 5, "down", tol).any()


def test_adverse_excursion_is_the_worst_pnl_of_long_and_short() -> None:
    paths = np.array([[2e-4, -3e-4, 1e-4], [1e-4, 2e-4, 3e-4]])
    np.testing.assert_allclose(adverse_excursion(paths, "long"), [-3e-4, 0.0])
    np.testing.assert_allclose(adverse_excursion(paths, "short"), [-2e-4, -3e-4])


def test_the_table_has_one_row_per_model_on_the_complete_anchors() -> None:
    world = World(seed=4, n_anchors=60)
    realised = world.realised.copy()
    realised[:5, 20:] = np.nan  # these paths leave the session
    forecasts = {"true": world.walks(20), "half_vol": world.walks(20, vol=0.5)}
    table = path_metrics_table(forecasts, realised, world.close)
    assert table["model"].to_list() == ["true", "half_vol"]
    assert table["n_anchors"].to_list() == [55, 55] and table["n_dropped"].to_list() == [5, 5]
    expected = [
        "energy_score_bp",
        "variogram_score",
        "crps_mean_bp",
        "touch_up_5bp_brier",
        "touch_down_10bp_realised",
        "mae_long_var_1_kupiec_p",
        "mae_short_var_5_bp",
    ]
    assert set(expected + [f"crps_h{h}_bp" for h in HORIZONS]) <= set(table.columns)
    kept = path_metrics_table({"true": forecasts["true"][5:]}, realised[5:], world.close[5:])
    assert kept.drop("n_dropped").row(0) == table.drop("n_dropped").row(0)
    crps = table.row(0, named=True)
    assert crps["crps_h30_bp"] > 3 * crps["crps_h1_bp"]  # a random walk spreads as √h


def test_touch_reliability_is_a_long_table_per_model_side_and_threshold() -> None:
    world = World(seed=5, n_anchors=200)
    config = PathMetricsConfig(touch_bp=(5.0,), reliability_bins=4)
    table = touch_reliability({"true": world.walks(20)}, world.realised, world.close, config)
    assert table.columns[:3] == ["model", "side", "k_bp"]
    assert table.height == 2 * 4 and table["n"].sum() == 2 * 200


def test_metrics_refuse_mismatched_or_non_finite_samples(world: World) -> None:
    with pytest.raises(ValueError, match="must be"):
        path_metrics_table({"bad": world.walks(5)[:, :, :10]}, world.realised, world.close)
    broken = world.walks(5)
    broken[7, 0, 0] = np.nan
    with pytest.raises(ValueError, match="first anchor 7"):
        path_metrics_table({"bad": broken}, world.realised, world.close)


def test_figures_draw_a_fan_of_paths_and_crps_by_horizon(tmp_path: Path) -> None:
    world = World(seed=6, n_anchors=40)
    anchors = np.stack([np.zeros(40, int), np.arange(40) * 100], axis=1)  # one symbol
    rows = anchors_in_hour(anchors, symbol=0, start_s=0, n=4)
    assert len(rows) == 4 and (anchors[rows, 1] < 3600).all()
    samples = world.walks(50)
    fan = path_fan(samples[rows], world.realised[rows], [f"t={t}s" for t in anchors[rows, 1]], "x")
    table = pl.DataFrame({"model": ["a", "b"], "crps_h1_bp": [1.0, 2.0], "crps_h2_bp": [2.0, 3.0]})
    for name, fig in [("fan", fan), ("crps", crps_by_horizon(table))]:
        path = write_png(fig, tmp_path / f"{name}.png")
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
