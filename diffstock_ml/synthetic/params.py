"""Per-symbol parameters, random streams, the day's clock and the time-of-day shapes.

These are the pieces that the day simulation (`market.simulate_day`) and the oracle
(`market.simulate_forward`) share, so both use exactly the same dynamics.
"""

from __future__ import annotations

import datetime as dt
import json
import zlib
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
from scipy.signal import lfilter

from diffstock_ml.calendar import NEW_YORK, day_key, session_bounds
from diffstock_ml.synthetic.config import SyntheticConfig

MARKET = "__market__"  # stream key of everything shared by all symbols
PARAMS = "__params__"  # stream key of a symbol's fixed traits
LEVEL_EPOCH = dt.date(2000, 1, 3)  # first day of the daily level paths (a Monday)
LEVEL_DAYS = 40_000  # calendar days covered by the daily level paths (to 2109)
EXTENDED_HOURS_S = 4 * 3600  # post-market length; pre-market is 04:00 to the open
# Columns of LATENT/YYYYMMDD.parquet: one row per symbol and regular second (end-of-second state).
LATENT_COLUMNS: dict[str, str] = {
    "symbol": "ticker",
    "ts": "bar begin of the second, UTC",
    "mid": "efficient price exp(x) at the end of the second",
    "sigma_1s": "per-second sd of the efficient log price (market and idiosyncratic parts)",
    "h_fast": "fast log-vol AR(1) state",
    "h_slow": "slow log-vol AR(1) state",
    "h_mkt": "shared market log-vol AR(1) state",
    "tod": "time-of-day vol factor U",
    "spread_ticks": "quoted spread in ticks",
    "jump": "log jump in this second (0 without one)",
    "last_side": "side of the last trade so far: +1 at the ask, -1 at the bid, 0 none yet",
    "last_price": "price of the last trade so far (the forward-filled close), dollars",
    "bridge": "drift per unit variance that ends the day at its daily level",
}


def stream(seed: int, key: str, day: dt.date | None = None) -> np.random.Generator:
    """The random generator of `(seed, day, key)`; the same triple always gives the same draws."""
    day_int = int(day_key(day)) if day is not None else 0
    return np.random.default_rng(np.random.SeedSequence([seed, day_int, zlib.crc32(key.encode())]))


@dataclass(frozen=True)
class SymbolParams:
    """Fixed traits of one symbol (drawn once from `(seed, symbol)`)."""

    symbol: str
    price: float  # reference price level, dollars
    beta: float  # loading on the market factor
    market_sd: float  # per-second sd of the market factor (at U = 1, no shocks)
    idio_sd: float  # per-second sd of the idiosyncratic part (at U = 1, no shocks)
    df: float  # Student-t degrees of freedom of the idiosyncratic innovations
    jump_rate: float  # jumps per second
    jump_sd: float  # sd of a log jump
    spread_ticks: float  # midday spread in ticks before rounding (at least 1)
    trade_rate: float  # midday trades per second
    extended_trade_rate: float  # pre/post-market trades per second (before the ramp)
    trade_size: float  # median shares per trade
    side_persistence: float  # P(a trade is on the side of the previous trade)
    phi_fast: float  # AR(1) coefficients per second of the fast, slow and market log-vols
    phi_slow: float
    phi_market: float
    tick: float  # dollars


def _van_der_corput(n: int) -> float:
    """n-th point of the base-2 van der Corput sequence: any prefix spreads evenly over (0, 1)."""
    q, denom = 0.0, 1.0
    while n:
        n, rem = divmod(n, 2)
        denom *= 2
        q += rem / denom
    return q


def ar_coefficient(halflife_s: float) -> float:
    """Per-second AR(1) coefficient with the given half-life in seconds."""
    return 0.5 ** (1.0 / halflife_s)


def symbol_params(cfg: SyntheticConfig) -> dict[str, SymbolParams]:
    """Traits of every symbol of `cfg`; the price level follows the symbol's position."""
    out = {}
    ref_var = (cfg.vol_30s_bp * 1e-4) ** 2 / 30.0  # per-second variance of a $100 stock
    market_sd = float(np.sqrt(cfg.market_share * ref_var))
    for index, symbol in enumerate(cfg.symbols):
        rng = stream(cfg.seed, f"{PARAMS}{symbol}")
        z_vol, z_rate = rng.standard_normal(2)
        price = cfg.price_min * (cfg.price_max / cfg.price_min) ** _van_der_corput(index + 1)
        vol = ref_var * (price / 100.0) ** (2 * cfg.vol_price_elasticity)
        vol *= np.exp(2 * cfg.vol_dispersion * z_vol)
        beta = rng.uniform(*cfg.beta_range)
        idio_var = max(vol - (beta * market_sd) ** 2, 0.25 * vol)
        rate = np.exp(cfg.trade_rate_dispersion * z_rate)
        out[symbol] = SymbolParams(
            symbol=symbol,
            price=round(price, 2),
            beta=beta,
            market_sd=market_sd,
            idio_sd=float(np.sqrt(idio_var)),
            df=rng.uniform(*cfg.df_range),
            jump_rate=cfg.jumps_per_day / (16 * 3600),
            jump_sd=cfg.jump_scale * float(np.sqrt(30 * vol)),
            spread_ticks=max(1.0, cfg.spread_bp * 1e-4 * price / cfg.tick),
            trade_rate=cfg.trade_rate * rate,
            extended_trade_rate=cfg.extended_trade_rate * np.sqrt(rate),
            trade_size=max(1.0, cfg.trade_dollars / price),
            side_persistence=cfg.side_persistence,
            phi_fast=ar_coefficient(cfg.fast_halflife_s),
            phi_slow=ar_coefficient(cfg.slow_halflife_s),
            phi_market=ar_coefficient(cfg.market_halflife_s),
            tick=cfg.tick,
        )
    return out


@dataclass(frozen=True)
class MarketParams:
    """Everything needed to simulate the market forward: the config and every symbol's traits."""

    config: SyntheticConfig
    symbols: dict[str, SymbolParams]

    @classmethod
    def of(cls, cfg: SyntheticConfig) -> MarketParams:
        return cls(cfg, symbol_params(cfg))

    def to_json(self) -> str:
        body = {
            "config": asdict(self.config),
            "symbols": {k: asdict(v) for k, v in self.symbols.items()},
        }
        return json.dumps(body, indent=2)

    @classmethod
    def from_json(cls, text: str | Path) -> MarketParams:
        """Parse `params.json` (its text, or its path)."""
        raw: dict[str, Any] = json.loads(Path(text).read_text() if isinstance(text, Path) else text)
        conf = {k: tuple(v) if isinstance(v, list) else v for k, v in raw["config"].items()}
        symbols = {k: SymbolParams(**v) for k, v in raw["symbols"].items()}
        return cls(SyntheticConfig(**conf), symbols)


@dataclass(frozen=True)
class DayClock:
    """The simulated seconds of one session day: 04:00 New York to four hours after the close."""

    day: dt.date
    start: int  # epoch second of 04:00 New York
    open: int  # index of the first regular second
    close: int  # index of the first second after the regular session
    n: int  # number of simulated seconds


def day_clock(day: dt.date) -> DayClock:
    open_, close = session_bounds(day)
    start = int(dt.datetime.combine(day, dt.time(4), ZoneInfo(NEW_YORK)).timestamp())
    open_i, close_i = int(open_.timestamp()) - start, int(close.timestamp()) - start
    return DayClock(day, start, open_i, close_i, close_i + EXTENDED_HOURS_S)


def regular_shape(
    tau: np.ndarray,
    length: np.ndarray | int,
    boost_open: float,
    boost_close: float,
    cfg: SyntheticConfig,
) -> np.ndarray:
    """U-shape `1 + a·exp(-τ/d_open) + b·exp(-(L-1-τ)/d_close)` of seconds `τ` since the open."""
    to_close = np.maximum(length - 1 - tau, 0)
    return (
        1.0
        + boost_open * np.exp(-tau / (60 * cfg.open_decay_min))
        + boost_close * np.exp(-to_close / (60 * cfg.close_decay_min))
    )


def shapes_at(
    cfg: SyntheticConfig, tau: np.ndarray, length: int | np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vol factor U, trade-activity factor and spread factor at `tau` seconds after the open.

    Negative `tau` is pre-market and `tau >= length` post-market, where the vol is
    `extended_vol`, the spread `extended_spread` and the activity a ramp that rises towards the
    open and decays after the close.
    """
    regular = (tau >= 0) & (tau < length)
    inside = np.clip(tau, 0, length - 1)
    vol = np.where(
        regular,
        regular_shape(inside, length, cfg.open_boost, cfg.close_boost, cfg),
        cfg.extended_vol,
    )
    to_session = np.where(tau < 0, -tau, tau - length + 1)
    ramp = 0.5 + 1.5 * np.exp(-to_session / 1800.0)
    activity = np.where(
        regular,
        regular_shape(inside, length, cfg.activity_open_boost, cfg.activity_close_boost, cfg),
        ramp,
    )
    spread = np.where(regular, vol**0.85, cfg.extended_spread)
    return vol, activity, spread


def day_shapes(cfg: SyntheticConfig, clock: DayClock) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`shapes_at` for every simulated second of the day."""
    tau = np.arange(clock.n, dtype=np.float64) - clock.open
    return shapes_at(cfg, tau, clock.close - clock.open)


def ar1_path(rng: np.random.Generator, n: int, phi: float, sd: float) -> np.ndarray:
    """A stationary Gaussian AR(1) path of length `n` with coefficient `phi` and sd `sd`."""
    start = rng.standard_normal() * sd
    shocks = rng.standard_normal(n) * sd * np.sqrt(1 - phi * phi)
    return lfilter([1.0], [1.0, -phi], shocks, zi=[phi * start])[0]


@lru_cache(maxsize=256)
def _level_path(seed: int, key: str, sd: float, halflife_days: float) -> np.ndarray:
    rng = stream(seed, f"__level__{key}")
    weekday = (np.arange(LEVEL_DAYS) % 7) < 5  # the epoch is a Monday
    shocks = rng.standard_normal(LEVEL_DAYS) * sd * weekday
    phi = ar_coefficient(halflife_days)
    start = rng.standard_normal() * sd * np.sqrt(5 / 7 / (1 - phi * phi))
    return lfilter([1.0], [1.0, -phi], shocks, zi=[phi * start])[0]


def daily_level(cfg: SyntheticConfig, p: SymbolParams, day: dt.date) -> float:
    """Log efficient price of `p.symbol` at the end of `day`'s post-market (a stationary path)."""
    i = (day - LEVEL_EPOCH).days
    if not 0 <= i < LEVEL_DAYS:
        raise ValueError(f"{day_key(day)} is outside the synthetic market's years")
    share = cfg.market_share
    market = _level_path(cfg.seed, MARKET, cfg.daily_vol * np.sqrt(share), cfg.level_halflife_days)
    idio_sd = cfg.daily_vol * np.sqrt(1 - share)
    idio = _level_path(cfg.seed, p.symbol, idio_sd, cfg.level_halflife_days)
    return float(np.log(p.price) + p.beta * market[i] + idio[i])


def quotes(x: np.ndarray, spread: np.ndarray, tick: float) -> tuple[np.ndarray, np.ndarray]:
    """Bid and ask in ticks around the efficient log price `x` with `spread` ticks."""
    bid = np.floor(np.exp(x) / tick - spread / 2 + 0.5)
    return bid, bid + spread


def vol_parts(
    cfg: SyntheticConfig,
    beta_sd: np.ndarray | float,
    idio_sd: np.ndarray | float,
    u: np.ndarray,
    h_fast: np.ndarray,
    h_slow: np.ndarray,
    h_mkt: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-second sd of the market part (β·m) and the idiosyncratic part, and the vol shock."""
    shock = np.exp(h_fast + h_slow + h_mkt - (cfg.fast_sd**2 + cfg.slow_sd**2 + cfg.market_sd**2))
    sig_m = beta_sd * u * np.exp(h_mkt - cfg.market_sd**2)
    return sig_m, idio_sd * u * shock, shock


def session_position(ts: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """Seconds since the open of the session of each UTC `ts`, and that session's length."""
    epoch = ts.dt.epoch("s").to_numpy()
    days = ts.dt.convert_time_zone(NEW_YORK).dt.date().to_numpy()
    open_s, length = np.empty(len(ts)), np.empty(len(ts))
    for day in np.unique(days):
        open_, close = session_bounds(day.astype(dt.date))
        at = days == day
        open_s[at], length[at] = open_.timestamp(), (close - open_).total_seconds()
    return epoch - open_s, length
