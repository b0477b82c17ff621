"""Jobs: selections of assets by group."""

from __future__ import annotations

import dagster as dg

from diffstock_assets.groups import INGEST

ingest_job = dg.define_asset_job(
    name="ingest_job",
    selection=dg.AssetSelection.groups(INGEST),
    description="Clean the raw bars of one trading day (or a range of days).",
)
