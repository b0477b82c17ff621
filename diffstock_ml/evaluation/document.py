"""The evaluation report as files: figures, one CSV per table and `report.md` that links them."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import polars as pl

from diffstock_ml.evaluation.criteria import criteria_table
from diffstock_ml.evaluation.promotion import ChampionMove, Promotion, verdicts
from diffstock_ml.evaluation.quantiles import QUANTILE_LEVELS, pinball_column
from diffstock_ml.evaluation.report import EvaluationResult
from diffstock_ml.plots import report_figures

REPORT_FILE = "report.md"
RELIABILITY_FIGURE = "reliability_diagram.png"
CRITERIA_FILE = "success_criteria.csv"
SUMMARY_COLUMNS = (
    *("model", "crps_bp", "coverage_50", "coverage_90", "sharpness_bp", "mae_bp", "wql"),
    *("directional_accuracy", "var_1_hit_rate", "var_5_hit_rate", "backtest_sharpe"),
)
DISTRIBUTION_COLUMNS = (
    *(pinball_column(level) for level in QUANTILE_LEVELS),
    *("pinball_mean_bp", "wql", "wasserstein_z", "wasserstein_pit", "wasserstein_bins"),
)


def markdown(frame: pl.DataFrame, empty: str = "none") -> str:
    """A frame as a Markdown table, every row and column, floats to 4 decimals."""
    if frame.height == 0:
        return empty
    with pl.Config(
        tbl_formatting="MARKDOWN",
        tbl_hide_column_data_types=True,
        tbl_hide_dataframe_shape=True,
        tbl_rows=-1,
        tbl_cols=-1,
        tbl_width_chars=10_000,
        fmt_str_lengths=120,
        float_precision=4,
    ):
        return str(frame)


def summary(overall: pl.DataFrame) -> pl.DataFrame:
    """The headline columns of every model, best CRPS first."""
    return overall.select(c for c in SUMMARY_COLUMNS if c in overall.columns).sort("crps_bp")


def distribution_table(overall: pl.DataFrame) -> pl.DataFrame:
    """Pinball loss per stored quantile level, wQL and the binned Wasserstein distances."""
    columns = [c for c in DISTRIBUTION_COLUMNS if c in overall.columns]
    return overall.select("model", *columns).sort("pinball_mean_bp")


def champion_text(move: ChampionMove | None) -> str:
    """What happened to the `champion` alias (None: the gate refused the model)."""
    if move is None:
        return "not a candidate: the gate refused the model"
    return ("becomes champion: " if move.moves else "champion does not move: ") + move.reason


def write_report(
    folder: Path,
    key: str,
    result: EvaluationResult,
    table: pl.DataFrame,
    promotion: Promotion,
    baseline: str,
    move: ChampionMove | None,
    model: str = "diffusion",
) -> None:
    """Every figure (PNG), every table (CSV) and `report.md` of the as-of `key` into `folder`."""
    figures = []
    for name, figure in report_figures(result, table).items():
        figure.savefig(folder / f"{name}.png", dpi=110)
        plt.close(figure)
        figures.append(f"{name}.png")
    for name, frame in _tables(result).items():
        frame.write_csv(folder / f"{name}.csv")
    result.success_criteria().write_csv(folder / CRITERIA_FILE)
    text = _report_markdown(key, result, promotion, baseline, figures, move, model)
    (folder / REPORT_FILE).write_text(text)


def _tables(result: EvaluationResult) -> dict[str, pl.DataFrame]:
    return {
        "overall": result.overall,
        "by_time_of_day": result.by_time_of_day,
        "by_volatility_decile": result.by_volatility_decile,
        "by_symbol": result.by_symbol,
        "diebold_mariano": result.diebold_mariano,
        "pit_histograms": result.pit_histograms,
        **_side_model_tables(result),
    }


def _report_markdown(
    key: str,
    result: EvaluationResult,
    promotion: Promotion,
    baseline: str,
    figures: list[str],
    move: ChampionMove | None,
    model: str,
) -> str:
    verdict = (
        f"**Passed the gate**: beats {baseline} with coverage in range; {champion_text(move)}."
        if promotion.promoted
        else "**Not promoted**: " + "; ".join(promotion.reasons) + "."
    )
    lines = [
        f"# Evaluation of the diffusion model as of {key}",
        "",
        "## Success criteria of the seed plan",
        markdown(criteria_table(result.success_criteria())),
        "",
        "CRPS against `rolling_gaussian` (historical volatility); calibration: every central"
        " interval's randomised-PIT coverage within 10 % of its level (worst relative deviation"
        " shown); Sharpe of the 30 s backtest net of costs and gross; inference: measured"
        f" sampling time per anchor, ms. n/a: the model has no such input. `{CRITERIA_FILE}`.",
        "",
        verdict,
        "",
        "## Does the model beat each baseline?",
        *verdicts(result.overall, model),
        "",
        "## Summary",
        markdown(summary(result.overall)),
        "",
        "All metrics per model are in `overall.csv`; breakdowns by time of day, volatility decile"
        " and symbol in their own files. Tests (DM, VaR, directional, backtest) use"
        " non-overlapping 30 s targets.",
        "",
        "## Quantile losses and distribution distance",
        markdown(distribution_table(result.overall)),
        "",
        "Pinball loss (bp) at the nine stored quantile levels and its mean; `wql`: GluonTS's"
        " weighted quantile loss (2 Σ pinball / Σ |y|, mean over levels); `wasserstein_z` (in"
        " units of sigma) and `wasserstein_pit`: Wasserstein-1 between outcomes and forecasts"
        " pooled in deciles of forecast spread, mean over bins (0 when calibrated, up to"
        " sampling noise; see docs/evaluation.md).",
        "",
        *(f"![{name}]({name})" for name in figures),
    ]
    lines.extend(_side_model_sections(result))
    return "\n".join(lines) + "\n"


# --- issue 12 items 4-5: point forecasts and the calibrated direction classifiers ------------


def _side_model_tables(result: EvaluationResult) -> dict[str, pl.DataFrame]:
    tables = {"point_forecasts": result.point_forecasts}
    if (calibration := result.direction_calibration) is not None:
        tables |= {
            "direction_calibration": calibration.scores,
            "direction_reliability": calibration.reliability,
            "direction_thresholds": calibration.thresholds,
        }
    return {name: frame for name, frame in tables.items() if frame is not None}


def _side_model_sections(result: EvaluationResult) -> list[str]:
    """The point forecasts and direction classifiers sections, at the end of `report.md`."""
    lines = []
    if result.point_forecasts is not None:
        lines += [
            "",
            "## Point forecasts of the 30 s return",
            markdown(result.point_forecasts),
            "",
            "Point regressors (seed 004, MSE on ret_30s / sigma_30s) and the mean of each"
            " distributional model's samples, scored as returns: MAE and RMSE in bp, `r2` around"
            " the realised mean, `r2_vs_zero` against forecasting no move, directional accuracy"
            " on non-overlapping anchors without zero moves. `point_forecasts.csv`.",
        ]
    if (calibration := result.direction_calibration) is not None:
        lines += [
            "",
            "## Direction classifiers, calibrated on validation days",
            markdown(calibration.scores),
            "",
            "P(up) of each classifier raw and recalibrated on the validation days (Platt,"
            " isotonic), scored on the test days' non-zero moves: Brier score, log loss,"
            " expected calibration error over equal-count bins (reliability per bin in"
            " `direction_reliability.csv`).",
            "",
            "### Confidence threshold chosen on validation days",
            markdown(calibration.thresholds),
            "",
            "Trade the call when |P(up) − 0.5| > threshold; the threshold maximises the"
            " validation Sharpe net of costs over thresholds that keep 5–100 % of validation"
            " anchors; test figures with that threshold frozen (Sharpe net and gross).",
        ]
    return lines
