"""Walk-forward in one command: `train_job` as of every session of a range, then the leaderboard.

    python -m dagster_project.walk_forward 20251107...20251113

trains, forecasts and evaluates the model as of each trading day of the range (oldest first,
one run each), then materialises `leaderboard` over every evaluated as-of day, all in the
persistent Dagster instance (`$DAGSTER_HOME`, as the demo command), so `dagster dev` shows each
partition and the leaderboard. The windows of the sessions each as-of model maps back must
exist (the demo command, or `dagster asset materialize --select clean_bars,features,windows
--partition-range A...B`). A model the promotion gate refuses still has its report: it counts.

`dagster asset materialize --partition-range` cannot run this range: it needs assets with a
single-run backfill policy, and each as-of model is a run of its own.
"""

from __future__ import annotations

import argparse
import json
import sys

import dagster as dg

from dagster_project.definitions import build_definitions
from dagster_project.demo import prepare_dagster_home, run_job
from dagster_project.settings import Settings
from diffstock_assets.partitions import trading_days
from diffstock_assets.resources import LATEST, LEADERBOARD_DOCUMENT, LakeResource


def as_of_days(partition_range: str) -> list[str]:
    """The trading-day keys of `A...B` (both ends sessions), oldest first; a ValueError that
    says what is wrong otherwise."""
    ends = partition_range.split("...")
    if len(ends) != 2:
        raise ValueError(
            f"expected a range START...END such as 20251107...20251113, got {partition_range!r}"
        )
    start, end = ends
    keys = trading_days.get_partition_keys()
    for key in (start, end):
        if key not in keys:
            raise ValueError(f"{key} is not a trading-day partition (an NYSE session, YYYYMMDD)")
    if start > end:
        raise ValueError(f"the range starts after it ends: {partition_range}")
    return keys[keys.index(start) : keys.index(end) + 1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("range", help="as-of days START...END (YYYYMMDD...YYYYMMDD)")
    parser.add_argument(
        "--config-json",
        default=None,
        help="run config of each train_job run, e.g. "
        '\'{"ops": {"forecasts": {"config": {"anchor_stride_s": 300}}}}\'',
    )
    args = parser.parse_args(argv)
    try:
        days = as_of_days(args.range)
        run_config = json.loads(args.config_json) if args.config_json else None
        settings = Settings.from_env()
        settings.resolved_profile()
    except ValueError as error:  # a bad range, JSON, DIFFSTOCK_PROFILE or DIFFSTOCK_SPLIT
        print(f"error: {error}", file=sys.stderr)
        return 2
    prepare_dagster_home(settings)
    defs = build_definitions(settings)
    with dg.DagsterInstance.get() as instance:
        failed = [
            day
            for day in days
            if not run_job(defs, "train_job", day, instance, run_config=run_config)
        ]
        ranked = run_job(defs, "leaderboard_job", None, instance)
    if failed:
        print(f"\ntrain_job failed as of {', '.join(failed)} (left out of the leaderboard)")
    if ranked:
        lake = LakeResource(root=settings.lake)
        print(f"\nLeaderboard: {lake.file_uri(LEADERBOARD_DOCUMENT, LATEST)}")
    return 0 if ranked and not failed else 1


if __name__ == "__main__":
    raise SystemExit(main())
