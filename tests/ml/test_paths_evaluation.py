"""`evaluate_paths` on the tiny synthetic market: every model (the path diffusion bundle, the
path baselines, the oracle) scored at the same non-overlapping grid anchors of the test day, the
figures and the written report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from matplotlib.figure import Figure
from test_paths_diffusion import untrained_path_bundle

from diffstock_ml.baselines import ScaleFit
from diffstock_ml.market import HORIZON_S
from diffstock_ml.paths import HORIZONS, PathEvaluationConfig, evaluate_paths, write_path_report
from diffstock_ml.paths.document import DOCUMENT
from diffstock_ml.paths.evaluation import grid_anchors
from diffstock_ml.splits import Splits
from diffstock_ml.synthetic import default_latent_root
from diffstock_ml.windows import DayArrays, load_day_arrays

CONFIG = PathEvaluationConfig(
    n_samples=16, max_anchors=120, scale_fit=ScaleFit(max_anchors=300, n_samples=20)
)
MODELS = ["diffusion_paths", "ewma_random_walk", "garch_t_paths", "oracle_paths"]


@pytest.fixture(scope="module")
def arrays(tiny_windows: list[Path]) -> dict[str, DayArrays]:
    days = [load_day_arrays(folder) for folder in tiny_windows]
    return {day.day: day for day in days}


@pytest.fixture(scope="module")
def splits(arrays: dict[str, DayArrays]) -> Splits:
    train, val, test = sorted(arrays)
    return Splits((train,), (val,), (test,))


@pytest.fixture(scope="module")
def evaluation(arrays, splits, tiny_market: Path):
    bundle = untrained_path_bundle(list(arrays.values()), spread_factor=1.0)
    messages: list[str] = []
    result = evaluate_paths(
        bundle, arrays, splits, CONFIG, default_latent_root(tiny_market), messages.append
    )
    return result, messages


def test_every_model_gets_one_row_of_every_path_metric(evaluation) -> None:
    result, messages = evaluation
    table = result.metrics
    assert table["model"].to_list() == MODELS
    for column in (
        "energy_score_bp",
        "variogram_score",
        *(f"crps_h{h}_bp" for h in HORIZONS),
        "crps_mean_bp",
        "touch_up_5bp_forecast",
        "touch_down_10bp_ece",
        "mae_long_var_5_hit_rate",
        "mae_short_var_1_kupiec_p",
        "spread_factor",
    ):
        assert column in table.columns, column
        assert table[column].is_finite().all(), column
    assert table["spread_factor"][0] == 1.0  # the bundle's own factor
    assert set(result.reliability["model"]) == set(MODELS)
    assert any("oracle_paths: 120 anchors x 16 paths" in m for m in messages)


def test_all_models_are_scored_at_the_same_non_overlapping_grid_anchors(evaluation) -> None:
    result, _ = evaluation
    anchors = result.anchors
    assert anchors.height == CONFIG.max_anchors
    assert (result.metrics["n_anchors"] == anchors.height).all()  # every model, every anchor
    assert (result.metrics["n_dropped"] == 0).all()
    assert (anchors["second"] % CONFIG.anchor_stride_s == 0).all()
    gaps = anchors.sort("day", "symbol", "second").select(
        pl.col("second").diff().over("day", "symbol").alias("gap")
    )
    assert gaps["gap"].drop_nulls().min() >= HORIZON_S  # one symbol's paths never overlap
    assert anchors["symbol"].n_unique() > 1


def test_the_figures_and_the_written_report(evaluation, tmp_path: Path) -> None:
    result, _ = evaluation
    assert isinstance(result.fan, Figure) and isinstance(result.crps_by_horizon, Figure)
    assert len(result.fan.axes) >= 2  # a panel per anchor of the hour
    assert len(result.crps_by_horizon.axes[0].get_lines()) == len(MODELS)
    flat = result.flat_metrics()
    assert flat["path/oracle_paths/energy_score_bp"] == result.metrics["energy_score_bp"][3]
    assert len(flat) == len(MODELS) * (len(result.metrics.columns) - 1)
    files = write_path_report(tmp_path, "20251104", result)
    assert {f.name for f in files} == {p.name for p in tmp_path.iterdir()}
    assert pl.read_parquet(tmp_path / "path_metrics.parquet").equals(result.metrics)
    text = (tmp_path / DOCUMENT).read_text()
    assert "| energy_score_bp" in text and "oracle_paths" in text and "Kupiec" in text
    assert "(crps_by_horizon.png)" in text and "(path_fan.png)" in text


def test_without_a_path_model_or_latent_state_only_the_baselines_are_scored(
    arrays, splits, tmp_path: Path
) -> None:
    config = PathEvaluationConfig(
        n_samples=8, max_anchors=40, scale_fit=CONFIG.scale_fit, fan_hour=0
    )
    messages: list[str] = []
    result = evaluate_paths(None, arrays, splits, config, tmp_path / "none", messages.append)
    assert result.metrics["model"].to_list() == ["ewma_random_walk", "garch_t_paths"]
    assert any("no oracle paths" in m for m in messages)


def test_the_fan_does_not_depend_on_which_anchors_were_scored(arrays, splits) -> None:
    """Two scored anchors over the whole test day: the fan's hour still gets its four panels
    (it draws its own anchors of that hour)."""
    config = PathEvaluationConfig(n_samples=8, max_anchors=2, scale_fit=CONFIG.scale_fit)
    result = evaluate_paths(None, arrays, splits, config, None)
    assert result.anchors.height == 2
    assert len(result.fan.axes) == 4


def test_the_grid_is_a_multiple_of_30_s_and_thinning_keeps_it(arrays) -> None:
    with pytest.raises(ValueError, match="multiple of 30"):
        PathEvaluationConfig(anchor_stride_s=45)
    days = list(arrays.values())
    full = grid_anchors(days, PathEvaluationConfig(anchor_stride_s=60, max_anchors=None), None)
    assert all((a[:, 1] % 60 == 0).all() for a in full)
    config = PathEvaluationConfig(anchor_stride_s=60, max_anchors=100)
    thinned = grid_anchors(days, config, np.random.default_rng(0))
    assert sum(map(len, thinned)) == 100
    for kept, grid in zip(thinned, full, strict=True):
        rows = {tuple(r) for r in grid.tolist()}
        assert {tuple(r) for r in kept.tolist()} <= rows
