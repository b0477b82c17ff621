"""VaR backtests (Kupiec, Christoffersen) on constructed hit sequences; directional accuracy."""

import math

import numpy as np
import pytest
from scipy import stats

from diffstock_ml.evaluation import (
    christoffersen_independence_lr,
    directional_accuracy,
    kupiec_lr,
    reversal_direction,
    transition_counts,
    var_backtest,
    var_hits,
)
from diffstock_ml.evaluation.var import grid_runs


def hits_at(n: int, positions: list[int] | np.ndarray) -> np.ndarray:
    hits = np.zeros(n, dtype=bool)
    hits[np.asarray(positions, dtype=int)] = True
    return hits


def test_kupiec_is_zero_when_the_hit_rate_equals_alpha() -> None:
    result = var_backtest(hits_at(100, [17]), 0.01)
    assert result.kupiec_lr == pytest.approx(0.0, abs=1e-12)
    assert result.kupiec_p == pytest.approx(1.0)
    assert result.hit_rate == 0.01 and result.hits == 1 and result.n == 100


def test_kupiec_matches_the_likelihood_ratio_by_hand() -> None:
    # 3 hits in 100 at alpha = 1 %: LR = 2 [3 ln(0.03/0.01) + 97 ln(0.97/0.99)].
    expected = 2 * (3 * math.log(3) + 97 * math.log(0.97 / 0.99))
    assert kupiec_lr(hits_at(100, [5, 50, 90]), 0.01) == pytest.approx(expected, rel=1e-12)
    assert var_backtest(hits_at(100, [5, 50, 90]), 0.01).kupiec_p == pytest.approx(
        stats.chi2.sf(expected, 1)
    )
    # No hit at all: LR = −2 n ln(1 − alpha).
    assert kupiec_lr(np.zeros(100, bool), 0.01) == pytest.approx(-200 * math.log(0.99))


def test_kupiec_rejects_a_three_percent_hit_rate_at_one_percent() -> None:
    hits = hits_at(1_000, np.arange(0, 1_000, 33)[:30] + 1)
    assert hits.mean() == 0.03
    assert var_backtest(hits, 0.01).kupiec_p < 1e-4


def test_christoffersen_independence_lr_by_hand() -> None:
    hits = np.array([0, 1, 1, 0, 0, 0, 1, 0], dtype=bool)
    counts = transition_counts(hits)
    np.testing.assert_array_equal(counts, [[2, 2], [2, 1]])
    pi0, pi1, pi = 2 / 4, 1 / 3, 3 / 7
    markov = 2 * math.log(1 - pi0) + 2 * math.log(pi0) + 2 * math.log(1 - pi1) + math.log(pi1)
    iid = 4 * math.log(1 - pi) + 3 * math.log(pi)
    assert christoffersen_independence_lr(counts) == pytest.approx(2 * (markov - iid))


def test_transitions_skip_run_starts() -> None:
    hits = np.array([1, 1, 0, 1, 1], dtype=bool)
    starts = np.array([True, False, False, True, False])
    np.testing.assert_array_equal(transition_counts(hits, starts), [[0, 0], [1, 2]])


def test_christoffersen_rejects_clustered_hits_with_the_right_rate() -> None:
    clustered = hits_at(1_000, [start + k for start in range(50, 1_000, 100) for k in range(5)])
    result = var_backtest(clustered, 0.05)
    assert result.hit_rate == 0.05 and result.kupiec_p == pytest.approx(1.0)
    assert result.independence_p < 1e-6
    assert result.conditional_p < 1e-6
    scattered = np.random.default_rng(0).random(1_000) < 0.05
    assert var_backtest(scattered, 0.05).independence_p > 0.05


def test_var_hits_come_from_the_randomised_pit() -> None:
    pit = np.array([0.001, 0.0099, 0.01, 0.2])
    np.testing.assert_array_equal(var_hits(pit, 0.01), [True, True, False, False])


def test_grid_runs_orders_by_symbol_and_time_and_breaks_at_gaps() -> None:
    symbol = np.array(["B", "A", "A", "A", "B"])
    ts = np.array([30, 60, 0, 30, 0])
    order, starts = grid_runs(symbol, ts, 30)
    np.testing.assert_array_equal(order, [2, 3, 1, 4, 0])
    np.testing.assert_array_equal(starts, [True, False, False, True, False])
    _, starts = grid_runs(np.array(["A", "A", "A"]), np.array([0, 30, 90]), 30)
    np.testing.assert_array_equal(starts, [True, False, True])


def test_directional_accuracy_excludes_and_counts_zero_moves_and_no_calls() -> None:
    predicted = np.array([1, -1, 1, 1, 0, -1])
    target = np.array([2e-4, -1e-4, 0.0, -3e-4, 1e-4, 1e-13])  # the last is a zero move
    result = directional_accuracy(predicted, target, 1e-9)
    assert (result.n, result.correct, result.zero_moves, result.no_call) == (3, 2, 2, 1)
    assert result.accuracy == pytest.approx(2 / 3)
    assert result.p_value == pytest.approx(stats.binomtest(2, 3, 0.5).pvalue)


def test_directional_accuracy_binomial_test_detects_a_real_edge() -> None:
    rng = np.random.default_rng(4)
    target = rng.choice([-1e-4, 1e-4], size=2_000)
    predicted = np.where(rng.random(2_000) < 0.6, np.sign(target), -np.sign(target)).astype(int)
    result = directional_accuracy(predicted, target, 1e-9)
    assert result.accuracy == pytest.approx(0.6, abs=0.03) and result.p_value < 1e-6


def test_directional_accuracy_without_any_move_is_undefined_not_zero() -> None:
    result = directional_accuracy(np.array([1, -1]), np.zeros(2), 1e-9)
    assert result.n == 0 and result.zero_moves == 2
    assert math.isnan(result.accuracy) and math.isnan(result.p_value)


def test_reversal_rule_predicts_the_opposite_of_the_last_second() -> None:
    np.testing.assert_array_equal(
        reversal_direction(np.array([2e-5, -1e-5, 0.0]), 1e-9), [-1, 1, 0]
    )
