"""The one Definitions object of the diffstock code location."""

from __future__ import annotations

import dagster as dg

from dagster_project.jobs import ingest_job
from dagster_project.settings import Settings
from diffstock_assets.features.assets import features, windows
from diffstock_assets.ingest.assets import clean_bars
from diffstock_assets.resources import LakeResource, RawDataResource


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    """Assets, checks, jobs and resources wired from `settings` (default: the environment)."""
    settings = settings or Settings.from_env()
    return dg.Definitions(
        assets=[clean_bars, features, windows],
        jobs=[ingest_job],
        resources={
            "raw": RawDataResource(root=str(settings.raw)),
            "lake": LakeResource(root=settings.lake),
        },
        # Each step process imports polars (and later torch): two at a time suits a laptop.
        executor=dg.multiprocess_executor.configured({"max_concurrent": 2}),
    )


defs = build_definitions()
