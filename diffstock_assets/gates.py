"""Day gates: a day that failed a blocking check is never consumed downstream.

Dagster's blocking checks stop the downstream steps of the *same* run. A later run (the CLI on
one asset, a UI launch, the automation, the training of a later as-of day) would still read the
day, so every per-day asset also leaves its check verdict in the day's lake folder and each
consumer calls `require_passed` before it reads the day.

`clean_bars` writes a `pending` verdict before its data files and the real one after them, so a
run killed in between leaves a day that reads as unfinished, never as passed. `windows` publishes
its verdict inside the day's folder, together with the arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import dagster as dg
import polars as pl

from diffstock_assets.resources import WINDOWS, LakeResource

VERDICT_FILE = "checks.parquet"
PENDING = "pending"
VERDICT_SCHEMA = {
    "check": pl.String,
    "passed": pl.Boolean,
    "severity": pl.String,
    "blocking": pl.Boolean,
    "description": pl.String,
}


def blocking_names(specs: Sequence[dg.AssetCheckSpec]) -> frozenset[str]:
    return frozenset(spec.name for spec in specs if spec.blocking)


def verdict_frame(checks: Sequence[dg.AssetCheckResult], blocking: frozenset[str]) -> pl.DataFrame:
    """One row per check of one day: passed, severity, whether it blocks, its message."""
    rows = [
        {
            "check": str(check.check_name),
            "passed": bool(check.passed),
            "severity": check.severity.value,
            "blocking": str(check.check_name) in blocking,
            "description": check.description or "",
        }
        for check in checks
    ]
    return pl.DataFrame(rows, schema=VERDICT_SCHEMA)


def pending_frame() -> pl.DataFrame:
    """The verdict of a day whose asset is being written (a killed run leaves this one)."""
    row = {"check": PENDING, "passed": False, "severity": "ERROR", "blocking": True}
    return pl.DataFrame([{**row, "description": "the run did not finish"}], schema=VERDICT_SCHEMA)


def blocked_by(verdict: pl.DataFrame) -> pl.DataFrame:
    """The failed blocking checks of a verdict (ERROR severity only: a warning never blocks)."""
    return verdict.filter(pl.col("blocking") & ~pl.col("passed") & (pl.col("severity") == "ERROR"))


def write_file_verdict(lake: LakeResource, asset: str, key: str, verdict: pl.DataFrame) -> None:
    lake.write_parquet(verdict, asset, key, VERDICT_FILE)


def require_passed(
    lake: LakeResource, asset: str, key: str, needed_by: str, *, allow_missing: bool = False
) -> None:
    """Raise a `Failure` naming the day and its failed blocking checks, or a missing verdict
    (unless `allow_missing`: for tools that also read days built outside Dagster)."""
    if asset == WINDOWS:
        verdict = read_folder_verdict(lake.local_folder(asset, key))
    elif lake.exists(asset, key, VERDICT_FILE):
        verdict = lake.read_parquet(asset, key, VERDICT_FILE)
    else:
        verdict = None
    if verdict is None and allow_missing:
        return
    _raise_if_blocked(verdict, asset, key, needed_by)


def read_folder_verdict(folder: Path) -> pl.DataFrame | None:
    path = folder / VERDICT_FILE
    return pl.read_parquet(path) if path.exists() else None


def _raise_if_blocked(verdict: pl.DataFrame | None, asset: str, key: str, needed_by: str) -> None:
    redo = f"re-materialise {asset} for {key}"
    if verdict is None:
        raise dg.Failure(
            description=f"{needed_by} needs {asset} {key}, which has no check verdict "
            f"(written by an older diffstock): {redo}.",
            allow_retries=False,
        )
    failed = blocked_by(verdict)
    if failed.height == 0:
        return
    if failed["check"].to_list() == [PENDING]:
        reason = "its last run did not finish"
    else:
        reason = "it failed the blocking check(s) " + "; ".join(
            f"{row['check']} ({row['description']})" for row in failed.iter_rows(named=True)
        )
    raise dg.Failure(
        description=f"{needed_by} refuses {asset} {key}: {reason}. Fix the day's raw files and "
        f"{redo} and everything downstream of it.",
        metadata={"blocked_day": key, "blocked_asset": asset},
        allow_retries=False,
    )
