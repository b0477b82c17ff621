"""`build_features` on tiny hand-made bars: reference values, causality, sessions, target."""

import datetime as dt
import math
from collections.abc import Callable

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from diffstock_ml.calendar import session_bounds
from diffstock_ml.config import FeatureConfig
from diffstock_ml.features import (
    FEATURE_COLUMNS,
    FEATURES_SCHEMA,
    MA_WINDOWS_S,
    RETURN_HORIZONS_S,
    VOLATILITY_WINDOWS_S,
    build_features,
    feature_table,
)
from diffstock_ml.ingest import BARS_SCHEMA
from diffstock_ml.ingest.grid import session_seconds

DAY = dt.date(2025, 11, 3)  # first session after the clock change: opens 14:30 UTC
DAY_OPEN, DAY_CLOSE = session_bounds(DAY)
HALF_DAY = dt.date(2025, 11, 28)  # closes 13:00 New York: 12,600 s
SECONDS = 400
# The reference test runs past every feature's longest window (900 s) by a good margin.
REFERENCE_SECONDS = 1_500
SYMBOLS = ("AMD", "IBM")
QUIET_START = {"IBM": 17}  # IBM has no trade (close null) in its first 17 seconds
CAUSAL_COLUMNS = (*FEATURE_COLUMNS, "sigma_30s")
DATA_COLUMNS = ("close", "high", "low", "volume", "amount", "filled", "stale")
CONFIG = FeatureConfig()

Build = Callable[[pl.LazyFrame], pl.LazyFrame]


def _symbol_bars(symbol: str, ts: pl.Series, rng: np.random.Generator, first_trade: int):
    """One symbol on the grid `ts` as `clean_bars` has it: cent prices, forward fill, flags."""
    n = len(ts)
    traded = rng.random(n) < 0.6
    traded[:first_trade] = False
    traded[min(first_trade, n - 1)] = True
    walk = rng.uniform(10, 200) * np.exp(np.cumsum(rng.normal(0, 5e-4, n)))
    stale = (~traded & (rng.random(n) < 0.3)) | (np.arange(n) < first_trade)
    raw = pl.DataFrame(
        {
            "symbol": symbol,
            "ts": ts,
            "price": np.where(traded, np.round(walk, 2), np.nan),
            "up": np.round(rng.uniform(0, 0.05, n), 2),
            "down": np.round(rng.uniform(0, 0.05, n), 2),
            "size": rng.integers(1, 50, n) * 100.0,
            "at": rng.random(n),
            "traded": traded,
            "stale": stale,
        }
    )
    trade = pl.col("traded")
    return (
        raw.with_columns(pl.col("price").fill_nan(None).forward_fill().alias("close"))
        .with_columns(
            pl.when(trade).then(pl.col("close") + pl.col("up")).otherwise("close").alias("high"),
            pl.when(trade).then(pl.col("close") - pl.col("down")).otherwise("close").alias("low"),
            pl.when(trade).then("size").otherwise(0.0).alias("volume"),
            (~trade).alias("filled"),
        )
        .with_columns(
            (pl.col("volume") * (pl.col("low") + pl.col("at") * (pl.col("high") - pl.col("low"))))
            .fill_null(0.0)
            .alias("amount")
        )
        .select(pl.col(name).cast(dtype) for name, dtype in BARS_SCHEMA.items())
    )


def _bars(
    day: dt.date = DAY,
    seconds: int | None = SECONDS,
    seed: int = 0,
    quiet_start: dict[str, int] = QUIET_START,
) -> pl.DataFrame:
    """The first `seconds` of `day` (all of it when None) for SYMBOLS, sorted by symbol, ts."""
    ts = session_seconds(*session_bounds(day))
    ts = ts if seconds is None else ts[:seconds]
    rng = np.random.default_rng(seed)
    return pl.concat([_symbol_bars(s, ts, rng, quiet_start.get(s, 0)) for s in SYMBOLS])


def _features(bars: pl.DataFrame, config: FeatureConfig = CONFIG) -> pl.DataFrame:
    return build_features(bars.lazy(), config).collect()


def _column(frame: pl.DataFrame, symbol: str, name: str) -> np.ndarray:
    values = frame.filter(pl.col("symbol") == symbol).get_column(name).cast(pl.Float64)
    return values.fill_null(math.nan).to_numpy()


# --- a slow, obvious reference --------------------------------------------------------------


def _trailing(x: np.ndarray, t: int, window: int, config: FeatureConfig) -> np.ndarray | None:
    """Today's non-null values among the last `window` seconds, or None if too few."""
    values = x[max(0, t - window + 1) : t + 1]
    values = values[~np.isnan(values)]
    return values if len(values) >= min(config.min_periods, window) else None


def _reference(bars: pl.DataFrame, symbol: str, session_s: float, config: FeatureConfig):
    one = bars.filter(pl.col("symbol") == symbol)
    c, high, low, volume, amount = (
        one.get_column(k).fill_null(math.nan).to_numpy()
        for k in ("close", "high", "low", "volume", "amount")
    )
    n = len(c)
    out = {name: np.full(n, math.nan) for name in (*CAUSAL_COLUMNS, "ret_30s")}
    r1 = np.full(n, math.nan)
    r1[1:] = np.log(c[1:] / c[:-1])
    hl = (high - low) / c
    alpha = 1 - math.exp(-math.log(2) / config.sigma_halflife_s)
    num = den = 0.0
    count = 0
    last_location = last_sign = 0.0  # the trade-side hints carried forward, 0 before the first
    last_high = last_low = math.nan  # the range of the last bar that had one
    for t in range(n):
        for k in RETURN_HORIZONS_S:
            if t - k >= 0:
                out[f"logret_{k}s"][t] = math.log(c[t] / c[t - k])
        for w in (30, 60, 300, 900):
            if (v := _trailing(r1, t, w, config)) is not None:
                out[f"rv_{w}s"][t] = math.sqrt(w * np.mean(v**2))
        for w in (30, 120, 600):
            if (v := _trailing(c, t, w, config)) is not None:
                out[f"ma_ratio_{w}s"][t] = c[t] / np.mean(v) - 1
        out["hl_range"][t] = hl[t]
        if (v := _trailing(hl, t, 60, config)) is not None:
            out["hl_range_mean_60s"][t] = np.mean(v)
        out["close_location"][t] = 0.0
        if high[t] > low[t]:  # False for NaN
            last_location = min(1.0, max(-1.0, 2 * (c[t] - low[t]) / (high[t] - low[t]) - 1))
            out["close_location"][t] = last_location
        out["close_location_last"][t] = last_location
        if high[t] > low[t]:
            last_high, last_low = high[t], low[t]
        if math.isnan(last_high) or math.isnan(c[t]):
            out["quote_position"][t] = out["quote_mid_dev"][t] = 0.0
        else:
            position = 2 * (c[t] - last_low) / (last_high - last_low) - 1
            out["quote_position"][t] = min(3.0, max(-3.0, position))
            out["quote_mid_dev"][t] = c[t] / ((last_high + last_low) / 2) - 1
        if t > 0 and not math.isnan(r1[t]) and c[t] != c[t - 1]:
            last_sign = math.copysign(1.0, c[t] - c[t - 1])
        out["tick_test"][t] = last_sign
        for name, x in (("volume", volume), ("amount", amount)):
            out[f"log_{name}"][t] = math.log1p(x[t])
            if (v := _trailing(x, t, 300, config)) is not None:
                out[f"{name}_rel_300s"][t] = math.log1p(x[t]) - math.log1p(np.mean(v))
        for w in (60, 300):
            vol, amt = _trailing(volume, t, w, config), _trailing(amount, t, w, config)
            if vol is not None and vol.sum() > 0 and amt.sum() > 0:
                out[f"vwap_dev_{w}s"][t] = c[t] / (amt.sum() / vol.sum()) - 1
        out["secs_since_open"][t] = t  # the frames start at the open
        out["tod_sin"][t] = math.sin(2 * math.pi * t / session_s)
        out["tod_cos"][t] = math.cos(2 * math.pi * t / session_s)
        if not math.isnan(r1[t]):
            num, den, count = r1[t] ** 2 + (1 - alpha) * num, 1 + (1 - alpha) * den, count + 1
        if count >= config.min_periods:
            out["sigma_30s"][t] = max(math.sqrt(num / den * 30), config.sigma_floor)
        if t + 30 < n:
            out["ret_30s"][t] = c[t + 30] / c[t] - 1
    out["is_stale"] = one.get_column("stale").cast(pl.Float64).to_numpy()
    out["is_filled"] = one.get_column("filled").cast(pl.Float64).to_numpy()
    return out


@pytest.mark.parametrize("min_periods", [1, 10, 50])
def test_every_column_matches_the_reference(min_periods: int) -> None:
    config = FeatureConfig(min_periods=min_periods)
    bars = _bars(seconds=REFERENCE_SECONDS, seed=3)
    features = _features(bars, config)
    session_s = (DAY_CLOSE - DAY_OPEN).total_seconds()
    longest = max(*VOLATILITY_WINDOWS_S, *MA_WINDOWS_S)
    for symbol in SYMBOLS:
        # the comparison must cover rows whose 900 s (rv) and 600 s (ma_ratio) windows are full
        full = features.filter(pl.col("symbol") == symbol, pl.col("secs_since_open") >= longest)
        assert full.height >= 500, f"{symbol}: only {full.height} rows with full windows"
        assert full.get_column("rv_900s").null_count() == 0, symbol
        assert full.get_column("ma_ratio_600s").null_count() == 0, symbol
        expected = _reference(bars, symbol, session_s, config)
        for name, values in expected.items():
            np.testing.assert_allclose(
                _column(features, symbol, name),
                values,
                rtol=1e-5,
                atol=1e-7,
                equal_nan=True,
                err_msg=f"{symbol} {name}",
            )


def test_schema_order_and_names() -> None:
    bars = _bars()
    shuffled = bars.sample(fraction=1.0, shuffle=True, seed=1)
    features = _features(shuffled)
    assert features.schema == FEATURES_SCHEMA
    assert features.height == bars.height
    assert_frame_equal(features, features.sort("symbol", "ts"))
    assert_frame_equal(features, _features(bars))
    assert "ret_30s" not in FEATURE_COLUMNS and "sigma_30s" not in FEATURE_COLUMNS
    assert len(set(FEATURE_COLUMNS)) == len(FEATURE_COLUMNS)
    table = feature_table()
    for name in (*FEATURE_COLUMNS, "sigma_30s", "ret_30s"):
        assert f"| `{name}` |" in table, name


# --- causality ------------------------------------------------------------------------------

BASE = _bars(seed=0)


def _replace_after(bars: pl.DataFrame, t: dt.datetime, seed: int) -> pl.DataFrame:
    """`bars` with every data column of every symbol redrawn strictly after `t`."""
    other = _bars(seed=seed, quiet_start={})
    keep = pl.col("ts") <= t
    return bars.with_columns(
        pl.when(keep).then(pl.col(c)).otherwise(pl.lit(other.get_column(c))).alias(c)
        for c in DATA_COLUMNS
    )


def _assert_same_up_to(build: Build, one: pl.DataFrame, other: pl.DataFrame, t: dt.datetime):
    columns = ["symbol", "ts", *CAUSAL_COLUMNS]
    seen = [
        build(f.lazy()).filter(pl.col("ts") <= t).select(columns).collect() for f in (one, other)
    ]
    assert_frame_equal(*seen, check_exact=True)


def _build(bars: pl.LazyFrame) -> pl.LazyFrame:
    return build_features(bars, CONFIG)


@settings(max_examples=40, deadline=None)
@given(cut=st.integers(0, SECONDS - 1), seed=st.integers(1, 2**32 - 1), truncate=st.booleans())
def test_features_up_to_t_ignore_every_bar_after_t(cut: int, seed: int, truncate: bool) -> None:
    t = BASE.get_column("ts")[cut]
    changed = BASE.filter(pl.col("ts") <= t) if truncate else _replace_after(BASE, t, seed)
    _assert_same_up_to(_build, BASE, changed, t)


@pytest.mark.parametrize(
    "leak",
    [
        pl.col("logret_1s").shift(-1).over("symbol"),
        pl.col("close").rolling_mean(31, center=True, min_samples=1).over("symbol"),
        pl.col("log_volume") - pl.col("log_volume").mean().over("symbol"),
        pl.col("tod_sin") * pl.len(),
    ],
    ids=["shift_minus_one", "centered_window", "whole_day_mean", "day_length_from_rows"],
)
def test_the_causality_check_catches_look_ahead(leak: pl.Expr) -> None:
    def leaky(bars: pl.LazyFrame) -> pl.LazyFrame:
        return build_features(bars, CONFIG).with_columns(leak.cast(pl.Float32).alias("rv_30s"))

    t = BASE.get_column("ts")[200]
    caught = 0
    for changed in (_replace_after(BASE, t, seed=7), BASE.filter(pl.col("ts") <= t)):
        try:
            _assert_same_up_to(leaky, BASE, changed, t)
        except AssertionError:
            caught += 1
    assert caught > 0, "a look-ahead feature passed the causality check"


def test_symbols_are_independent() -> None:
    other_ibm = _bars(seed=11).filter(pl.col("symbol") == "IBM")
    changed = pl.concat([BASE.filter(pl.col("symbol") == "AMD"), other_ibm])
    amd = pl.col("symbol") == "AMD"
    assert_frame_equal(_features(BASE).filter(amd), _features(changed).filter(amd))
    assert_frame_equal(_features(BASE).filter(amd), _features(BASE.filter(amd)))


def test_the_open_never_sees_the_previous_session() -> None:
    previous = _bars(dt.date(2025, 10, 31), seed=5)  # the Friday before, opens 13:30 UTC
    alone = _features(BASE)
    together = _features(pl.concat([previous, BASE]))
    assert_frame_equal(together.filter(pl.col("ts") >= DAY_OPEN), alone)
    amd = alone.filter(pl.col("symbol") == "AMD")
    for k in RETURN_HORIZONS_S:
        lagged = amd.get_column(f"logret_{k}s")
        assert lagged[:k].is_null().all() and lagged[k:].is_not_null().all(), k
    # IBM's first trade is at second 17: before it nothing price-based exists
    ibm = alone.filter(pl.col("symbol") == "IBM").head(17)
    assert ibm.get_column("close").is_null().all()
    assert ibm.select(pl.col("logret_1s", "rv_30s", "ma_ratio_30s").is_null().all()).row(0) == (
        True,
        True,
        True,
    )


# --- target and sessions --------------------------------------------------------------------


@pytest.mark.parametrize(("day", "length"), [(HALF_DAY, 12_600), (DAY, 23_400)])
def test_target_and_time_of_day_over_a_whole_session(day: dt.date, length: int) -> None:
    bars = _bars(day, seconds=None, seed=2, quiet_start={})
    open_utc, _ = session_bounds(day)
    features = _features(bars)
    for symbol in SYMBOLS:
        one = features.filter(pl.col("symbol") == symbol)
        assert one.height == length
        close = one.get_column("close").to_numpy()
        target = _column(features, symbol, "ret_30s")
        np.testing.assert_allclose(target[:-30], close[30:] / close[:-30] - 1, rtol=1e-12)
        assert np.isnan(target[-30:]).all() and not np.isnan(target[:-30]).any()
        assert one.get_column("ts")[0] == open_utc
        elapsed = one.get_column("secs_since_open").to_numpy()
        np.testing.assert_array_equal(elapsed, np.arange(length))
        halfway = one.row(length // 2, named=True)
        assert halfway["tod_sin"] == pytest.approx(0.0, abs=1e-6)
        assert halfway["tod_cos"] == pytest.approx(-1.0)


def test_open_is_read_from_the_calendar_across_the_clock_change() -> None:
    friday = _features(_bars(dt.date(2025, 10, 31), seconds=5))
    monday = _features(_bars(DAY, seconds=5))
    assert friday.get_column("ts")[0].hour == 13 and monday.get_column("ts")[0].hour == 14
    for frame in (friday, monday):
        assert frame.get_column("secs_since_open").to_list()[:5] == [0, 1, 2, 3, 4]
        assert frame.get_column("tod_cos")[0] == 1.0


# --- sigma ----------------------------------------------------------------------------------


def test_sigma_is_positive_and_floored() -> None:
    config = FeatureConfig(sigma_floor=2e-4)
    features = _features(BASE, config)
    for symbol, first_trade in (("AMD", 0), ("IBM", 17)):
        sigma = features.filter(pl.col("symbol") == symbol).get_column("sigma_30s")
        warm_up = first_trade + config.min_periods
        assert sigma[:warm_up].is_null().all()
        assert sigma[warm_up:].is_not_null().all() and (sigma[warm_up:] >= 2e-4).all()
    flat = BASE.with_columns(pl.lit(10.0).alias(c) for c in ("close", "high", "low"))
    assert (_features(flat, config).get_column("sigma_30s").drop_nulls() == 2e-4).all()


def test_sigma_reacts_to_volatility_only_after_it_happens() -> None:
    quiet = _bars(seed=4, quiet_start={}).with_columns(pl.lit(50.0).alias("close"))
    jump = pl.col("ts") >= BASE.get_column("ts")[200]
    shocked = quiet.with_columns(pl.when(jump).then(55.0).otherwise(pl.col("close")).alias("close"))
    before, after = (
        _features(f).filter(pl.col("symbol") == "AMD").get_column("sigma_30s")
        for f in (quiet, shocked)
    )
    assert (before[:200] == after[:200]).all()
    assert after[200] > 100 * before[200]


def test_config_rejects_nonsense() -> None:
    for bad in ({"min_periods": 0}, {"sigma_halflife_s": 0.0}, {"sigma_floor": -1e-5}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            FeatureConfig(**bad)
