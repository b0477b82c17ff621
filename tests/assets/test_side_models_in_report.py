"""train_job on the tiny profile: the image CNN, the point regressors and the calibration of the
direction classifiers reach the forecasts' tables and the end of the report (issue 12, 3-5)."""

from pathlib import Path

import numpy as np
import polars as pl
from conftest import TINY_DAYS as DAYS

from diffstock_ml.baselines import DIRECTION_CLASSIFIERS, POINT_REGRESSORS


def test_side_models_are_forecast_and_reported(tiny_trained) -> None:
    settings = tiny_trained[0]
    folder = Path(settings.lake) / "forecasts" / DAYS[-1]
    directions = pl.read_parquet(folder / "direction.parquet")
    assert set(directions["split"]) == {"val", "test"}
    for name in DIRECTION_CLASSIFIERS:  # image_cnn_direction among them
        p = directions[f"prob_up_{name}"].to_numpy()
        assert np.isfinite(p).all() and ((p >= 0) & (p <= 1)).all(), name
    points = pl.read_parquet(folder / "points.parquet")
    test_rows = directions.filter(pl.col("split") == "test").select("day", "symbol", "second")
    assert points.select("day", "symbol", "second").equals(test_rows)
    for name in POINT_REGRESSORS:
        assert np.isfinite(points[f"point_{name}"].to_numpy()).all(), name

    report = Path(settings.lake) / "evaluation_report" / DAYS[-1]
    text = (report / "report.md").read_text()
    points_at = text.index("## Point forecasts of the 30 s return")
    assert points_at > text.index("## Summary")
    assert points_at < text.index("## Direction classifiers, calibrated on validation days")
    table = pl.read_csv(report / "point_forecasts.csv")
    assert set(POINT_REGRESSORS) | {"diffusion", "ewma_gaussian"} <= set(table["model"])
    scores = pl.read_csv(report / "direction_calibration.csv")
    assert set(scores["model"]) == set(DIRECTION_CLASSIFIERS)
    assert set(scores["method"]) == {"raw", "platt", "isotonic"}
    assert (report / "direction_thresholds.csv").exists()
    assert (report / "direction_reliability.csv").exists()
