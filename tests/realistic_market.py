"""A raw folder that looks like a real consolidated tape, not like the demo market.

What real users' data has and the synthetic demo market does not: symbols that trade in only a
third of the seconds, a 20-minute halt, a symbol listed mid-range and one delisted before the
end, sub-penny prints and odd lots, and a day whose open is 15 minutes late. Dated October 2013
(before the 2024 partition start that once broke this) unless told otherwise.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from diffstock_ml.calendar import day_key, session_bounds

SESSIONS = (
    dt.date(2013, 10, 7),
    dt.date(2013, 10, 8),
    dt.date(2013, 10, 9),
    dt.date(2013, 10, 10),
    dt.date(2013, 10, 11),
)


@dataclass(frozen=True)
class Ticker:
    symbol: str
    price: float
    trade_share: float  # share of regular-hours seconds with a trade
    first_day: int = 0  # index into the sessions: listed from this day on
    last_day: int = 99  # ... and delisted after this one


TICKERS = (
    Ticker("AAPL", 480.0, 0.80),
    Ticker("F", 17.0, 0.45),
    Ticker("GE", 24.0, 0.27),
    Ticker("TWTR", 45.0, 0.60, first_day=1),  # lists on the second day
    Ticker("DELL", 13.8, 0.35, last_day=3),  # delisted before the last day
)
HALT = ("GE", 2, 3600, 1200)  # symbol, session index, start second, length: a 20-minute halt
LATE_OPEN = (3, 900)  # session index, seconds without any trade after the open


def write_realistic_market(
    root: Path, sessions: tuple[dt.date, ...] = SESSIONS, seed: int = 0
) -> list[str]:
    """Write `root/YYYYMMDD/SYMBOL.csv` for every session; returns the day keys."""
    rng = np.random.default_rng(seed)
    for index, day in enumerate(sessions):
        folder = root / day_key(day)
        folder.mkdir(parents=True, exist_ok=True)
        open_utc, close_utc = session_bounds(day)
        seconds = int((close_utc - open_utc).total_seconds())
        for ticker in TICKERS:
            if not ticker.first_day <= index <= ticker.last_day:
                continue
            frame = _bars(ticker, index, open_utc, seconds, rng)
            frame.write_csv(folder / f"{ticker.symbol}.csv")
    return [day_key(d) for d in sessions]


def _bars(
    ticker: Ticker, index: int, open_utc: dt.datetime, seconds: int, rng: np.random.Generator
) -> pl.DataFrame:
    traded = rng.random(seconds) < ticker.trade_share
    if ticker.symbol == HALT[0] and index == HALT[1]:
        traded[HALT[2] : HALT[2] + HALT[3]] = False
    if index == LATE_OPEN[0]:
        traded[: LATE_OPEN[1]] = False
    second = np.flatnonzero(traded)
    # a latent random walk (~1.5 bp per traded second) printed on the cent grid, with a few
    # sub-penny prints (price improvement) and a one-tick bid-ask bounce
    steps = rng.standard_t(4, len(second)) * 1.5e-4 * ticker.price / np.sqrt(2)
    latent = ticker.price + np.cumsum(steps)
    bounce = np.where(rng.random(len(second)) < 0.5, -0.005, 0.005)
    close = np.round(latent + bounce, 2)
    sub_penny = rng.random(len(second)) < 0.02
    close = np.where(sub_penny, np.round(latent, 4), close)
    spread = np.abs(rng.normal(0, 0.01, len(second)))
    high = np.round(np.maximum(close, close + spread), 4)
    low = np.round(np.minimum(close, close - spread), 4)
    lots = rng.choice([100, 200, 300, 500, 1000], len(second))
    odd = rng.random(len(second)) < 0.2
    volume = np.where(odd, rng.integers(1, 100, len(second)), lots)
    bob = [open_utc + dt.timedelta(seconds=int(s)) for s in second]
    stamp = "%Y-%m-%d %H:%M:%S+00:00"
    return pl.DataFrame(
        {
            "symbol": ticker.symbol,
            "bob": [b.strftime(stamp) for b in bob],
            "eob": [(b + dt.timedelta(seconds=1)).strftime(stamp) for b in bob],
            "close": close,
            "high": high,
            "low": low,
            "volume": volume,
            "amount": np.round(close * volume, 2),
        }
    )
