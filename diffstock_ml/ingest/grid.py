"""The full 1 s grid of the regular session per symbol, with forward fill and staleness flags."""

from __future__ import annotations

import datetime as dt
import functools

import numpy as np
import polars as pl

from diffstock_ml.ingest.schema import BARS_SCHEMA, UTC_US

VALUE_COLUMNS = ("close", "high", "low", "volume", "amount")


@functools.lru_cache(maxsize=8)
def session_seconds(open_utc: dt.datetime, close_utc: dt.datetime) -> pl.Series:
    """Every bar-begin second of the session: `[open, close)`, UTC (cached: every batch of a
    day asks for it)."""
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
    symbols, symbol_index = _symbol_rows(frame.get_column("symbol"))
    seconds = session_seconds(open_utc, close_utc)
    shape = (len(symbols), len(seconds))
    offset = (pl.col("ts") - pl.lit(open_utc)).dt.total_seconds()  # seconds since the open
    located = frame.lazy().select(
        pl.Series("row", symbol_index), offset.alias("second"), *VALUE_COLUMNS
    )
    in_session, pre_market = pl.collect_all(  # one query: the located rows computed once
        [
            located.filter(pl.col("second").is_between(0, shape[1] - 1)),
            located.filter(pl.col("second") < 0),
        ]
    )
    values = _scatter_on_grid(in_session, shape)
    seed_close, seed_second = _seeds(pre_market, len(symbols))

    # last trade of each cell: its second since the open, or the seed's (negative), or NaN
    traded = ~np.isnan(values["close"])
    last = np.maximum.accumulate(np.where(traded, np.arange(shape[1]), -1), axis=1)
    has_last = last >= 0
    rows = np.arange(shape[0])[:, None]
    close = np.where(has_last, values["close"][rows, np.maximum(last, 0)], seed_close[:, None])
    last_second = np.where(has_last, last, seed_second[:, None])
    age = np.arange(shape[1]) - last_second  # NaN when there was no trade at all
    filled = ~traded
    for name, fill in (("high", close), ("low", close), ("volume", 0.0), ("amount", 0.0)):
        np.copyto(values[name], fill, where=filled)  # in place: no new array per column
    columns = {
        "symbol": symbols.gather(np.repeat(np.arange(shape[0]), shape[1])),
        "ts": pl.concat([seconds] * shape[0]) if shape[0] else seconds.clear(),
        "close": close,
        **{name: values[name] for name in ("high", "low", "volume", "amount")},
        "filled": filled.ravel(),
        "stale": ~(age <= stale_after_s).ravel(),
    }
    # Prices are NaN before a symbol's first trade: null in the grid. Volumes never are (a bar's
    # are finite, or it was quarantined; seconds without one have 0).
    grid = {
        name: pl.Series(name, column.ravel(), nan_to_null=name in ("close", "high", "low"))
        if isinstance(column, np.ndarray) and column.dtype.kind == "f"
        else column
        for name, column in columns.items()
    }
    return (
        pl.DataFrame(grid)
        .lazy()
        .select(pl.col(name).cast(dtype) for name, dtype in BARS_SCHEMA.items())
    )


def _symbol_rows(symbol: pl.Series) -> tuple[pl.Series, np.ndarray]:
    """The sorted distinct symbols, and each row's index among them.

    Bars come file by file, a symbol's bars in one run: the runs are ranked, not every row
    hashed (any order is right, only slower).
    """
    runs = symbol.rle()
    values = runs.struct.field("value")
    symbols = values.unique().sort()
    index = {name: i for i, name in enumerate(symbols)}
    rank = np.array([index[name] for name in values], dtype=np.int64)
    return symbols, np.repeat(rank, runs.struct.field("len").to_numpy())


def _scatter_on_grid(located: pl.DataFrame, shape: tuple[int, int]) -> dict[str, np.ndarray]:
    """Each value column as a `[symbols, seconds]` array with each bar in its cell, NaN elsewhere.

    numpy assignments place the bars, which is several times faster than joining on
    (symbol, ts).
    """
    cells = (
        located.get_column("row").to_numpy() * shape[1] + located.get_column("second").to_numpy()
    )
    grid = {}
    for name in VALUE_COLUMNS:
        values = np.full(shape[0] * shape[1], np.nan)
        values[cells] = located.get_column(name).to_numpy()
        grid[name] = values.reshape(shape)
    return grid


def _seeds(pre_market: pl.DataFrame, n_symbols: int) -> tuple[np.ndarray, np.ndarray]:
    """Per symbol: close and second (negative: before the open) of its last pre-market trade."""
    # a symbol has at most one bar a second: its last pre-market bar is the one at its latest
    last = pre_market.filter(pl.col("second") == pl.col("second").max().over("row"))
    close, second = np.full(n_symbols, np.nan), np.full(n_symbols, np.nan)
    rows = last.get_column("row").to_numpy()
    close[rows] = last.get_column("close").to_numpy()
    second[rows] = last.get_column("second").to_numpy()
    return close, second


def empty_bars() -> pl.DataFrame:
    return pl.DataFrame(schema=BARS_SCHEMA).with_columns(pl.col("ts").cast(UTC_US))
