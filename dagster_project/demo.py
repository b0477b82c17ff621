"""The README's run command: build the demo market if absent, then materialise every day.

Runs go into the persistent local Dagster instance (`$DAGSTER_HOME`, default
`data/dagster_home`), so `dagster dev` afterwards shows every partition and its checks.
"""

from __future__ import annotations

import argparse
import os
import sys

import dagster as dg

from dagster_project.definitions import build_definitions
from dagster_project.settings import Settings
from diffstock_assets.evaluation.checks import PROMOTION_CHECK
from diffstock_assets.partitions import sessions_ending
from diffstock_assets.resources import PATH_DOCUMENT, REPORT, LakeResource, RawDataResource
from diffstock_ml.synthetic import PROFILES, generate_market

_INSTANCE_YAML = """\
# Written by `python -m dagster_project.demo`; edit freely (it is not overwritten).
telemetry:
  enabled: false
concurrency:
  pools:
    default_limit: 1  # the `gpu` pool (training) runs one step at a time
"""


# Step-level DEBUG events stay in the instance (and the UI); the console shows INFO and above.
_QUIET = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def prepare_dagster_home(settings: Settings) -> None:
    """Export DAGSTER_HOME and give it a dagster.yaml, so runs persist across commands."""
    os.environ["DAGSTER_HOME"] = str(settings.dagster_home)
    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    config = settings.dagster_home / "dagster.yaml"
    if not config.exists():
        config.write_text(_INSTANCE_YAML)


def ensure_demo_market(settings: Settings, profile: str) -> None:
    """Generate the synthetic market into the demo raw folder (days already there are kept)."""
    config = PROFILES[profile]
    print(
        f"Synthetic '{profile}' market ({len(config.symbols)} symbols, {config.start}.."
        f"{config.end}) in {settings.raw}",
        flush=True,
    )
    generate_market(
        config,
        settings.raw,
        # one process: the writes already use both cores, and a spawned worker first imports
        # ~2.5 s of libraries (2 cores: tiny 1.6 s alone vs 4.1 s with two, demo 7.9 vs 8.5 s)
        workers=1,
        on_day=lambda s: print(f"  {s.day:%Y%m%d}: {'present' if s.skipped else 'written'}"),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--profile", default="demo", choices=sorted(PROFILES), help="synthetic market profile"
    )
    args = parser.parse_args(argv)

    try:
        settings = Settings.from_env()
        settings.resolved_profile()
    except ValueError as error:  # a bad DIFFSTOCK_PROFILE or DIFFSTOCK_SPLIT: one line, no trace
        print(f"error: {error}", file=sys.stderr)
        return 2
    prepare_dagster_home(settings)
    if settings.raw_is_demo:
        ensure_demo_market(settings, args.profile)
    elif not settings.raw.is_dir():
        print(
            f"error: the raw folder {settings.raw} does not exist: set DIFFSTOCK_RAW to the "
            "folder that holds your day folders (YYYYMMDD/SYMBOL.csv)",
            file=sys.stderr,
        )
        return 1
    keys, ignored = RawDataResource(root=str(settings.raw)).session_keys()
    for reason in ignored:
        print(f"ignored raw folder {reason}")
    if not keys:
        print(
            f"error: no session folders in {settings.raw}: it needs one folder per NYSE "
            "session named YYYYMMDD holding SYMBOL.csv files (see README, Your own data)",
            file=sys.stderr,
        )
        return 1

    problem = _cannot_train(settings, keys)
    if problem:  # said before any work: nothing would end in a report
        print(f"error: {problem}", file=sys.stderr)
        return 1

    defs = build_definitions(settings)
    failed = []
    with dg.DagsterInstance.get() as instance:
        for key in keys:
            if not run_job(defs, "ingest_job", key, instance):
                failed.append(key)
        done = len(keys) - len(failed)
        print(f"\n{done}/{len(keys)} trading days materialised into {settings.lake}")
        if not failed:
            print(f"Training and evaluating the model as of {keys[-1]} ...", flush=True)
            if not run_job(defs, "train_job", keys[-1], instance):
                failed.append(f"diffusion_model {keys[-1]}")

    _where_to_look(settings, keys[-1])
    return 1 if failed else 0


def _where_to_look(settings: Settings, as_of: str) -> None:
    """Print where the as-of day's reports are and how to open both UIs."""
    lake = LakeResource(root=settings.lake)
    if lake.has_file(REPORT, as_of):
        print(f"\nEvaluation report: {lake.file_uri(REPORT, as_of)}")
    if lake.has_file(PATH_DOCUMENT, as_of):  # path profiles (demo_paths) only
        print(f"Path report: {lake.file_uri(PATH_DOCUMENT, as_of)}")
    print("\nOpen the Dagster UI (asset graph, partitions, checks):")
    print(f"  DAGSTER_HOME={settings.dagster_home} dagster dev -h 127.0.0.1 -p 3000")
    print("Open the MLflow UI (runs, curves, registered models):")
    print(f"  mlflow ui --backend-store-uri {settings.mlflow_tracking_uri} -h 127.0.0.1 -p 5000")


def _cannot_train(settings: Settings, keys: list[str]) -> str | None:
    """Why the model cannot be trained as of the newest day (None when it can)."""
    profile = settings.resolved_profile()
    split = "/".join(map(str, profile.split))
    source = "DIFFSTOCK_SPLIT" if settings.split else f"the {profile.name} profile"
    hint = "set DIFFSTOCK_SPLIT=train,val,test (e.g. 3,1,1) to use fewer"
    if len(keys) < profile.days:
        return (
            f"found {len(keys)} sessions in {settings.raw}, but {source}'s split {split} needs "
            f"{profile.days}; add sessions or {hint}"
        )
    needed = sessions_ending(keys[-1], profile.days)
    missing = sorted(set(needed) - set(keys))
    if missing:
        return (
            f"the model as of {keys[-1]} needs the {profile.days} sessions {needed[0]}.."
            f"{needed[-1]} ({source}'s split {split}), and {len(missing)} have no raw folder: "
            f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}; add them or {hint}"
        )
    return None


def run_job(
    defs: dg.Definitions,
    job_name: str,
    key: str | None,
    instance: dg.DagsterInstance,
    run_config: dict | None = None,
) -> bool:
    """Run `job_name` (for partition `key`) in process; True when it succeeded or when only the
    promotion gate refused the model (the report was written: a verdict, not a failure)."""
    label = f"{job_name} {key}" if key else job_name
    result = defs.resolve_job_def(job_name).execute_in_process(
        partition_key=key,
        instance=instance,
        raise_on_error=False,
        run_config={**(run_config or {}), **_QUIET},
    )
    if result.success:
        print(f"{label}: ok", flush=True)
        return True
    failures = [e.step_failure_data.error.message for e in result.get_step_failure_events()]
    if failures and all(PROMOTION_CHECK in message for message in failures):
        # The report was written and logged; only the promotion gate said no (a verdict).
        for check in result.get_asset_check_evaluations():
            reasons = check.metadata.get("reasons")
            print(f"{label}: ok, model NOT promoted: {reasons.value if reasons else ''}")
        return True
    print(f"{label}: FAILED", flush=True)
    return False


if __name__ == "__main__":
    raise SystemExit(main())
