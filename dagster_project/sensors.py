"""Automation: the sensors of the code location.

`new_trading_days` turns each new, complete raw day folder into an ingest run.

A folder is complete when it holds a `_SUCCESS` marker, or when it has CSV files and none of its
files changed in the last `QUIET_SECONDS` (a copy still in progress keeps touching files). Every
session folder not requested before is requested once (`run_key` = the day), so a sensor that
was down catches up all missing days in one evaluation. A day's partition opens when the day
ends in New York (`end_offset=0`), so a folder copied in at 17:30 is picked up after midnight.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import dagster as dg

from dagster_project.jobs import ingest_job
from diffstock_assets.groups import EVALUATION, MODEL
from diffstock_assets.partitions import trading_days
from diffstock_assets.resources import LEADERBOARD, RawDataResource

QUIET_SECONDS = 120
MARKER = "_SUCCESS"


def folder_is_complete(folder: Path, now: float, quiet_seconds: float = QUIET_SECONDS) -> bool:
    """A marker file, or CSV files untouched for `quiet_seconds`."""
    if (folder / MARKER).exists():
        return True
    files = [p for p in folder.iterdir() if p.is_file()]
    if not any(p.name.lower().endswith((".csv", ".csv.gz")) for p in files):
        return False
    return max(p.stat().st_mtime for p in files) < now - quiet_seconds


@dg.sensor(
    job=ingest_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests clean_bars -> features -> windows for every new complete day folder.",
)
def new_trading_days(context: dg.SensorEvaluationContext, raw: RawDataResource) -> dg.SensorResult:
    """One run per new session folder; catches up every missing day after downtime."""
    requested = set(json.loads(context.cursor)) if context.cursor else set()
    keys, ignored = raw.session_keys()
    for reason in ignored:
        context.log.info(f"ignoring raw folder {reason}")
    open_keys = set(trading_days.get_partition_keys())
    now = time.time()
    runs, waiting = [], []
    for key in keys:
        if key in requested:
            continue
        if key not in open_keys:
            waiting.append(f"{key} (its partition opens when the day ends in New York)")
        elif not folder_is_complete(Path(raw.root) / key, now):
            waiting.append(f"{key} (still being written: no {MARKER} and files changed recently)")
        else:
            runs.append(dg.RunRequest(run_key=key, partition_key=key))
    for reason in waiting:
        context.log.info(f"not yet: {reason}")
    cursor = json.dumps(sorted(requested | {run.partition_key for run in runs}))
    if runs:
        return dg.SensorResult(run_requests=runs, cursor=cursor)
    return dg.SensorResult(skip_reason="no new complete day folder", cursor=cursor)


# The model, forecasts and report carry `AutomationCondition.eager()`: this sensor evaluates
# them, so the newest as-of day is retrained once all its windows passed their checks.
retrain_latest_model = dg.AutomationConditionSensorDefinition(
    "retrain_latest_model",
    target=dg.AssetSelection.groups(MODEL, EVALUATION) - dg.AssetSelection.assets(LEADERBOARD),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
    description="Retrains, forecasts and evaluates the newest as-of day (eager).",
)

# The leaderboard's condition (`AFTER_NEW_REPORT`) asks for a run once any as-of day's report
# is new, so the walk-forward ranking follows every retrained and evaluated day.
refresh_leaderboard = dg.AutomationConditionSensorDefinition(
    "refresh_leaderboard",
    target=dg.AssetSelection.assets(LEADERBOARD),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
    description="Re-ranks the walk-forward leaderboard after a new evaluation report.",
)
