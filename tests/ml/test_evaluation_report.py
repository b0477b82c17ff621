"""`evaluate` end to end on a small gridded market: metric names, breakdown groups, tables."""

import numpy as np
import polars as pl
import pytest

from diffstock_ml.evaluation import (
    Anchors,
    EvaluationConfig,
    EvaluationResult,
    ModelForecasts,
    evaluate,
)

TICK = 0.01
OPEN = 1_762_180_200  # 2025-11-03 14:30:00 UTC
SECONDS = 90 * 60  # anchors over the first 90 minutes: three 30-minute buckets
SYMBOLS = {"AAA": 14.0, "BBB": 80.0, "CCC": 250.0}
CONTRACT = [
    "crps_bp",
    "coverage_50",
    "coverage_80",
    "coverage_90",
    "coverage_95",
    "sharpness_bp",
    "interval_score_90",
    "mae_bp",
    "rmse_bp",
    "directional_accuracy",
    "directional_n",
    "directional_pvalue",
    "var_1_hit_rate",
    "var_1_kupiec_p",
    "var_1_christoffersen_p",
    "var_5_hit_rate",
    "var_5_kupiec_p",
    "var_5_christoffersen_p",
    "backtest_sharpe",
    "backtest_sortino",
    "backtest_max_drawdown_bp",
    "backtest_turnover",
    "backtest_hit_ratio",
    "backtest_sharpe_gross",
    "pinball_q01_bp",
    "pinball_q50_bp",
    "pinball_q99_bp",
    "pinball_mean_bp",
    "wql",
    "wasserstein_z",
    "wasserstein_pit",
    "latency_ms",
]


def snap(returns: np.ndarray, close: np.ndarray) -> np.ndarray:
    """Returns `[B, S]` moved onto the $0.01 price grid (as `snap_to_grid`)."""
    k0 = np.round(close / TICK)[:, None]
    return np.round(k0 * (1 + returns)) / k0 - 1


@pytest.fixture(scope="module")
def market() -> dict[str, ModelForecasts]:
    """A calibrated ("oracle"), an over-dispersed ("wide") and an under-dispersed ("narrow")
    snapped Gaussian forecast of snapped Gaussian 30 s returns with known volatility."""
    rng = np.random.default_rng(7)
    n = SECONDS * len(SYMBOLS)
    symbol = np.repeat(list(SYMBOLS), SECONDS)
    close = np.repeat(list(SYMBOLS.values()), SECONDS)
    offset = np.tile(np.arange(SECONDS), len(SYMBOLS))
    sigma = 6e-4 * np.exp(0.4 * rng.standard_normal(n))
    target = snap(sigma[:, None] * rng.standard_normal((n, 1)), close)[:, 0]
    anchors = Anchors(
        target=target,
        symbol=symbol,
        ts=(OPEN + offset).astype("datetime64[s]"),
        seconds_since_open=offset,
        sigma=sigma,
        close=close,
        last_1s_return=1e-4 * rng.standard_normal(n),
    )

    def model(scale: float) -> ModelForecasts:
        draws = scale * sigma[:, None] * rng.standard_normal((n, 64))
        return ModelForecasts(snap(draws, close), anchors)

    return {"oracle": model(1.0), "wide": model(2.0), "narrow": model(0.5)}


@pytest.fixture(scope="module")
def result(market: dict[str, ModelForecasts]) -> EvaluationResult:
    return evaluate(market, baselines=["wide", "narrow"], config=EvaluationConfig(n_bootstrap=300))


def test_overall_table_has_one_row_per_model_and_the_contract_names(result) -> None:
    overall = result.overall
    assert overall["model"].to_list() == ["oracle", "wide", "narrow"]
    names = [
        *CONTRACT,
        *(f"{m}_vs_{b}" for m in ("crps_skill", "dm_pvalue") for b in ("wide", "narrow")),
    ]
    missing = [name for name in names if name not in overall.columns]
    assert not missing
    assert overall.filter(pl.col("model") == "wide")["crps_skill_vs_wide"].item() == 0.0
    assert overall.filter(pl.col("model") == "wide")["dm_pvalue_vs_wide"].item() is None


def test_the_calibrated_forecast_wins_and_is_calibrated(result) -> None:
    row = result.overall.filter(pl.col("model") == "oracle").row(0, named=True)
    assert row["crps_skill_vs_wide"] > 0.05 and row["dm_pvalue_vs_wide"] < 0.01
    assert row["crps_skill_vs_narrow"] > 0.05 and row["dm_pvalue_vs_narrow"] < 0.01
    for level in (50, 80, 90, 95):
        assert row[f"coverage_{level}"] == pytest.approx(level / 100, abs=0.02)
    assert row["pit_uniformity_p"] > 0.001
    assert row["var_5_hit_rate"] == pytest.approx(0.05, abs=0.025)
    narrow = result.overall.filter(pl.col("model") == "narrow").row(0, named=True)
    assert narrow["coverage_90"] < 0.7 and narrow["var_5_kupiec_p"] < 0.01
    assert narrow["sharpness_bp"] < row["sharpness_bp"]


def test_breakdowns_have_the_expected_groups(result) -> None:
    tod = result.by_time_of_day.filter(pl.col("model") == "oracle")
    assert tod["minutes_since_open"].to_list() == [0, 30, 60]
    assert tod["n"].to_list() == [1800 * 3] * 3
    vol = result.by_volatility_decile.filter(pl.col("model") == "oracle")
    assert vol["volatility_decile"].to_list() == list(range(1, 11))
    assert vol["n"].sum() == SECONDS * 3 and vol["n"].min() >= SECONDS * 3 // 10 - 1
    assert (vol["sigma_min"].to_numpy()[1:] >= vol["sigma_max"].to_numpy()[:-1]).all()
    sym = result.by_symbol.filter(pl.col("model") == "oracle")
    assert sym["symbol"].to_list() == list(SYMBOLS)
    for table in (result.by_time_of_day, result.by_volatility_decile, result.by_symbol):
        for column in ("n", "crps_bp", "coverage_90", "sharpness_bp", "crps_skill_vs_wide"):
            assert column in table.columns
        assert table["model"].unique().sort().to_list() == ["narrow", "oracle", "wide"]


def test_side_tables_and_flat_metrics(result) -> None:
    assert result.pit_histograms.height == 3 * 10
    assert (
        result.pit_histograms.group_by("model").agg(pl.col("count").sum())["count"].to_list()
        == [SECONDS * 3] * 3
    )
    assert set(result.diebold_mariano["baseline"]) == {"wide", "narrow"}
    assert result.diebold_mariano.height == 4  # oracle x 2, wide vs narrow, narrow vs wide
    assert result.equity_curves.columns == ["model", "ts", "pnl_bp", "equity_bp"]
    assert result.reliability.height == 3 * 19
    assert result.reversal is not None and result.reversal.n > 0
    flat = result.metrics()
    assert flat["oracle/crps_bp"] == result.overall["crps_bp"][0]
    assert "wide/dm_pvalue_vs_wide" not in flat
    assert "reversal_1s/directional_accuracy" in flat


def test_models_on_different_anchors_are_refused(market) -> None:
    oracle = market["oracle"]
    anchors = oracle.anchors
    moved = Anchors(
        anchors.target[::-1],
        anchors.symbol,
        anchors.ts,
        anchors.seconds_since_open,
        anchors.sigma,
        anchors.close,
    )
    with pytest.raises(ValueError, match="different anchors"):
        evaluate({"oracle": oracle, "other": ModelForecasts(oracle.samples, moved)})
    with pytest.raises(ValueError, match="not among models"):
        evaluate({"oracle": oracle}, baselines=["garch"])


def test_bad_inputs_name_what_is_wrong(market) -> None:
    anchors = market["oracle"].anchors
    with pytest.raises(ValueError, match="samples must be"):
        ModelForecasts(np.zeros((3, 4)), anchors)
    with pytest.raises(ValueError, match="targets are NaN"):
        Anchors(np.array([np.nan]), ["A"], [0], [0], [1e-4], [10.0])
