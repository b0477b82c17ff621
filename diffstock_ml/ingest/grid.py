"""The full 1 s grid of the regular session per symbol, with forward fill and staleness flags."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from diffstock_ml.ingest.schema import BARS_SCHEMA, UTC_US

VALUE_COLUMNS = ("close", "high", "low", "volume", "amount")


def session_seconds(open_utc: dt.datetime, close_utc: dt.datetime) -> pl.Series:
    """Every bar-begin second of the session: `[open, close)`, UTC."""
    last = close_utc - dt.timedelta(seconds=1)
    return pl.datetime_range(open_utc, last, "1s", time_unit="us", time_zone="UTC", eager=True)


def build_grid(
    bars: pl.LazyFrame,
    open_utc: dt.datetime,
    close_utc: dt.datetime,
    stale_after_s: int,
) -> pl.LazyFrame:
    """Put valid bars (`symbol, ts, close, high, low, volume, amount`) on the session grid.

    Seconds without a trade carry the last close (high = low = close, volume = amount = 0,
    `filled`). Before the first regular-hours trade the last pre-market trade seeds the fill;
    with none, close stays null. A second is `stale` when its last trade is older than
    `stale_after_s` seconds or there has been no trade at all. `bars` hold at most one row per
    (symbol, second).
    """
    frame = bars.collect()
    symbols = frame.get_column("symbol").unique().sort()
    seconds = session_seconds(open_utc, close_utc)
    seed = (
        frame.lazy()
        .filter(pl.col("ts") < open_utc)
        .sort("ts")
        .group_by("symbol")
        .agg(pl.col("close").last().alias("_seed_close"), pl.col("ts").last().alias("_seed_ts"))
    )
    last_trade = (
        pl.when(pl.col("close").is_not_null())
        .then(pl.col("ts"))
        .forward_fill()
        .over("symbol")
        .fill_null(pl.col("_seed_ts"))
    )
    close = pl.col("close").forward_fill().over("symbol").fill_null(pl.col("_seed_close"))
    age = pl.col("ts") - pl.col("_last_trade")
    # symbols (sorted) x seconds (sorted) is already in (symbol, ts) order: joins keep it.
    return (
        _scatter_on_grid(frame, symbols, seconds)
        .lazy()
        .join(seed, on="symbol", how="left", maintain_order="left")
        .with_columns(
            pl.col("close").is_null().alias("filled"),
            last_trade.alias("_last_trade"),
        )
        .with_columns(
            close.alias("close"),
            (pl.col("_last_trade").is_null() | (age > dt.timedelta(seconds=stale_after_s))).alias(
                "stale"
            ),
        )
        .with_columns(
            pl.col("high").fill_null(pl.col("close")),
            pl.col("low").fill_null(pl.col("close")),
            pl.col("volume").fill_null(0.0),
            pl.col("amount").fill_null(0.0),
        )
        .select(pl.col(name).cast(dtype) for name, dtype in BARS_SCHEMA.items())
    )


def _scatter_on_grid(frame: pl.DataFrame, symbols: pl.Series, seconds: pl.Series) -> pl.DataFrame:
    """symbols x seconds in (symbol, ts) order, with each regular-hours bar in its cell.

    Cell = symbol index x T + second of the session: numpy assignments place the bars, which
    is several times faster than joining on (symbol, ts). Cells without a bar are null.
    """
    n_seconds = len(seconds)
    open_utc = seconds[0]
    symbol_index = pl.col("symbol").cast(pl.Enum(symbols)).to_physical().cast(pl.Int64)
    offset = (pl.col("ts") - pl.lit(open_utc)).dt.total_seconds()
    regular = frame.filter((offset >= 0) & (offset < n_seconds)).select(
        (symbol_index * n_seconds + offset).alias("cell"), *VALUE_COLUMNS
    )
    cells = regular.get_column("cell").to_numpy()
    columns = {}
    for name in VALUE_COLUMNS:
        values = np.full(len(symbols) * n_seconds, np.nan)
        values[cells] = regular.get_column(name).to_numpy()
        columns[name] = pl.Series(name, values, nan_to_null=True)
    return pl.DataFrame(
        {
            "symbol": symbols.gather(np.repeat(np.arange(len(symbols)), n_seconds)),
            "ts": pl.concat([seconds] * len(symbols)) if len(symbols) else seconds.clear(),
            **columns,
        }
    )


def empty_bars() -> pl.DataFrame:
    return pl.DataFrame(schema=BARS_SCHEMA).with_columns(pl.col("ts").cast(UTC_US))
