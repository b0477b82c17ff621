"""A changing universe through every stage, every model and the evaluation.

One synthetic market of 5 symbols x 4 sessions (2 training days, then 2 test days) is generated
once. Each case edits copies of its raw CSVs (a symbol listed, delisted, missing on a test day,
halted for 20 minutes, or never seen in training), rebuilds the windows of the days it touched
(clean -> features -> windows), fits every model on the training days and forecasts the test
days as the `forecasts` asset does, then runs the evaluation. Every model must forecast every
anchor of every test day with finite samples, and per-symbol results must list exactly the
symbols that trade on the test days.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from diffstock_ml.baselines import BASELINES, DIRECTION_CLASSIFIERS, Baseline, Oracle, ScaleFit
from diffstock_ml.baselines.base import stale_seconds
from diffstock_ml.baselines.garch import MIN_RETURNS, GarchParams, GarchT, pooled_params
from diffstock_ml.baselines.volatility import EwmaGaussian
from diffstock_ml.batches import Normaliser
from diffstock_ml.calendar import parse_day, session_bounds
from diffstock_ml.evaluation import EvaluationConfig, EvaluationResult, evaluate
from diffstock_ml.forecasting import (
    DIFFUSION,
    CalibratedDiffusion,
    ForecastConfig,
    direction_probabilities,
    forecast_day,
    select_anchors,
    to_model_forecasts,
)
from diffstock_ml.market import HORIZON_S
from diffstock_ml.model.bundle import ModelBundle, load_bundle, save_bundle
from diffstock_ml.model.config import SamplerConfig
from diffstock_ml.pipeline import windows_from_raw
from diffstock_ml.synthetic import PROFILES as MARKETS
from diffstock_ml.synthetic import default_latent_root, generate_market
from diffstock_ml.synthetic.config import UNIVERSE
from diffstock_ml.train import train
from diffstock_ml.train.profiles import PROFILES
from diffstock_ml.windows import DayArrays, load_day_arrays

TINY = PROFILES["tiny"]
SYMBOLS = UNIVERSE[:5]  # ALVA BRIX CADN DORL EMBR
MARKET = dataclasses.replace(MARKETS["tiny"], symbols=SYMBOLS, start="20251030", end="20251104")
N_TRAIN = 2  # the first two sessions train, the last two are test days
FIT = ScaleFit(max_anchors=200, n_samples=40)
# the networks only need to exist: two steps of 16 windows (their fits ignore symbols anyway)
SHORT = dataclasses.replace(
    TINY.train, batch_size=16, max_steps=2, warmup_steps=1, eval_every=2, checkpoint_every=2
)
FORECAST = ForecastConfig(anchor_stride_s=600, n_samples=20)
EVALUATION = EvaluationConfig(n_bootstrap=50)
HALT = (dt.timedelta(hours=3), dt.timedelta(hours=3, minutes=20))  # after the open


# --- edits of a raw day folder -------------------------------------------------------------


def delist(folder: Path, symbol: str) -> None:
    """The symbol does not trade that day: no file."""
    (folder / f"{symbol}.csv").unlink()


def keep_rows(folder: Path, symbol: str, keep: Callable[[pl.Expr, dt.datetime], pl.Expr]) -> None:
    """Keep the rows of `symbol` whose bar begin satisfies `keep(bob, session_open)`."""
    path = folder / f"{symbol}.csv"
    frame = pl.read_csv(path, infer_schema=False)
    bob = pl.col("bob").str.to_datetime("%Y-%m-%d %H:%M:%S%z", time_zone="UTC")
    frame.filter(keep(bob, session_bounds(parse_day(folder.name))[0])).write_csv(path)


def halt(folder: Path, symbol: str) -> None:
    """No trade for 20 minutes mid-session (`HALT`)."""
    keep_rows(folder, symbol, lambda bob, open_: ~bob.is_between(open_ + HALT[0], open_ + HALT[1]))


def list_late(folder: Path, symbol: str) -> None:
    """A listing day: the first trade 45 minutes before the close, nothing before."""
    keep_rows(folder, symbol, lambda bob, open_: bob >= open_ + dt.timedelta(hours=5, minutes=45))


Edit = tuple[int, str, Callable[[Path, str], None]]  # (day index, symbol, edit)
CASES: dict[str, list[Edit]] = {
    # EMBR lists on the second training day, trading its last 45 minutes only
    "listing": [(0, "EMBR", delist), (1, "EMBR", list_late)],
    # BRIX is delisted after the training days, EMBR on the last day; DORL misses test day 1
    "delisting": [
        (2, "BRIX", delist),
        (3, "BRIX", delist),
        (3, "EMBR", delist),
        (2, "DORL", delist),
    ],
    # CADN halts for 20 minutes on a training day and on a test day
    "halt": [(1, "CADN", halt), (3, "CADN", halt)],
    # EMBR trades only on the test days
    "unseen": [(0, "EMBR", delist), (1, "EMBR", delist)],
}


# --- the market, the model, and one run of a case ---------------------------------------------


@dataclass(frozen=True)
class Market:
    raw: Path
    days: tuple[str, ...]
    arrays: dict[str, DayArrays]  # the unedited days


@dataclass(frozen=True)
class CaseRun:
    arrays: dict[str, DayArrays]  # every day, edited or not
    days: tuple[str, ...]
    test_days: tuple[str, ...]
    anchors: dict[str, np.ndarray]  # per test day, the forecast anchors
    models: dict[str, Baseline]
    forecasts: pl.DataFrame
    directions: pl.DataFrame
    result: EvaluationResult

    def symbols(self, day: str | int) -> set[str]:
        """The symbols of a day (its key, or its index among all days)."""
        return set(self.arrays[self.days[day] if isinstance(day, int) else day].symbols)


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Market:
    root = tmp_path_factory.mktemp("universe")
    generate_market(MARKET, root / "raw", workers=1)
    days = tuple(sorted(p.name for p in (root / "raw").iterdir()))
    arrays = {
        d: load_day_arrays(windows_from_raw(root / "raw" / d, root / "windows")) for d in days
    }
    return Market(root / "raw", days, arrays)


@pytest.fixture(scope="module")
def bundle(market: Market, tmp_path_factory: pytest.TempPathFactory) -> ModelBundle:
    """A diffusion model of a few steps (its forecasts only need to exist and be finite)."""
    folder = tmp_path_factory.mktemp("universe_model")
    train_day, val_day = (market.arrays[d] for d in market.days[:2])
    normaliser = Normaliser.fit([train_day])
    result = train(
        TINY.model, SHORT, [train_day], [val_day], normaliser, folder, torch.device("cpu")
    )
    path = save_bundle(
        folder / "bundle.pt",
        TINY.model,
        result.best_state,
        normaliser,
        train_day.feature_names,
        train_day.config.length,
        SamplerConfig(steps=4),
    )
    return load_bundle(path)


@pytest.fixture(scope="module")
def universe(
    market: Market, bundle: ModelBundle, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], CaseRun]:
    """`universe(case)`: the case run once per module, as the `forecasts` and report assets."""
    runs: dict[str, CaseRun] = {}

    def run(case: str) -> CaseRun:
        if case not in runs:
            runs[case] = run_case(case, market, bundle, tmp_path_factory.mktemp(case))
        return runs[case]

    return run


def run_case(case: str, market: Market, bundle: ModelBundle, root: Path) -> CaseRun:
    edited = sorted({index for index, _, _ in CASES[case]})
    arrays = dict(market.arrays)
    for index in edited:
        day = market.days[index]
        shutil.copytree(market.raw / day, root / "raw" / day)
        for _, symbol, edit in (e for e in CASES[case] if e[0] == index):
            edit(root / "raw" / day, symbol)
        arrays[day] = load_day_arrays(windows_from_raw(root / "raw" / day, root / "windows"))
    train_days = [arrays[d] for d in market.days[:N_TRAIN]]
    test_days = market.days[N_TRAIN:]

    rng = np.random.default_rng(0)
    models: dict[str, Baseline] = {DIFFUSION: CalibratedDiffusion(bundle, FIT)}
    for name, cls in BASELINES.items():
        heads = name in ("gaussian_head", "student_t_head")
        models[name] = cls(TINY.model, SHORT, scale_fit=FIT) if heads else cls(scale_fit=FIT)
    models["oracle"] = Oracle(default_latent_root(market.raw))
    for model in models.values():
        model.fit(train_days, rng)
    classifiers = {
        name: cls(model_config=TINY.model, train_config=SHORT)
        for name, cls in DIRECTION_CLASSIFIERS.items()
    }
    for classifier in classifiers.values():
        classifier.fit(train_days, rng)

    anchors = {day: select_anchors(arrays[day], FORECAST.anchor_stride_s) for day in test_days}
    forecasts = pl.concat(forecast_day(arrays[d], anchors[d], models, FORECAST) for d in test_days)
    directions = pl.concat(
        direction_probabilities(arrays[d], anchors[d], classifiers) for d in test_days
    )
    by_model = to_model_forecasts(forecasts)
    baselines = [name for name in by_model if name != DIFFUSION]
    result = evaluate(by_model, baselines, EVALUATION)
    return CaseRun(arrays, market.days, test_days, anchors, models, forecasts, directions, result)


# --- what every case must satisfy ---------------------------------------------------------------


def assert_every_model_forecast_every_anchor(run: CaseRun) -> None:
    for day in run.test_days:
        expected = run.arrays[day]
        rows = run.forecasts.filter(pl.col("day") == day)
        for model in run.models:
            part = rows.filter(pl.col("model") == model)
            assert part.height == len(run.anchors[day]) > 0, f"{model} on {day}"
            samples = np.stack(part["samples"].to_numpy())
            assert np.isfinite(samples).all(), f"{model} has non-finite samples on {day}"
            assert set(part["symbol"]) == set(expected.symbols), f"{model} on {day}"
        probabilities = run.directions.filter(pl.col("day") == day)
        assert probabilities.height == len(run.anchors[day])
        for name in DIRECTION_CLASSIFIERS:
            p = probabilities[f"prob_up_{name}"].to_numpy()
            assert np.isfinite(p).all() and ((p >= 0) & (p <= 1)).all()


def assert_per_symbol_results_list_the_symbols_present(run: CaseRun, present: set[str]) -> None:
    result = run.result
    assert set(result.overall["model"]) == set(run.models)
    assert np.isfinite(result.overall["crps_bp"].to_numpy()).all()
    assert result.diebold_mariano["p_value"].is_finite().all()
    assert set(result.equity_curves["model"]) == set(run.models)
    counts = run.forecasts.filter(pl.col("model") == DIFFUSION).group_by("symbol").len("n")
    for model in run.models:
        rows = result.by_symbol.filter(pl.col("model") == model)
        assert set(rows["symbol"]) == present, model
        joined = rows.select("symbol", "n").join(counts, on="symbol", suffix="_expected")
        assert (joined["n"] == joined["n_expected"]).all(), model


# --- the cases ------------------------------------------------------------------------------


def test_a_symbol_listed_after_the_first_training_day(universe) -> None:
    run = universe("listing")
    assert "EMBR" not in run.symbols(0) and "EMBR" in run.symbols(1)
    assert_every_model_forecast_every_anchor(run)
    assert_per_symbol_results_list_the_symbols_present(run, set(SYMBOLS))
    garch = run.models["garch_t"]
    assert isinstance(garch, GarchT)
    # 45 minutes of a listing day are too few returns for its own GARCH: the pooled one
    assert 0 < garch.training_returns["EMBR"] < MIN_RETURNS
    assert garch.params_for("EMBR").pooled and not garch.params_for("ALVA").pooled


def test_a_symbol_delisted_or_missing_on_a_test_day(universe) -> None:
    run = universe("delisting")
    first, last = run.test_days
    assert run.symbols(first) == {"ALVA", "CADN", "EMBR"}
    assert run.symbols(last) == {"ALVA", "CADN", "DORL"}
    assert_every_model_forecast_every_anchor(run)
    # BRIX traded only on the training days: no per-symbol row
    assert_per_symbol_results_list_the_symbols_present(run, {"ALVA", "CADN", "DORL", "EMBR"})


def test_a_symbol_halted_for_twenty_minutes(universe) -> None:
    run = universe("halt")
    assert_every_model_forecast_every_anchor(run)
    assert_per_symbol_results_list_the_symbols_present(run, set(SYMBOLS))
    day = run.arrays[run.test_days[-1]]
    s = day.symbols.index("CADN")
    stale = np.flatnonzero(stale_seconds(day)[s])
    assert len(stale) > 1000, "the halt is a run of stale seconds"
    first, last = stale.min(), stale.max()
    anchors = run.anchors[day.day]
    seconds = anchors[anchors[:, 0] == s, 1]
    length = day.config.length
    assert not ((seconds + HORIZON_S >= first) & (seconds - length < last)).any(), (
        "no window or target touches the halt (the anchor rules)"
    )
    assert (seconds > last + length).any(), "the symbol is forecast again after the halt"
    # the halt is missing data, not a calm market: no volatility leaks out of or into it
    ewma = EwmaGaussian().volatility_30s(day)[s]
    np.testing.assert_allclose(ewma[first - 1 : last + 2], ewma[first - 1], rtol=1e-9)
    garch = run.models["garch_t"]
    assert isinstance(garch, GarchT)
    missing = garch.training_returns["ALVA"] - garch.training_returns["CADN"]
    assert 35 <= missing <= 45, "the halt's 30 s returns are left out of the GARCH fit"


def test_a_symbol_the_training_days_never_saw(universe) -> None:
    run = universe("unseen")
    assert all("EMBR" not in run.symbols(i) for i in range(N_TRAIN))
    assert_every_model_forecast_every_anchor(run)
    assert_per_symbol_results_list_the_symbols_present(run, set(SYMBOLS))
    garch = run.models["garch_t"]
    assert isinstance(garch, GarchT)
    assert garch.pooled_symbols(run.arrays[run.test_days[0]]) == ["EMBR"]
    pooled = garch.params_for("EMBR")
    assert pooled.pooled and pooled.n_returns == 0
    assert 0 < pooled.alpha + pooled.beta < 1 and pooled.omega > 0 and pooled.nu > 2


def test_pooled_garch_parameters_are_the_median_symbols() -> None:
    def fit(alpha: float, beta: float, long_run: float) -> GarchParams:
        omega = long_run * (1 - alpha - beta)
        return GarchParams(0.0, omega, alpha, beta, 6.0, long_run, 500, True)

    fits = [fit(0.0, 0.98, 4.0), fit(0.45, 0.0, 9.0), fit(0.5, 0.48, 16.0), fit(0.9, 0.09, 25.0)]
    pooled = pooled_params(fits)
    assert pooled.pooled and pooled.n_returns == 0 and pooled.nu == 6.0
    assert pooled.alpha >= 0 and pooled.beta >= 0
    assert pooled.alpha + pooled.beta == pytest.approx(0.98)  # the median persistence
    assert pooled.omega / (1 - pooled.alpha - pooled.beta) == pytest.approx(12.5)
    # element-wise medians of omega, alpha, beta: a long-run variance below every symbol's
    medians = [np.median([getattr(f, k) for f in fits]) for k in ("omega", "alpha", "beta")]
    assert medians[0] / (1 - medians[1] - medians[2]) < 4.0
