"""The walk-forward `leaderboard`: every evaluated as-of day's models ranked together."""

import dataclasses
import tempfile
from pathlib import Path

import dagster as dg

import diffstock_ml.leaderboard as walk_forward
from diffstock_assets.evaluation.assets import FORECASTS, REPORT_ASSET, copy_tree
from diffstock_assets.groups import EVALUATION
from diffstock_assets.metadata import markdown_table, png_markdown, table_metadata
from diffstock_assets.mlflow_resource import MLflowResource
from diffstock_assets.resources import (
    FORECAST_SAMPLES,
    LATEST,
    LEADERBOARD,
    LEADERBOARD_BY_DAY,
    LEADERBOARD_DOCUMENT,
    LEADERBOARD_FIGURE,
    LEADERBOARD_LOSSES,
    LEADERBOARD_SUMMARY,
    LakeResource,
)
from diffstock_ml.evaluation.report import flat_metrics
from diffstock_ml.forecasting import to_model_forecasts

_DEFAULTS = walk_forward.LeaderboardConfig()

# Requested once any `evaluation_report` partition is newly materialised (and nothing upstream
# or of its own is still running). Not `eager()`: on an unpartitioned asset its "no missing
# dependency" would wait for every report partition since 2000. A new report in a run that
# also targets the leaderboard does not request it again.
AFTER_NEW_REPORT = (
    dg.AutomationCondition.any_deps_updated()
    .allow(dg.AssetSelection.assets(REPORT_ASSET))
    .since_last_handled()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("after_new_report")


class LeaderboardRunConfig(dg.Config):
    """The skill reference, confidence levels and bootstrap of the leaderboard."""

    baseline: str = _DEFAULTS.baseline
    ci_level: float = _DEFAULTS.ci_level
    mcs_size: float = _DEFAULTS.mcs_size
    n_bootstrap: int = _DEFAULTS.n_bootstrap
    block_length: int | None = _DEFAULTS.block_length  # None: Politis–White (arch)
    seed: int = _DEFAULTS.seed

    def to_leaderboard_config(self) -> walk_forward.LeaderboardConfig:
        return walk_forward.LeaderboardConfig(
            baseline=self.baseline,
            ci_level=self.ci_level,
            mcs_size=self.mcs_size,
            n_bootstrap=self.n_bootstrap,
            block_length=self.block_length,
            seed=self.seed,
        )


@dg.asset(
    name=LEADERBOARD,
    group_name=EVALUATION,
    deps=[REPORT_ASSET, FORECASTS],
    kinds={"mlflow", "matplotlib"},
    automation_condition=AFTER_NEW_REPORT,
    code_version="1",
)
def leaderboard(
    context: dg.AssetExecutionContext,
    config: LeaderboardRunConfig,
    lake: LakeResource,
    mlflow: MLflowResource,
) -> dg.MaterializeResult:
    """Every model of every evaluated as-of day ranked on its test days: CRPS per day, mean with
    a confidence interval, skill vs EWMA, coverage and the Model Confidence Set."""
    as_of_days = evaluated_as_of_days(context.instance)
    context.log.info(f"leaderboard over {len(as_of_days)} as-of days: {', '.join(as_of_days)}")
    forecasts = {
        day: to_model_forecasts(lake.read_table(FORECAST_SAMPLES, day)) for day in as_of_days
    }
    settings = config.to_leaderboard_config()
    try:
        board = walk_forward.leaderboard(forecasts, settings)
    except ValueError as error:  # a missing baseline, too few shared timestamps: say which
        raise dg.Failure(description=str(error), allow_retries=False) from error
    tags = {"dagster_run_id": context.run.run_id, "as_of_days": ",".join(as_of_days)}
    with (
        tempfile.TemporaryDirectory() as scratch,
        mlflow.start_run(run_name=LEADERBOARD, tags=tags) as run,
    ):
        folder = Path(scratch)
        _write_files(folder, board, settings.baseline)
        mlflow.log_params({"as_of_days": ",".join(as_of_days), **dataclasses.asdict(settings)})
        mlflow.log_metrics(flat_metrics(board.summary))  # in_mcs as 0/1
        mlflow.log_artifacts(folder)
        uri = lake.write_folder(LEADERBOARD, LATEST, lambda target: copy_tree(folder, target))
    return dg.MaterializeResult(
        metadata={
            **_metadata(board, as_of_days),
            "mlflow_run": dg.MetadataValue.url(mlflow.run_link(run.info.run_id)),
            "mlflow_run_id": run.info.run_id,
            "path": dg.MetadataValue.path(uri),
        }
    )


def evaluated_as_of_days(instance: dg.DagsterInstance) -> list[str]:
    """The `evaluation_report` partitions the instance has materialised, oldest first."""
    days = sorted(instance.get_materialized_partitions(dg.AssetKey(REPORT_ASSET)))
    if not days:
        raise dg.Failure(
            description=f"no {REPORT_ASSET} partition is materialised yet: run train_job for an "
            "as-of day first (e.g. `python -m dagster_project.walk_forward A...B`).",
            allow_retries=False,
        )
    return days


def _write_files(folder: Path, board: walk_forward.Leaderboard, baseline: str) -> None:
    board.summary.write_parquet(folder / LEADERBOARD_SUMMARY.name)
    board.by_day.write_parquet(folder / LEADERBOARD_BY_DAY.name)
    board.losses.write_parquet(folder / LEADERBOARD_LOSSES.name)
    (folder / LEADERBOARD_FIGURE.name).write_bytes(board.skill_figure)
    text = walk_forward.document(board, baseline, LEADERBOARD_FIGURE.name)
    (folder / LEADERBOARD_DOCUMENT.name).write_text(text)


def _metadata(board: walk_forward.Leaderboard, as_of_days: list[str]) -> dict:
    summary = board.summary
    return {
        **table_metadata(summary.height, summary.schema),
        "summary": markdown_table(summary),
        "skill_by_day": png_markdown(board.skill_figure, "skill per test day"),
        "crps_by_day": markdown_table(walk_forward.crps_by_day(board.by_day)),
        "model_confidence_set": ", ".join(summary.filter("in_mcs")["model"]),
        "as_of_days": ", ".join(as_of_days),
        "test_days": board.by_day["day"].n_unique(),
        "mcs_timestamps": board.losses.height,
    }
