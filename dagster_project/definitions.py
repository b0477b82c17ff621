"""The one Definitions object of the diffstock code location."""

from __future__ import annotations

import sys

import dagster as dg

from dagster_project.jobs import ingest_job, leaderboard_job, train_job
from dagster_project.sensors import new_trading_days, refresh_leaderboard, retrain_latest_model
from dagster_project.settings import Settings
from diffstock_assets.console import concise_console_logger
from diffstock_assets.evaluation.assets import build_evaluation_report, build_forecasts
from diffstock_assets.evaluation.leaderboard import leaderboard
from diffstock_assets.evaluation.paths import build_path_report
from diffstock_assets.features.assets import features, windows
from diffstock_assets.ingest.assets import clean_bars
from diffstock_assets.mlflow_resource import MLflowResource
from diffstock_assets.model.assets import build_diffusion_model
from diffstock_assets.resources import ComputeResource, LakeResource, RawDataResource


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    """Assets, checks, jobs and resources wired from `settings` (default: the environment)."""
    settings = settings or Settings.from_env()
    profile = settings.resolved_profile()
    model = build_diffusion_model(profile)
    forecasts = build_forecasts(profile, model)
    # the path report joins the evaluation group (so `train_job`) for a path model only
    paths = [build_path_report(profile, model)] if profile.model.path_horizons else []
    return dg.Definitions(
        assets=[
            clean_bars,
            features,
            windows,
            model,
            forecasts,
            build_evaluation_report(model, forecasts),
            *paths,
            leaderboard,
        ],
        jobs=[ingest_job, train_job, leaderboard_job],
        sensors=[new_trading_days, retrain_latest_model, refresh_leaderboard],
        resources={
            "raw": RawDataResource(root=str(settings.raw)),
            "lake": LakeResource(root=settings.lake),
            "mlflow": MLflowResource(
                tracking_uri=settings.mlflow_tracking_uri,
                artifact_location=str(settings.mlflow_artifacts),
            ),
            "compute": ComputeResource(
                device=settings.device, scratch_root=str(settings.data / "scratch")
            ),
        },
        loggers={"console": concise_console_logger},
        # two step processes at a time suit a laptop
        executor=dg.multiprocess_executor.configured({"max_concurrent": 2, **step_start()}),
    )


def step_start() -> dict:
    """How step processes start. On Linux: forked from a server that imported this code location
    once per run (torch, polars, mlflow: ~10 s on 2 cores) instead of importing it again for
    every step. Elsewhere Dagster's default, `spawn`: Windows has no fork, and on macOS a fork
    after torch has loaded Apple's frameworks is not safe (why Python spawns there too).
    """
    if not sys.platform.startswith("linux"):
        return {}
    return {"start_method": {"forkserver": {"preload_modules": [__name__]}}}


defs = build_definitions()
