"""Jobs: selections of assets by group."""

from __future__ import annotations

import dagster as dg

from diffstock_assets.groups import EVALUATION, FEATURES, INGEST, MODEL

ingest_job = dg.define_asset_job(
    name="ingest_job",
    selection=dg.AssetSelection.groups(INGEST, FEATURES),
    description="Clean one trading day's raw bars, then build its features and model windows.",
)

train_job = dg.define_asset_job(
    name="train_job",
    selection=dg.AssetSelection.groups(MODEL, EVALUATION),
    description="Train the diffusion model as of one trading day (its windows must exist), "
    "forecast its test days with every baseline and log the evaluation report.",
)
