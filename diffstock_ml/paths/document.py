"""The path report's files: `paths.md`, the tables as parquet and the two figures."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from diffstock_ml.evaluation.document import markdown
from diffstock_ml.paths.evaluation import PathEvaluation
from diffstock_ml.paths.plots import write_png

DOCUMENT = "paths.md"
METRICS_FILE = "path_metrics.parquet"
RELIABILITY_FILE = "touch_reliability.parquet"
FAN_FIGURE = "path_fan.png"
CRPS_FIGURE = "crps_by_horizon.png"

# what each column of the metrics table means, in `paths.md`
GLOSSARY = (
    ("n_anchors, n_dropped", "anchors scored; dropped for a realised path leaving the session"),
    ("energy_score_bp", "fair energy score of the whole path in bp (the path's CRPS; lower wins)"),
    ("variogram_score", "variogram score, order ½, bp: the dependence between horizons"),
    ("crps_h<h>_bp, crps_mean_bp", "CRPS of the h-second cumulative return; their mean"),
    (
        "touch_<up|down>_<k>bp_forecast, _realised, _brier, _ece",
        "P(the price reaches ±k bp within 30 s): mean forecast, realised frequency, Brier score, "
        "expected calibration error",
    ),
    (
        "mae_<long|short>_var_<a>_bp, _hit_rate, _kupiec_p",
        "the a % VaR of the maximum adverse excursion (bp), its hit rate (should be a %) and "
        "Kupiec's p-value",
    ),
    ("spread_factor", "the factor on each model's spread, fitted on the training days"),
)


def write_path_report(folder: Path, key: str, evaluation: PathEvaluation) -> list[Path]:
    """`paths.md`, the metrics and reliability tables (parquet) and both figures into `folder`."""
    evaluation.metrics.write_parquet(folder / METRICS_FILE)
    evaluation.reliability.write_parquet(folder / RELIABILITY_FILE)
    write_png(evaluation.fan, folder / FAN_FIGURE)
    write_png(evaluation.crps_by_horizon, folder / CRPS_FIGURE)
    (folder / DOCUMENT).write_text(path_document(key, evaluation))
    return [folder / n for n in (DOCUMENT, METRICS_FILE, RELIABILITY_FILE, FAN_FIGURE, CRPS_FIGURE)]


def path_document(key: str, evaluation: PathEvaluation) -> str:
    """The Markdown of `paths.md`: the summary, the figures, every metric and what it means."""
    anchors = evaluation.anchors
    days = ", ".join(anchors["day"].unique(maintain_order=True).to_list())
    glossary = pl.DataFrame(list(GLOSSARY), schema=["column", "meaning"], orient="row")
    return "\n".join(
        [
            f"# Path forecasts of the as-of {key} model",
            "",
            f"Every model drew sample paths of the next 30 s at the same {anchors.height} "
            f"anchors of the test days {days} (one grid: the paths of a symbol never overlap).",
            "",
            "## Summary (lower scores win)",
            "",
            markdown(evaluation.summary()),
            "",
            f"![CRPS by horizon]({CRPS_FIGURE})",
            "",
            f"![sample paths]({FAN_FIGURE})",
            "",
            "## Every metric",
            "",
            markdown(evaluation.by_metric()),
            "",
            "## Columns",
            "",
            markdown(glossary),
            "",
        ]
    )
