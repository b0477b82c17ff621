"""One run, many trading days: how the per-day assets materialise a partition range.

`clean_bars`, `features` and `windows` carry a single-run backfill policy, so
`dagster asset materialize --partition-range A...B` (and a backfill from the UI) is one run that
loops over `context.partition_keys`. Each day still gets its own materialisation event with its
own metadata. Asset checks in Dagster 1.13 are reported once per run, so over a range each check
passes only if it passed on every day, and its metadata names the days that did not.

A day that raises stops the run with an error naming that day; days written before it stay in
the lake (every write is atomic) but are not recorded, so rerunning the range redoes them.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import polars as pl

from diffstock_assets.metadata import markdown_table

BACKFILL_POLICY = dg.BackfillPolicy.single_run()
# `@asset(backfill_policy=...)` warns that the parameter is in beta at every import of the
# code location (three lines per asset before a command's own output); the policy is what
# `--partition-range` needs, and a Dagster upgrade that changes it is caught by the CLI tests.
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=dg.BetaWarning)


@dataclass(frozen=True)
class DayResult:
    """What building one day produced: its materialisation metadata and its check results."""

    metadata: Mapping[str, Any]
    checks: Sequence[dg.AssetCheckResult] = field(default_factory=tuple)


def materialize_days(
    context: dg.AssetExecutionContext, build_day: Callable[[str], DayResult]
) -> dg.MaterializeResult:
    """Build every day of the run's partitions in order; one event per day, checks merged."""
    keys = list(context.partition_keys)
    results: dict[str, DayResult] = {}
    for number, key in enumerate(keys, start=1):
        if len(keys) > 1:
            context.log.info(f"{key}: day {number} of {len(keys)}")
        try:
            results[key] = build_day(key)
        except Exception as error:
            if len(keys) == 1:
                raise  # the error already concerns the one day of the run
            done = ", ".join(results) or "none"
            raise dg.Failure(
                description=f"{context.asset_key.to_user_string()} {key}: {error}",
                metadata={"failed_day": key, "days_built_before": done},
            ) from error
        context.add_asset_metadata(dict(results[key].metadata), partition_key=key)
    return dg.MaterializeResult(check_results=merge_checks(results))


def merge_checks(results: Mapping[str, DayResult]) -> list[dg.AssetCheckResult]:
    """One result per check: the day's own for one day, all-days-passed over a range."""
    if len(results) == 1:
        return list(next(iter(results.values())).checks)
    by_name: dict[str, dict[str, dg.AssetCheckResult]] = {}
    for day, result in results.items():
        for check in result.checks:
            by_name.setdefault(str(check.check_name), {})[day] = check
    return [_merge(name, per_day) for name, per_day in by_name.items()]


def _merge(name: str, per_day: Mapping[str, dg.AssetCheckResult]) -> dg.AssetCheckResult:
    failed = [day for day, check in per_day.items() if not check.passed]
    severities = {check.severity for day, check in per_day.items() if day in failed}
    severity = (
        dg.AssetCheckSeverity.WARN
        if severities == {dg.AssetCheckSeverity.WARN}
        else dg.AssetCheckSeverity.ERROR
    )
    rows = [
        {"day": day, "passed": check.passed, **_scalars(check.metadata)}
        for day, check in per_day.items()
    ]
    return dg.AssetCheckResult(
        check_name=name,
        passed=not failed,
        severity=severity,
        metadata={
            "days": len(per_day),
            "failed_days": ", ".join(failed) or "none",
            "by_day": markdown_table(pl.DataFrame(rows, infer_schema_length=None)),
        },
    )


def _scalars(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The per-day numbers and short strings of a check's metadata, for the by-day table."""
    values = {}
    for name, value in metadata.items():
        raw = getattr(value, "value", value)
        if isinstance(raw, (bool, int, float)) or (isinstance(raw, str) and len(raw) <= 40):
            values[name] = raw
    return values
