"""The evaluation report as files: figures, one CSV per table and `report.md` that links them."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import polars as pl

from diffstock_ml.evaluation.promotion import ChampionMove, Promotion, verdicts
from diffstock_ml.evaluation.report import EvaluationResult
from diffstock_ml.plots import report_figures

REPORT_FILE = "report.md"
RELIABILITY_FIGURE = "reliability_diagram.png"
SUMMARY_COLUMNS = (
    *("model", "crps_bp", "coverage_50", "coverage_90", "sharpness_bp", "mae_bp"),
    *("directional_accuracy", "var_1_hit_rate", "var_5_hit_rate", "backtest_sharpe"),
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
        *(f"![{name}]({name})" for name in figures),
    ]
    return "\n".join(lines) + "\n"
