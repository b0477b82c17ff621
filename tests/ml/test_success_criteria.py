"""The seed plan's success criteria on constructed overall rows: pass, fail and n/a."""

import math

import numpy as np
import polars as pl
import pytest

from diffstock_ml.evaluation.backtest import backtest
from diffstock_ml.evaluation.criteria import (
    CRITERIA,
    FAIL,
    NOT_APPLICABLE,
    PASS,
    SuccessCriteria,
    criteria_metrics,
    criteria_table,
    success_criteria,
)

GOOD = {
    "crps_skill_vs_rolling_gaussian": 0.05,
    "coverage_50": 0.52,
    "coverage_80": 0.79,
    "coverage_90": 0.91,
    "coverage_95": 0.94,
    "directional_accuracy": 0.55,
    "backtest_sharpe": 1.5,
    "backtest_sharpe_gross": 3.0,
    "latency_ms": 2.0,
}


def verdicts(rows: list[dict]) -> dict[tuple[str, str], str]:
    long = success_criteria(pl.DataFrame(rows, infer_schema_length=None))
    return {(m, c): v for m, c, _, v in long.iter_rows()}


def test_a_model_that_meets_every_criterion_passes_them_all() -> None:
    result = verdicts([{"model": "good", **GOOD}])
    assert {result["good", name] for name in CRITERIA} == {PASS}


def test_each_criterion_fails_on_its_own_input() -> None:
    bad = {
        "crps_skill_vs_rolling_gaussian": -0.01,  # worse than historical volatility
        "coverage_50": 0.44,  # 12 % below 50 %: outside 10 % relative
        "directional_accuracy": 0.52,  # not above 52 %
        "backtest_sharpe": 0.9,
        "backtest_sharpe_gross": 1.0,  # not above 1
        "latency_ms": 100.0,  # not below 100 ms
    }
    result = verdicts([{"model": "bad", **GOOD, **bad}])
    assert {result["bad", name] for name in CRITERIA} == {FAIL}


def test_calibration_is_relative_to_each_level() -> None:
    # 95 % interval at 86 % is 9.5 % below (pass); at 85 % it is 10.5 % below (fail)
    result = verdicts(
        [
            {"model": "edge", **GOOD, "coverage_95": 0.86},
            {"model": "over", **GOOD, "coverage_95": 0.85},
        ]
    )
    assert result["edge", "calibration_within_10pct"] == PASS
    assert result["over", "calibration_within_10pct"] == FAIL
    long = success_criteria(pl.DataFrame([{"model": "m", **GOOD, "coverage_80": 0.70}]))
    worst = long.filter(pl.col("criterion") == "calibration_within_10pct")["value"].item()
    assert worst == pytest.approx(0.125)  # |0.70 / 0.80 − 1|


def test_missing_inputs_are_not_applicable_never_failed() -> None:
    rows = [
        {"model": "rolling_gaussian", **GOOD},  # the reference itself
        {"model": "no_calls", **GOOD, "directional_accuracy": math.nan},  # never calls
        {"model": "untimed", **GOOD, "latency_ms": None},
        {"model": "direction_only", "directional_accuracy": 0.6},  # a classifier's row
    ]
    result = verdicts(rows)
    assert result["rolling_gaussian", "crps_vs_historical_volatility"] == NOT_APPLICABLE
    assert result["no_calls", "directional_accuracy_above_52pct"] == NOT_APPLICABLE
    assert result["untimed", "inference_below_100ms"] == NOT_APPLICABLE
    others = {result["direction_only", name] for name in CRITERIA}
    assert result["direction_only", "directional_accuracy_above_52pct"] == PASS
    assert others == {PASS, NOT_APPLICABLE}
    # no reference baseline in the report: n/a for everyone
    assert verdicts([{"model": "m", "coverage_50": 0.5}])["m", "crps_vs_historical_volatility"] == (
        NOT_APPLICABLE
    )


def test_a_model_that_never_trades_fails_the_sharpe_criteria() -> None:
    result = verdicts([{"model": "idle", **GOOD, "backtest_sharpe": math.nan}])
    assert result["idle", "sharpe_net_above_1"] == FAIL


def test_thresholds_come_from_the_criteria_object() -> None:
    overall = pl.DataFrame([{"model": "m", **GOOD}])
    strict = SuccessCriteria(directional_accuracy=0.6, latency_ms=1.0, reference="ewma")
    long = success_criteria(overall, strict)
    got = dict(zip(long["criterion"], long["verdict"], strict=True))
    assert got["directional_accuracy_above_52pct"] == FAIL
    assert got["inference_below_100ms"] == FAIL
    assert got["crps_vs_historical_volatility"] == NOT_APPLICABLE  # no crps_skill_vs_ewma


def test_the_readable_table_and_the_mlflow_metrics() -> None:
    long = success_criteria(
        pl.DataFrame(
            [{"model": "good", **GOOD}, {"model": "untimed", **GOOD, "latency_ms": None}],
            infer_schema_length=None,
        )
    )
    table = criteria_table(long)
    assert table.columns == ["model", *(header for _, header in CRITERIA.values()), "passed"]
    assert table["model"].to_list() == ["good", "untimed"]
    assert table["passed"].to_list() == ["6 of 6", "5 of 5"]
    assert table.row(0)[1] == "pass (0.05)"
    assert table.row(1)[-2] == NOT_APPLICABLE
    metrics = criteria_metrics(long)
    assert metrics["good/criterion_inference_below_100ms"] == 1.0
    assert "untimed/criterion_inference_below_100ms" not in metrics


def test_gross_sharpe_is_the_same_positions_without_costs() -> None:
    """Always long a +2 bp move every 30 s: net of 1.5 bp per side it is the same series less
    the costs, so gross P&L exceeds net by exactly the costs paid."""
    n = 200
    ts = np.arange(n) * 30
    rng = np.random.default_rng(0)
    target = (2.0 + rng.standard_normal(n)) * 1e-4
    result = backtest(np.full(n, 1e-3), target, np.array(["A"] * n), ts, cost_bp=1.5)
    assert result.total_pnl_gross_bp == pytest.approx(target.sum() * 1e4)
    assert result.total_pnl_gross_bp - result.total_pnl_bp == pytest.approx(2 * 1.5)
    assert result.sharpe_gross > result.sharpe > 0
