"""The full 1 s grid of the regular session per symbol, with forward fill and staleness flags."""

from __future__ import annotations

import datetime as dt

import polars as pl

from diffstock_ml.ingest.schema import BARS_SCHEMA, UTC_US


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
    `stale_after_s` seconds or there has been no trade at all.
    """
    in_session = (pl.col("ts") >= open_utc) & (pl.col("ts") < close_utc)
    regular = bars.filter(in_session)
    seed = (
        bars.filter(pl.col("ts") < open_utc)
        .sort("ts")
        .group_by("symbol")
        .agg(pl.col("close").last().alias("_seed_close"), pl.col("ts").last().alias("_seed_ts"))
    )
    symbols = bars.select("symbol").unique().sort("symbol")
    seconds = pl.LazyFrame({"ts": session_seconds(open_utc, close_utc)})
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
        symbols.join(seconds, how="cross", maintain_order="left")
        .join(regular, on=["symbol", "ts"], how="left", maintain_order="left")
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


def empty_bars() -> pl.DataFrame:
    return pl.DataFrame(schema=BARS_SCHEMA).with_columns(pl.col("ts").cast(UTC_US))
