"""Jobs: selections of assets by group."""

from __future__ import annotations

import dagster as dg

from diffstock_assets.groups import EVALUATION, FEATURES, INGEST, MODEL
from diffstock_assets.resources import LEADERBOARD

ingest_job = dg.define_asset_job(
    name="ingest_job",
    selection=dg.AssetSelection.groups(INGEST, FEATURES),
    description="Clean one trading day's raw bars, then build its features and model windows.",
)

train_job = dg.define_asset_job(
    name="train_job",
    # the unpartitioned leaderboard follows the reports: `leaderboard_job`, or its sensor
    selection=dg.AssetSelection.groups(MODEL, EVALUATION) - dg.AssetSelection.assets(LEADERBOARD),
    description="Train the diffusion model as of one trading day (its windows must exist), "
    "forecast its test days with every baseline and log the evaluation report.",
)

leaderboard_job = dg.define_asset_job(
    name="leaderboard_job",
    selection=dg.AssetSelection.assets(LEADERBOARD),
    description="Rank every model of every evaluated as-of day on its test days (walk-forward).",
)
