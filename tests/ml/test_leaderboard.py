"""The walk-forward leaderboard on hand-made as-of forecasts with a known ranking."""

import datetime as dt

import numpy as np
import polars as pl
import pytest

from diffstock_ml.evaluation import (
    Anchors,
    EvaluationConfig,
    ModelForecasts,
    crps_skill,
    evaluate,
    score_anchors,
)
from diffstock_ml.leaderboard import (
    LeaderboardConfig,
    block_length,
    day_keys,
    leaderboard,
    mean_interval,
    owner_as_of,
    timestamp_losses,
)

SESSIONS = ("20251103", "20251104", "20251105", "20251106")
SYMBOLS = ("AAA", "BBB", "CCC")
SIGMA = 1e-3  # 10 bp: the true 30 s return scale
N_TIMESTAMPS = 120  # per day, one every 30 s from 14:31 UTC (09:31 New York)
# as-of day -> its two test days (as a 2-test-day split gives): consecutive as-of days overlap
AS_OF = {"20251104": SESSIONS[:2], "20251105": SESSIONS[1:3], "20251106": SESSIONS[2:]}
CONFIG = LeaderboardConfig(n_bootstrap=300)


def _anchors(day: str) -> Anchors:
    """The day's anchors: every symbol at every timestamp; targets fixed by the day alone."""
    start = dt.datetime.strptime(day, "%Y%m%d").replace(hour=14, minute=31, tzinfo=dt.UTC)
    stamps = int(start.timestamp()) + 30 * np.arange(N_TIMESTAMPS)
    rng = np.random.default_rng(int(day))
    n = N_TIMESTAMPS * len(SYMBOLS)
    return Anchors(
        target=rng.normal(0.0, SIGMA, n),
        symbol=np.tile(SYMBOLS, N_TIMESTAMPS),
        ts=np.repeat(stamps, len(SYMBOLS)),
        seconds_since_open=np.repeat(60 + 30 * np.arange(N_TIMESTAMPS), len(SYMBOLS)),
        sigma=np.full(n, SIGMA),
        close=np.full(n, 100.0),
    )


def _concat(parts: list[Anchors]) -> Anchors:
    fields = ("target", "symbol", "ts", "seconds_since_open", "sigma", "close")
    return Anchors(**{f: np.concatenate([getattr(a, f) for a in parts]) for f in fields})


# model -> (location, scale) of its Gaussian samples in units of SIGMA: the oracle is the truth,
# the EWMA stand-in a little too wide, `biased` clearly wrong.
MODELS = {"oracle": (0.0, 1.0), "ewma_gaussian": (0.0, 1.4), "biased": (2.0, 1.0)}


def _as_of_forecasts(as_of: str, days: tuple[str, ...]) -> dict[str, ModelForecasts]:
    anchors = _concat([_anchors(day) for day in days])
    forecasts = {}
    for i, (name, (loc, scale)) in enumerate(MODELS.items()):
        rng = np.random.default_rng([int(as_of), i])  # each as-of model draws its own samples
        samples = rng.normal(loc * SIGMA, scale * SIGMA, (len(anchors), 64))
        forecasts[name] = ModelForecasts(samples=samples, anchors=anchors)
    return forecasts


@pytest.fixture(scope="module")
def walk_forward() -> dict[str, dict[str, ModelForecasts]]:
    return {as_of: _as_of_forecasts(as_of, days) for as_of, days in AS_OF.items()}


@pytest.fixture(scope="module")
def board(walk_forward):
    return leaderboard(walk_forward, CONFIG)


def test_each_test_day_is_scored_once_by_the_newest_as_of_that_tested_it(board) -> None:
    assert owner_as_of(AS_OF) == {
        "20251103": "20251104",
        "20251104": "20251105",  # also tested by 20251104's model: the newer one scores it
        "20251105": "20251106",
        "20251106": "20251106",
    }
    days = board.by_day.filter(pl.col("model") == "oracle").select("as_of", "day").sort("day")
    assert days.rows() == [
        ("20251104", "20251103"),
        ("20251105", "20251104"),
        ("20251106", "20251105"),
        ("20251106", "20251106"),
    ]
    assert board.by_day.height == len(SESSIONS) * len(MODELS)
    # no timestamp twice in the loss series the MCS reads
    assert board.losses["ts"].is_unique().all()
    assert board.losses.height == len(SESSIONS) * N_TIMESTAMPS


def test_per_day_crps_and_skill_are_the_report_s_on_that_day(walk_forward, board) -> None:
    """The CRPS of a (model, day) is the report's CRPS of that as-of model on that day."""
    as_of, day = "20251105", "20251104"
    forecasts = walk_forward[as_of]
    mask = (day_keys(forecasts["oracle"].anchors.ts) == day).to_numpy()
    crps = {
        name: score_anchors(f, EvaluationConfig())["crps_bp"].to_numpy()[mask]
        for name, f in forecasts.items()
    }
    row = board.by_day.filter(pl.col("day") == day, pl.col("model") == "oracle").row(0, named=True)
    assert row["as_of"] == as_of and row["n_anchors"] == mask.sum()
    assert row["crps_bp"] == pytest.approx(crps["oracle"].mean(), rel=1e-12)
    assert row["crps_skill_vs_ewma_gaussian"] == pytest.approx(
        crps_skill(crps["oracle"], crps["ewma_gaussian"]), rel=1e-12
    )
    baseline = board.by_day.filter(pl.col("model") == "ewma_gaussian")
    assert (baseline["crps_skill_vs_ewma_gaussian"] == 0).all()


def test_one_as_of_with_one_test_day_matches_its_report_exactly() -> None:
    """CRPS, skill and the randomised-PIT coverage equal `evaluate`'s overall row."""
    forecasts = _as_of_forecasts("20251104", ("20251104",))
    report = evaluate(forecasts, ["ewma_gaussian"]).overall
    summary = leaderboard({"20251104": forecasts}, CONFIG).summary
    for name in MODELS:
        ours = summary.filter(pl.col("model") == name).row(0, named=True)
        theirs = report.filter(pl.col("model") == name).row(0, named=True)
        for column in ("crps_bp", "crps_skill_vs_ewma_gaussian", "coverage_50", "coverage_90"):
            assert ours[column] == pytest.approx(theirs[column], rel=1e-12), (name, column)


def test_the_mcs_keeps_the_best_model_and_excludes_a_clearly_worse_one(board) -> None:
    summary = board.summary
    assert summary["model"].to_list() == ["oracle", "ewma_gaussian", "biased"]  # by mean CRPS
    assert summary["rank"].to_list() == [1, 2, 3]
    in_mcs = dict(zip(summary["model"], summary["in_mcs"], strict=True))
    assert in_mcs["oracle"] and not in_mcs["biased"]
    pvalues = dict(zip(summary["model"], summary["mcs_pvalue"], strict=True))
    assert pvalues["oracle"] == 1.0 and pvalues["biased"] < CONFIG.mcs_size


def test_the_summary_counts_every_kept_anchor_and_its_ci_brackets_the_mean(board) -> None:
    for row in board.summary.iter_rows(named=True):
        assert row["n_days"] == len(SESSIONS)
        assert row["n_anchors"] == len(SESSIONS) * N_TIMESTAMPS * len(SYMBOLS)
        assert row["crps_ci_low"] < row["crps_bp"] < row["crps_ci_high"], row["model"]
    oracle = board.summary.filter(pl.col("model") == "oracle").row(0, named=True)
    assert 0.85 < oracle["coverage_90"] < 0.95  # calibrated samples of the true distribution


def test_the_mean_interval_covers_the_true_mean_at_about_its_level() -> None:
    """On AR(1) losses with a known mean, the 90 % interval covers it about 90 % of the time
    (an interval that ignored the autocorrelation would cover far less)."""
    rng = np.random.default_rng(0)
    config = LeaderboardConfig(ci_level=0.9, n_bootstrap=200)
    covered = []
    for _ in range(100):
        noise = rng.standard_normal(300)
        series = np.empty(300)
        series[0] = noise[0]
        for t in range(1, 300):
            series[t] = 0.6 * series[t - 1] + noise[t]
        counts = rng.integers(1, 4, 300).astype(np.float64)
        low, high = mean_interval((5.0 + series) * counts, counts, config)
        covered.append(low <= 5.0 <= high)
    assert 0.8 <= np.mean(covered) <= 0.98


def test_losses_keep_only_timestamps_every_model_has(walk_forward) -> None:
    board = leaderboard(walk_forward, CONFIG)
    models = board.losses.columns[2:]
    assert models == sorted(MODELS)
    # drop one model's forecasts of one as-of: its days leave the shared series
    partial = {k: dict(v) for k, v in walk_forward.items()}
    del partial["20251104"]["biased"]
    losses = leaderboard(partial, CONFIG).losses
    assert losses.height == (len(SESSIONS) - 1) * N_TIMESTAMPS
    assert "20251104" not in losses["as_of"].to_list()


def test_timestamp_losses_average_over_symbols_on_the_grid() -> None:
    ts = dt.datetime(2025, 11, 3, 15, 0, tzinfo=dt.UTC)
    scores = pl.DataFrame(
        {
            "as_of": "20251103",
            "model": ["a", "a", "b", "b", "a"],
            "ts": [ts, ts, ts, ts, ts + dt.timedelta(seconds=1)],
            "on_grid": [True, True, True, True, False],
            "crps_bp": [1.0, 3.0, 5.0, 7.0, 100.0],
        }
    )
    assert timestamp_losses(scores).select("a", "b").rows() == [(2.0, 6.0)]


def test_a_missing_baseline_is_named() -> None:
    forecasts = _as_of_forecasts("20251104", ("20251104",))
    del forecasts["ewma_gaussian"]
    with pytest.raises(ValueError, match="as-of 20251104 has no forecasts of the baseline"):
        leaderboard({"20251104": forecasts}, CONFIG)
    with pytest.raises(ValueError, match="no as-of forecasts"):
        leaderboard({}, CONFIG)


def test_block_length_is_configured_or_estimated_within_the_series() -> None:
    rng = np.random.default_rng(1)
    assert block_length(rng.standard_normal(400), configured=7) == 7
    assert block_length(rng.standard_normal(16)) == 4  # short: sqrt(T)
    assert 1 <= block_length(rng.standard_normal((400, 3))) <= 400
    persistent = np.cumsum(rng.standard_normal(400)) * 0.1 + rng.standard_normal(400)
    assert block_length(persistent) > block_length(rng.standard_normal(400))


def test_the_skill_figure_is_a_png(board) -> None:
    assert board.skill_figure.startswith(b"\x89PNG")
