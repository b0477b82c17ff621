"""Causal per-symbol features of one session's clean 1 s bars, the volatility scale and the target.

Every feature at second t uses only bars of the same symbol and the same session at seconds
<= t (bar t is the bar beginning at t, known when it ends). Windows never reach back before the
session open: until a window is full it uses the seconds since the open that it has (a mean over
them; realised volatility scales that mean of squared returns to the full window), and it is
null while it holds fewer than `FeatureConfig.min_periods` non-null values (capped at the window
length).
Features are null where undefined (before a symbol's first trade, lags before the open, VWAP
without volume): no imputation and no scaling happen here; the model stage decides both.

All prices are the forward-filled close of the day. The target `ret_30s` is the only column that
looks forward, by design; it is not a feature.

`FEATURE_TABLE` (model inputs, in order) and `OUTPUT_TABLE` below name and explain every column;
`feature_table()` renders them as the markdown table docs/assets.md shows.
"""

from __future__ import annotations

import math
from functools import lru_cache

import polars as pl

from diffstock_ml.calendar import NEW_YORK, nyse
from diffstock_ml.config import FeatureConfig
from diffstock_ml.ingest.schema import UTC_US
from diffstock_ml.market import HORIZON_S

RETURN_HORIZONS_S: tuple[int, ...] = (1, 5, 30, 60, 300)
VOLATILITY_WINDOWS_S: tuple[int, ...] = (30, 60, 300, 900)
MA_WINDOWS_S: tuple[int, ...] = (30, 120, 600)
VWAP_WINDOWS_S: tuple[int, ...] = (60, 300)
RANGE_WINDOW_S = 60
ACTIVITY_WINDOW_S = 300

FEATURE_TABLE: dict[str, str] = {
    **{
        f"logret_{k}s": f"log(close_t / close_(t-{k})); null when t-{k} is before the open"
        for k in RETURN_HORIZONS_S
    },
    **{
        f"rv_{w}s": f"realised volatility over {w} s: sqrt({w} x mean of squared 1 s log returns "
        f"over the last {w} s of today)"
        for w in VOLATILITY_WINDOWS_S
    },
    **{f"ma_ratio_{w}s": f"close / (mean close over the last {w} s) - 1" for w in MA_WINDOWS_S},
    "hl_range": "(high - low) / close of the bar",
    f"hl_range_mean_{RANGE_WINDOW_S}s": f"mean of hl_range over the last {RANGE_WINDOW_S} s",
    "close_location": "where the close sits in its bar's range: 2 (close - low) / (high - low) "
    "- 1, +1 at the high, -1 at the low; 0 when high = low (one price or no trade)",
    "close_location_last": "close_location of the last bar today whose high > low (carried "
    "forward); 0 before the first",
    "tick_test": "sign of the last change of the close today (+1 up, -1 down, carried "
    "forward); 0 before the first",
    "quote_position": "where the close sits in the range of the last bar today whose high > low "
    "(when both sides traded there, its quotes): 2 (close - low_last) / (high_last - low_last) - "
    "1, clipped to [-3, 3]; 0 before the first",
    "quote_mid_dev": "close / the midpoint of that last range - 1; 0 before the first",
    "log_volume": "log1p(volume) of the bar (shares)",
    "log_amount": "log1p(amount) of the bar (traded value)",
    f"volume_rel_{ACTIVITY_WINDOW_S}s": f"log1p(volume) - log1p(mean volume over the last "
    f"{ACTIVITY_WINDOW_S} s)",
    f"amount_rel_{ACTIVITY_WINDOW_S}s": f"log1p(amount) - log1p(mean amount over the last "
    f"{ACTIVITY_WINDOW_S} s)",
    **{
        f"vwap_dev_{w}s": f"close / (sum amount / sum volume over the last {w} s) - 1; null "
        "without volume"
        for w in VWAP_WINDOWS_S
    },
    "secs_since_open": "seconds from the session open (calendar) to the bar begin",
    "tod_sin": "sin(2 pi x fraction of the day's own session elapsed); half days included",
    "tod_cos": "cos(2 pi x fraction of the day's own session elapsed)",
    "is_stale": "1 when the last trade is older than the ingest's stale_after_s, else 0",
    "is_filled": "1 when the second had no trade (values carried forward), else 0",
}
FEATURE_COLUMNS: tuple[str, ...] = tuple(FEATURE_TABLE)

# Not model inputs: the causal scale of the target and the target itself (looks forward).
OUTPUT_TABLE: dict[str, str] = {
    "sigma_30s": "sqrt(EWMA of squared 1 s log returns) x sqrt(30), floored at sigma_floor; "
    "null until min_periods returns today",
    "ret_30s": "target: close_(t+30) / close_t - 1; null in the last 30 s of the session",
}

FEATURES_SCHEMA = pl.Schema(
    {
        "symbol": pl.String,
        "ts": UTC_US,
        **dict.fromkeys(FEATURE_COLUMNS, pl.Float32),
        "sigma_30s": pl.Float64,
        "ret_30s": pl.Float64,
        "close": pl.Float64,  # forward-filled close
        "stale": pl.Boolean,
        "filled": pl.Boolean,
    }
)

# Windows run per symbol and per session, so even a frame of several days never mixes them.
_GROUP = ("symbol", "_session")


def build_features(bars: pl.LazyFrame, config: FeatureConfig) -> pl.LazyFrame:
    """One session's `clean_bars` (BARS_SCHEMA, the full 1 s grid) -> FEATURES_SCHEMA rows.

    Rows come out sorted by (symbol, ts). Windows count rows, so `bars` must hold every second
    of the session for each symbol, as `clean_bars` does.
    """
    return (
        bars.pipe(_with_session)
        .pipe(_with_one_second_returns)
        .pipe(_with_lagged_returns)
        .pipe(_with_volatility, config)
        .pipe(_with_price_levels, config)
        .pipe(_with_activity, config)
        .pipe(_with_trade_side)
        .pipe(_with_time_of_day)
        .pipe(_with_sigma, config)
        .pipe(_with_target)
        .select(
            pl.col("symbol"),
            pl.col("ts"),
            *(pl.col(name) for name in FEATURE_COLUMNS),
            pl.col("sigma_30s"),
            pl.col("ret_30s"),
            pl.col("_c").alias("close"),
            pl.col("stale"),
            pl.col("filled"),
        )
        .cast(dict(FEATURES_SCHEMA))
    )


def feature_table() -> str:
    """The markdown table of every output column and its meaning (copied into docs/assets.md)."""
    rows = [f"| `{k}` | {v} |" for k, v in {**FEATURE_TABLE, **OUTPUT_TABLE}.items()]
    return "\n".join(["| column | meaning |", "|---|---|", *rows])


# --- expression helpers ---------------------------------------------------------------------


def _per_symbol(expr: pl.Expr) -> pl.Expr:
    return expr.over(*_GROUP)


def _log_return(lag: int) -> pl.Expr:
    return _per_symbol((pl.col("_c") / pl.col("_c").shift(lag)).log())


def _trailing_mean(column: str, window: int, config: FeatureConfig) -> pl.Expr:
    min_samples = min(config.min_periods, window)
    return _per_symbol(pl.col(column).rolling_mean(window, min_samples=min_samples))


def _trailing_sum(column: str, window: int, config: FeatureConfig) -> pl.Expr:
    min_samples = min(config.min_periods, window)
    return _per_symbol(pl.col(column).rolling_sum(window, min_samples=min_samples))


@lru_cache(maxsize=1)
def _sessions() -> pl.DataFrame:
    """Every XNYS session's date with its regular open and close (UTC)."""
    schedule = nyse().schedule
    return pl.DataFrame(
        {
            "_session": list(schedule.index.date),
            "_open": [ts.to_pydatetime() for ts in schedule["open"]],
            "_close": [ts.to_pydatetime() for ts in schedule["close"]],
        },
        schema={"_session": pl.Date, "_open": UTC_US, "_close": UTC_US},
    )


# --- steps ----------------------------------------------------------------------------------


def _with_session(bars: pl.LazyFrame) -> pl.LazyFrame:
    """Attach the session (New York date) with its calendar open and close; sort."""
    session = pl.col("ts").dt.convert_time_zone(NEW_YORK).dt.date().alias("_session")
    return (
        bars.with_columns(session)
        .join(_sessions().lazy(), on="_session", how="left")
        .sort("symbol", "ts")
    )


def _with_one_second_returns(frame: pl.LazyFrame) -> pl.LazyFrame:
    return frame.with_columns(_per_symbol(pl.col("close").forward_fill()).alias("_c")).with_columns(
        _log_return(1).alias("_r1")
    )


def _with_lagged_returns(frame: pl.LazyFrame) -> pl.LazyFrame:
    return frame.with_columns(_log_return(k).alias(f"logret_{k}s") for k in RETURN_HORIZONS_S)


def _with_volatility(frame: pl.LazyFrame, config: FeatureConfig) -> pl.LazyFrame:
    """Realised volatility: the mean square over today's part of the window, scaled to it."""
    squared = frame.with_columns((pl.col("_r1") ** 2).alias("_r1sq"))
    return squared.with_columns(
        (_trailing_mean("_r1sq", w, config).clip(lower_bound=0.0) * w).sqrt().alias(f"rv_{w}s")
        for w in VOLATILITY_WINDOWS_S
    )


def _with_price_levels(frame: pl.LazyFrame, config: FeatureConfig) -> pl.LazyFrame:
    """Close against its trailing moving averages and trailing VWAPs."""
    ma_ratios = (
        (pl.col("_c") / _trailing_mean("_c", w, config) - 1).alias(f"ma_ratio_{w}s")
        for w in MA_WINDOWS_S
    )
    return frame.with_columns(*ma_ratios, *(_vwap_deviation(w, config) for w in VWAP_WINDOWS_S))


def _vwap_deviation(window: int, config: FeatureConfig) -> pl.Expr:
    volume = _trailing_sum("volume", window, config)
    amount = _trailing_sum("amount", window, config)
    return (
        pl.when((volume > 0) & (amount > 0))
        .then(pl.col("_c") * volume / amount - 1)
        .alias(f"vwap_dev_{window}s")
    )


def _with_activity(frame: pl.LazyFrame, config: FeatureConfig) -> pl.LazyFrame:
    """High-low range, and volume and amount on a log scale and against their trailing mean."""
    w = ACTIVITY_WINDOW_S
    relative = (
        (pl.col(c).log1p() - _trailing_mean(c, w, config).log1p()).alias(f"{c}_rel_{w}s")
        for c in ("volume", "amount")
    )
    return frame.with_columns(
        ((pl.col("high") - pl.col("low")) / pl.col("_c")).alias("hl_range"),
        pl.col("volume").log1p().alias("log_volume"),
        pl.col("amount").log1p().alias("log_amount"),
        *relative,
    ).with_columns(
        _trailing_mean("hl_range", RANGE_WINDOW_S, config).alias(f"hl_range_mean_{RANGE_WINDOW_S}s")
    )


def _with_trade_side(frame: pl.LazyFrame) -> pl.LazyFrame:
    """Hints of the side of the last trade (at the bid or the ask), which moves the next 30 s
    return by the bid-ask bounce: where the close sits in its bar's range and in the last range
    seen, and the tick test."""
    bar_range = pl.col("high") - pl.col("low")
    ranged = bar_range > 0
    position = 2 * (pl.col("close") - pl.col("low")) / bar_range - 1
    location = pl.when(ranged).then(position.clip(-1, 1))  # null: no range (or no trade)
    change = _per_symbol(pl.col("_c").diff()).sign()
    # the last range seen (a bar with trades at both quotes spans them), carried forward
    high = _per_symbol(pl.when(ranged).then(pl.col("high")).forward_fill())
    low = _per_symbol(pl.when(ranged).then(pl.col("low")).forward_fill())
    quote_position = (2 * (pl.col("_c") - low) / (high - low) - 1).clip(-3, 3)
    return frame.with_columns(
        location.fill_null(0.0).alias("close_location"),
        _carried(location).alias("close_location_last"),
        _carried(pl.when(change != 0).then(change)).alias("tick_test"),
        quote_position.fill_null(0.0).alias("quote_position"),
        (2 * pl.col("_c") / (high + low) - 1).fill_null(0.0).alias("quote_mid_dev"),
    )


def _carried(expr: pl.Expr) -> pl.Expr:
    """The last non-null value of `expr` today (per symbol), 0 before the first."""
    return _per_symbol(expr.forward_fill()).fill_null(0.0)


def _with_time_of_day(frame: pl.LazyFrame) -> pl.LazyFrame:
    """Seconds since the calendar open and the phase of the day's own session (half days)."""
    elapsed = (pl.col("ts") - pl.col("_open")).dt.total_seconds().cast(pl.Float64)
    length = (pl.col("_close") - pl.col("_open")).dt.total_seconds().cast(pl.Float64)
    angle = 2 * math.pi * elapsed / length
    return frame.with_columns(
        elapsed.alias("secs_since_open"),
        angle.sin().alias("tod_sin"),
        angle.cos().alias("tod_cos"),
        pl.col("stale").cast(pl.Float32).alias("is_stale"),
        pl.col("filled").cast(pl.Float32).alias("is_filled"),
    )


def _with_sigma(frame: pl.LazyFrame, config: FeatureConfig) -> pl.LazyFrame:
    """`sigma_30s`: EWMA volatility of 1 s log returns, scaled to 30 s and floored."""
    ewma = pl.col("_r1sq").ewm_mean(
        half_life=config.sigma_halflife_s, adjust=True, min_samples=config.min_periods
    )
    sigma = _per_symbol(ewma).sqrt() * math.sqrt(HORIZON_S)
    return frame.with_columns(sigma.clip(lower_bound=config.sigma_floor).alias("sigma_30s"))


def _with_target(frame: pl.LazyFrame) -> pl.LazyFrame:
    """`ret_30s = close[t+30] / close[t] - 1`, null where t+30 is past the session's end."""
    ahead = pl.col("_c").shift(-HORIZON_S)
    return frame.with_columns(_per_symbol(ahead / pl.col("_c") - 1).alias("ret_30s"))
