"""The cost-aware backtest on hand-made trades with known P&L."""

import math

import numpy as np
import pytest

from diffstock_ml.evaluation import backtest, max_drawdown, positions

T0 = 1_762_180_200  # 2025-11-03 14:30:00 UTC, on the 30 s grid
BP = 1e-4


def test_positions_need_an_edge_strictly_above_the_cost() -> None:
    edge = np.array([2.0, 1.0, 0.99, -0.5, -1.01]) * BP
    np.testing.assert_array_equal(positions(edge, cost_bp=1.0), [1, 0, 0, 0, -1])


def test_hand_made_backtest_charges_costs_on_position_changes() -> None:
    # Symbol A on the 30 s grid: long, long, flat (edge below cost), short; then closed.
    # Symbol B never has an edge above the cost: no trade, no P&L. Two off-grid anchors of A
    # (ts + 15 s) overlap the grid trades and must be ignored.
    symbol = np.array(["A"] * 4 + ["B"] * 4 + ["A"] * 2)
    ts = T0 + np.array([0, 30, 60, 90, 0, 30, 60, 90, 15, 45])
    mean = np.array([5, 5, -0.5, -5, 0.9, -0.9, 0.5, 0.0, 50, -50]) * BP
    target = np.array([10, -2, 3, -4, 20, -20, 5, 1, 7, 7]) * BP
    result = backtest(mean, target, symbol, ts, cost_bp=1.0)
    # A: +10 − 1 (enter) | −2 (hold) | 0 − 1 (exit long) | +4 − 1 (enter short) − 1 (close)
    expected_pnl = [9.0, -2.0, -1.0, 2.0]
    np.testing.assert_allclose(result.equity["pnl_bp"].to_numpy(), expected_pnl)
    np.testing.assert_allclose(result.equity["equity_bp"].to_numpy(), np.cumsum(expected_pnl))
    assert result.n_periods == 8 and result.n_trades == 3
    assert result.total_pnl_bp == pytest.approx(8.0)
    assert result.pnl_per_trade_bp == pytest.approx(8.0 / 3)
    assert result.hit_ratio == pytest.approx(2 / 3)
    assert result.turnover == pytest.approx(4 / 8)  # A changes 1+0+1+2, B none, over 8 periods
    assert result.max_drawdown_bp == pytest.approx(3.0)
    per_year = np.sqrt(4 * 252)  # 4 timestamps in 1 trading day
    pnl = np.array(expected_pnl)
    assert result.sharpe == pytest.approx(pnl.mean() / pnl.std(ddof=1) * per_year)
    assert result.sortino == pytest.approx(pnl.mean() / np.sqrt(1.25) * per_year)
    assert str(result.equity["ts"].dtype) == "Datetime(time_unit='us', time_zone='UTC')"


def test_a_gap_in_the_grid_closes_the_position() -> None:
    ts = T0 + np.array([0, 30, 90])
    result = backtest(np.full(3, 5 * BP), np.full(3, 2 * BP), np.array(["A"] * 3), ts, cost_bp=0.5)
    # enter 0.5 | hold, close before the gap 0.5 | enter and close 1.0
    np.testing.assert_allclose(result.equity["pnl_bp"].to_numpy(), [1.5, 1.5, 1.0])


def test_no_edge_above_costs_means_no_trade_and_undefined_ratios() -> None:
    ts = T0 + 30 * np.arange(5)
    result = backtest(
        np.full(5, 0.9 * BP), np.full(5, 3 * BP), np.array(["A"] * 5), ts, cost_bp=1.0
    )
    assert result.n_trades == 0 and result.total_pnl_bp == 0.0 and result.turnover == 0.0
    assert math.isnan(result.sharpe) and math.isnan(result.hit_ratio)
    assert result.max_drawdown_bp == 0.0


def test_max_drawdown_measures_from_the_running_peak_including_the_start() -> None:
    assert max_drawdown(np.array([-2.0, 1.0, 5.0, 0.0, 4.0])) == pytest.approx(5.0)
    assert max_drawdown(np.array([1.0, 2.0])) == 0.0
