"""The as-of `evaluation_report`: every metric and figure, one MLflow run, the promotion check."""

import base64
import json
import tempfile
from pathlib import Path

import dagster as dg
import matplotlib.pyplot as plt
import mlflow as mlflow_api  # the tracking API; the `mlflow` argument below is the resource
import polars as pl

from diffstock_assets.evaluation.config import EvaluationReportConfig
from diffstock_assets.evaluation.forecasts import FORECASTS_FILE
from diffstock_assets.groups import EVALUATION
from diffstock_assets.metadata import markdown_table
from diffstock_assets.mlflow_resource import MLflowResource
from diffstock_assets.partitions import trading_days
from diffstock_assets.registry import crown
from diffstock_assets.resources import LakeResource
from diffstock_ml.evaluation import evaluate
from diffstock_ml.evaluation.promotion import (
    ChampionMove,
    Promotion,
    promotion_decision,
    verdicts,
)
from diffstock_ml.forecasting import DIFFUSION, to_model_forecasts
from diffstock_ml.plots import report_figures

ASSET = "evaluation_report"
PROMOTION_CHECK = "model_not_better_than_baseline"
HEADLINE = ("crps_bp", "coverage_90", "sharpness_bp", "directional_accuracy", "backtest_sharpe")


def build_evaluation_report(forecasts: dg.AssetsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        name=ASSET,
        partitions_def=trading_days,
        group_name=EVALUATION,
        deps=[forecasts],
        check_specs=[
            dg.AssetCheckSpec(
                PROMOTION_CHECK,
                asset=ASSET,
                blocking=True,
                description="The model beats the EWMA baseline (DM p < 0.05) with 90 % coverage "
                "within ±3 pp; only then may its version become the MLflow alias `champion`, "
                "which moves only forward (a newer as-of day, or better on the same test days).",
            )
        ],
        kinds={"mlflow", "matplotlib"},
        automation_condition=dg.AutomationCondition.eager(),
        code_version="1",
    )
    def evaluation_report(
        context: dg.AssetExecutionContext,
        config: EvaluationReportConfig,
        lake: LakeResource,
        mlflow: MLflowResource,
    ) -> dg.MaterializeResult:
        """All evaluation metrics and figures of this as-of model, logged to MLflow."""
        key = context.partition_key
        table = lake.read_parquet("forecasts", key, FORECASTS_FILE)
        forecasts = to_model_forecasts(table)
        baselines = [name for name in forecasts if name != DIFFUSION]
        result = evaluate(forecasts, baselines, config.to_evaluation_config())
        promotion = promotion_decision(
            result.overall,
            DIFFUSION,
            config.promotion_baseline,
            config.promotion_max_dm_pvalue,
            config.promotion_coverage_tolerance,
        )
        model_run = json.loads(
            (lake.local_folder("diffusion_model", key) / "summary.json").read_text()
        )
        tags = {
            "dagster_run_id": context.run.run_id,
            "as_of": key,
            "training_run_id": model_run["mlflow_run_id"],
            "mlflow.parentRunId": model_run["mlflow_run_id"],
        }
        with (
            tempfile.TemporaryDirectory() as scratch,
            mlflow.start_run(run_name=f"{ASSET} {key}", tags=tags) as run,
        ):
            folder = Path(scratch)
            figures = _save_figures(report_figures(result, table), folder)
            for name, frame in _tables(result).items():
                frame.write_csv(folder / f"{name}.csv")
            mlflow_api.log_metrics(result.metrics())
            mlflow_api.log_artifacts(str(folder))
            move = (
                crown(
                    mlflow,
                    model_run["registered_model"],
                    model_run["registered_version"],
                    promotion.crps_bp,
                )
                if promotion.promoted
                else None
            )
            report = _report_markdown(
                key, result, promotion, config.promotion_baseline, figures, move
            )
            (folder / "report.md").write_text(report)
            mlflow_api.log_artifact(str(folder / "report.md"))
            lake.write_folder(ASSET, key, lambda f: _copy_tree(folder, f))
            reliability_png = (folder / "reliability_diagram.png").read_bytes()
        diffusion = result.overall.filter(pl.col("model") == DIFFUSION).row(0, named=True)
        return dg.MaterializeResult(
            metadata={
                "summary": markdown_table(_summary(result.overall)),
                "verdicts": dg.MetadataValue.md("\n".join(verdicts(result.overall, DIFFUSION))),
                "reliability_diagram": dg.MetadataValue.md(_inline_png(reliability_png)),
                "mlflow_run": dg.MetadataValue.url(mlflow.run_link(run.info.run_id)),
                "mlflow_run_id": run.info.run_id,
                "training_run_id": model_run["mlflow_run_id"],
                "promoted": promotion.promoted,
                "champion": _champion_text(move),
                **{
                    f"diffusion_{m}": float(diffusion[m])
                    for m in HEADLINE
                    if diffusion[m] is not None
                },
            },
            check_results=[
                dg.AssetCheckResult(
                    check_name=PROMOTION_CHECK,
                    passed=promotion.promoted,
                    description=f"the as-of {key} model: "
                    + ("; ".join(promotion.reasons) or _champion_text(move)),
                    metadata={
                        "reasons": "; ".join(promotion.reasons) or "promoted",
                        "champion": _champion_text(move),
                        "crps_bp": promotion.crps_bp,
                        "baseline_crps_bp": promotion.baseline_crps_bp,
                        "dm_pvalue": promotion.dm_pvalue
                        if promotion.dm_pvalue is not None
                        else -1.0,
                        "coverage_90": promotion.coverage_90,
                    },
                )
            ],
        )

    return evaluation_report


def _summary(overall: pl.DataFrame) -> pl.DataFrame:
    columns = ["model", "crps_bp", "coverage_50", "coverage_90", "sharpness_bp", "mae_bp"]
    columns += ["directional_accuracy", "var_1_hit_rate", "var_5_hit_rate", "backtest_sharpe"]
    return overall.select(c for c in columns if c in overall.columns).sort("crps_bp")


def _tables(result) -> dict[str, pl.DataFrame]:
    return {
        "overall": result.overall,
        "by_time_of_day": result.by_time_of_day,
        "by_volatility_decile": result.by_volatility_decile,
        "by_symbol": result.by_symbol,
        "diebold_mariano": result.diebold_mariano,
        "pit_histograms": result.pit_histograms,
    }


def _save_figures(figures: dict, folder: Path) -> list[str]:
    names = []
    for name, figure in figures.items():
        figure.savefig(folder / f"{name}.png", dpi=110)
        plt.close(figure)
        names.append(f"{name}.png")
    return names


def _champion_text(move: ChampionMove | None) -> str:
    if move is None:
        return "not a candidate: the gate refused the model"
    return ("becomes champion: " if move.moves else "champion does not move: ") + move.reason


def _report_markdown(
    key: str,
    result,
    promotion: Promotion,
    baseline: str,
    figures: list[str],
    move: ChampionMove | None,
) -> str:
    verdict = (
        f"**Passed the gate**: beats {baseline} with coverage in range; {_champion_text(move)}."
        if promotion.promoted
        else "**Not promoted**: " + "; ".join(promotion.reasons) + "."
    )
    summary = markdown_table(_summary(result.overall)).value
    lines = [
        f"# Evaluation of the diffusion model as of {key}",
        "",
        verdict,
        "",
        "## Does the model beat each baseline?",
        *verdicts(result.overall, DIFFUSION),
        "",
        "## Summary",
        summary,
        "",
        "All metrics per model are in `overall.csv`; breakdowns by time of day, volatility decile"
        " and symbol in their own files. Tests (DM, VaR, directional, backtest) use"
        " non-overlapping 30 s targets.",
        "",
        *(f"![{name}]({name})" for name in figures),
    ]
    return "\n".join(lines) + "\n"


def _inline_png(data: bytes) -> str:
    return f"![reliability](data:image/png;base64,{base64.b64encode(data).decode()})"


def _copy_tree(source: Path, target: Path) -> None:
    for path in source.iterdir():
        (target / path.name).write_bytes(path.read_bytes())
