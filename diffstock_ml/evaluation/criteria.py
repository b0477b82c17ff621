"""The seed plan's success criteria (its §10), pass or fail for every model of a report.

Each criterion reads columns of the overall table (`report.evaluate`):

- `crps_vs_historical_volatility`: mean CRPS below the seed's "naive baseline (historical
  volatility)", the `rolling_gaussian` baseline (a Gaussian whose scale is the root mean square
  of the last 300 s of 1 s returns × √30): `crps_skill_vs_rolling_gaussian` > 0. n/a for that
  baseline itself and when the report has no such baseline.
- `calibration_within_10pct`: every central interval's coverage (the report's randomised-PIT
  coverage, `coverage_<p>`) within 10 % *relative* of its nominal level, |coverage / p − 1| ≤
  0.10 (50 %: 45–55 %; 90 %: 81–99 %); the value shown is the worst relative deviation.
- `directional_accuracy_above_52pct`: `directional_accuracy` > 0.52 on the non-overlapping
  anchors, zero moves excluded; n/a for a model that never calls a direction.
- `sharpe_net_above_1` / `sharpe_gross_above_1`: the backtest's annualised Sharpe ratio net of
  costs (`backtest_sharpe`) and of the same positions before costs (`backtest_sharpe_gross`)
  above 1; a model that never trades fails (its Sharpe is undefined, shown as NaN).
- `inference_below_100ms`: the measured sampling time per anchor (`latency_ms`) below 100 ms;
  n/a where it was not measured.

A criterion whose input column is absent or null for a model (a model without a direction, a
table without a backtest) is "n/a", never "fail".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl

from diffstock_ml.evaluation.config import level_name

PASS, FAIL, NOT_APPLICABLE = "pass", "fail", "n/a"
CRITERIA_SCHEMA = {
    "model": pl.String,
    "criterion": pl.String,
    "value": pl.Float64,
    "verdict": pl.String,
}


@dataclass(frozen=True)
class SuccessCriteria:
    """Thresholds of the seed plan's §10 (MVP and target performance)."""

    reference: str = "rolling_gaussian"  # the seed's naive baseline: historical volatility
    calibration_tolerance: float = 0.10  # relative deviation of each coverage from nominal
    coverage_levels: tuple[float, ...] = (0.5, 0.8, 0.9, 0.95)
    directional_accuracy: float = 0.52
    sharpe: float = 1.0
    latency_ms: float = 100.0


SEED_PLAN = SuccessCriteria()

Row = Mapping[str, Any]  # one row of the overall table
Verdict = tuple[float | None, str]  # (the value judged, pass / fail / n/a)


def _number(row: Row, column: str) -> float | None:
    """The row's value as a float; None when the column is absent or null."""
    value = row.get(column)
    return None if value is None else float(value)


def _above(value: float | None, threshold: float) -> Verdict:
    """Pass above the threshold, fail at or below it or at NaN, n/a without a value."""
    if value is None:
        return None, NOT_APPLICABLE
    return value, PASS if value > threshold else FAIL


def crps_vs_reference(row: Row, criteria: SuccessCriteria) -> Verdict:
    """CRPS skill vs the historical-volatility baseline above 0 (n/a for that baseline)."""
    if row["model"] == criteria.reference:
        return None, NOT_APPLICABLE
    return _above(_number(row, f"crps_skill_vs_{criteria.reference}"), 0.0)


def calibration(row: Row, criteria: SuccessCriteria) -> Verdict:
    """The worst |coverage / level − 1| over the central intervals, at most the tolerance."""
    levels = criteria.coverage_levels
    coverage = [_number(row, f"coverage_{level_name(p)}") for p in levels]
    if any(c is None or math.isnan(c) for c in coverage):
        return None, NOT_APPLICABLE
    worst = max(abs(c / p - 1.0) for c, p in zip(coverage, levels, strict=True))
    return worst, PASS if worst <= criteria.calibration_tolerance else FAIL


def direction(row: Row, criteria: SuccessCriteria) -> Verdict:
    """Directional accuracy above the threshold (n/a for a model that never calls)."""
    value = _number(row, "directional_accuracy")
    if value is not None and math.isnan(value):  # no calls: the model has no direction
        value = None
    return _above(value, criteria.directional_accuracy)


def sharpe_net(row: Row, criteria: SuccessCriteria) -> Verdict:
    """The backtest's Sharpe ratio net of costs above the threshold."""
    return _above(_number(row, "backtest_sharpe"), criteria.sharpe)


def sharpe_gross(row: Row, criteria: SuccessCriteria) -> Verdict:
    """The same positions' Sharpe ratio before costs above the threshold."""
    return _above(_number(row, "backtest_sharpe_gross"), criteria.sharpe)


def inference(row: Row, criteria: SuccessCriteria) -> Verdict:
    """The measured sampling time per anchor below the limit (n/a when not measured)."""
    value = _number(row, "latency_ms")
    if value is None:
        return None, NOT_APPLICABLE
    return value, PASS if value < criteria.latency_ms else FAIL


# criterion -> (its rule, its header in the report)
CRITERIA: dict[str, tuple[Callable[[Row, SuccessCriteria], Verdict], str]] = {
    "crps_vs_historical_volatility": (crps_vs_reference, "CRPS beats hist. vol."),
    "calibration_within_10pct": (calibration, "calibrated ±10 %"),
    "directional_accuracy_above_52pct": (direction, "direction > 52 %"),
    "sharpe_net_above_1": (sharpe_net, "Sharpe net > 1"),
    "sharpe_gross_above_1": (sharpe_gross, "Sharpe gross > 1"),
    "inference_below_100ms": (inference, "< 100 ms / forecast"),
}


def success_criteria(overall: pl.DataFrame, criteria: SuccessCriteria = SEED_PLAN) -> pl.DataFrame:
    """One row per (model, criterion) of the overall table: value and verdict (pass/fail/n/a)."""
    rows = []
    for row in overall.iter_rows(named=True):
        for name, (rule, _) in CRITERIA.items():
            value, verdict = rule(row, criteria)
            rows.append((row["model"], name, value, verdict))
    return pl.DataFrame(rows, schema=CRITERIA_SCHEMA, orient="row")


def criteria_table(long: pl.DataFrame) -> pl.DataFrame:
    """The criteria as a readable table: one row per model (in order), a "pass (0.031)" cell per
    criterion, and `passed` ("3 of 5": the passes among the criteria that apply)."""
    table: dict[str, dict[str, str]] = {}
    for model, name, value, verdict in long.iter_rows():
        cell = verdict if value is None else f"{verdict} ({value:.3g})"
        table.setdefault(model, {"model": model})[CRITERIA[name][1]] = cell
    for model, part in long.group_by("model", maintain_order=True):
        applies = part.filter(pl.col("verdict") != NOT_APPLICABLE)
        passes = int((applies["verdict"] == PASS).sum())
        table[model[0]]["passed"] = f"{passes} of {applies.height}"
    return pl.DataFrame(list(table.values()), schema=_table_schema())


def criteria_metrics(long: pl.DataFrame) -> dict[str, float]:
    """`{"<model>/criterion_<name>": 1.0 pass / 0.0 fail}` (n/a left out), for MLflow."""
    judged = long.filter(pl.col("verdict") != NOT_APPLICABLE)
    return {
        f"{model}/criterion_{name}": float(verdict == PASS)
        for model, name, verdict in judged.select("model", "criterion", "verdict").iter_rows()
    }


def _table_schema() -> dict[str, type[pl.String]]:
    return {"model": pl.String, **{h: pl.String for _, h in CRITERIA.values()}, "passed": pl.String}
