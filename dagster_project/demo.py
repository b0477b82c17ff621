"""The README's run command: build the demo market if absent, then materialise every day.

Runs go into the persistent local Dagster instance (`$DAGSTER_HOME`, default
`data/dagster_home`), so `dagster dev` afterwards shows every partition and its checks.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import dagster as dg

from dagster_project.definitions import build_definitions
from dagster_project.settings import Settings
from diffstock_assets.evaluation.report import PROMOTION_CHECK
from diffstock_assets.resources import RawDataResource
from diffstock_ml.synthetic import PROFILES, generate_market
from diffstock_ml.train.profiles import PROFILES as PROFILES_BY_NAME

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
        on_day=lambda s: print(f"  {s.day:%Y%m%d}: {'present' if s.skipped else 'written'}"),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--profile", default="demo", choices=sorted(PROFILES), help="synthetic market profile"
    )
    args = parser.parse_args(argv)

    settings = Settings.from_env()
    prepare_dagster_home(settings)
    if settings.raw_is_demo:
        ensure_demo_market(settings, args.profile)
    keys, ignored = RawDataResource(root=str(settings.raw)).session_keys()
    for reason in ignored:
        print(f"ignored raw folder {reason}")
    if not keys:
        print(f"No session folders (YYYYMMDD) under {settings.raw}", file=sys.stderr)
        return 1

    defs = build_definitions(settings)
    failed = []
    with dg.DagsterInstance.get() as instance:
        for key in keys:
            if not _run(defs, "ingest_job", key, instance):
                failed.append(key)
        done = len(keys) - len(failed)
        print(f"\n{done}/{len(keys)} trading days materialised into {settings.lake}")
        profile = PROFILES_BY_NAME[settings.profile]
        if not failed and len(keys) >= profile.days:
            print(f"Training and evaluating the model as of {keys[-1]} ({settings.profile}) ...")
            if not _run(defs, "train_job", keys[-1], instance):
                failed.append(f"diffusion_model {keys[-1]}")
        elif not failed:
            print(f"Not training: the {settings.profile} profile needs {profile.days} days.")

    report = Path(settings.lake) / "evaluation_report" / keys[-1] / "report.md"
    if report.exists():
        print(f"\nEvaluation report: {report}")
    print("\nOpen the Dagster UI (asset graph, partitions, checks):")
    print(f"  DAGSTER_HOME={settings.dagster_home} dagster dev -h 127.0.0.1 -p 3000")
    print("Open the MLflow UI (runs, curves, registered models):")
    print(f"  mlflow ui --backend-store-uri {settings.mlflow_tracking_uri} -h 127.0.0.1 -p 5000")
    return 1 if failed else 0


def _run(defs: dg.Definitions, job_name: str, key: str, instance: dg.DagsterInstance) -> bool:
    result = defs.resolve_job_def(job_name).execute_in_process(
        partition_key=key, instance=instance, raise_on_error=False, run_config=_QUIET
    )
    if result.success:
        print(f"{job_name} {key}: ok", flush=True)
        return True
    failures = [e.step_failure_data.error.message for e in result.get_step_failure_events()]
    if failures and all(PROMOTION_CHECK in message for message in failures):
        # The report was written and logged; only the promotion gate said no (a verdict).
        for check in result.get_asset_check_evaluations():
            reasons = check.metadata.get("reasons")
            print(f"{job_name} {key}: ok, model NOT promoted: {reasons.value if reasons else ''}")
        return True
    print(f"{job_name} {key}: FAILED", flush=True)
    return False


if __name__ == "__main__":
    raise SystemExit(main())
