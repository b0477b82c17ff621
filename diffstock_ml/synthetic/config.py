"""Configuration of the synthetic market: one frozen dataclass and three named profiles.

Every number that shapes the market is a field here with its meaning and unit, so a run is
reproduced exactly by `SyntheticConfig(**json.load(...)["config"])`. The defaults were
calibrated by simulation against the stylised facts listed in `diffstock_ml.synthetic`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Literal

from diffstock_ml.calendar import day_key, last_sessions, parse_day, sessions_between
from diffstock_ml.market import TICK

TimestampStyle = Literal["utc_offset", "z", "naive", "new_york_offset"]

# Fictional tickers (the data is synthetic); a profile with n symbols takes the first n.
UNIVERSE: tuple[str, ...] = (
    "ALVA", "BRIX", "CADN", "DORL", "EMBR", "FYNX", "GLAD", "HURO", "IVEX", "JALT",
    "KORV", "LUMA", "MERI", "NOVT", "OPAL", "PRYM", "QUIL", "ROSK", "SELV", "TAVO",
    "UMBR", "VEXA", "WYND", "XERI", "YALO", "ZENT", "ARCO", "BLYT", "CIRA", "DUNE",
    "ELMO", "FERO", "GRIT", "HALO", "INKA", "JOVA", "KITE", "LYRA", "MOSS", "NIMB",
    "ORCA", "PIKE", "QUAY", "RUNE", "SAGE", "TIDE", "UVAL", "VOLT", "WREN", "XYLO",
    "YEWS", "ZORA", "AXLE", "BOLT",
)  # fmt: skip


@dataclass(frozen=True)
class SyntheticConfig:
    """A synthetic market: which symbols and sessions, and the parameters of its dynamics."""

    # --- what to generate -------------------------------------------------------------------
    symbols: tuple[str, ...] = UNIVERSE[:12]  # tickers; per-symbol traits follow the position
    start: str = "20251031"  # first session, YYYYMMDD (inclusive)
    end: str = "20251113"  # last session, YYYYMMDD (inclusive)
    seed: int = 7  # root of every random stream: (seed, day, symbol) -> SeedSequence
    timestamp_style: TimestampStyle = "utc_offset"  # how bob/eob are written in the CSVs

    # --- prices and ticks ---------------------------------------------------------------------
    tick: float = TICK  # price grid, dollars
    price_min: float = 10.0  # reference price of the cheapest symbol, dollars
    price_max: float = 500.0  # reference price of the dearest symbol, dollars
    daily_vol: float = 0.016  # sd of the daily log change of the reference level (per weekday)
    level_halflife_days: float = 250.0  # mean reversion of the daily level, calendar days
    gap_sd: float = 0.005  # sd of the overnight gap (log), on top of pre/post-market moves

    # --- volatility of the efficient log price ------------------------------------------------
    vol_30s_bp: float = 5.3  # 30 s vol at midday of a $100 stock with no vol shocks, bp
    vol_price_elasticity: float = -0.3  # vol ∝ price**elasticity (cheap names move more)
    vol_dispersion: float = 0.1  # sd of a per-symbol log multiplier on the vol
    market_share: float = 0.40  # share of a beta-1 stock's variance from the market factor
    beta_range: tuple[float, float] = (0.7, 1.3)  # per-symbol market beta, uniform
    df_range: tuple[float, float] = (5.0, 10.0)  # Student-t degrees of freedom, uniform
    fast_halflife_s: float = 90.0  # half-life of the fast log-vol AR(1), seconds
    fast_sd: float = 0.25  # stationary sd of the fast log-vol
    slow_halflife_s: float = 2400.0  # half-life of the slow log-vol AR(1), seconds
    slow_sd: float = 0.13  # stationary sd of the slow log-vol
    market_halflife_s: float = 1200.0  # half-life of the shared market log-vol AR(1), seconds
    market_sd: float = 0.13  # stationary sd of the market log-vol
    open_boost: float = 2.6  # extra vol factor at the open: U = 1 + boost·exp(-τ/decay) + ...
    open_decay_min: float = 40.0  # decay of the open boost, minutes after the open
    close_boost: float = 0.7  # extra vol factor at the close
    close_decay_min: float = 12.0  # decay of the close boost, minutes before the close
    extended_vol: float = 0.35  # vol factor in pre/post market (midday = 1)
    jumps_per_day: float = 3.0  # expected jumps per symbol and day (Poisson, any hour)
    jump_scale: float = 3.0  # sd of a log jump in units of the symbol's midday 30 s vol

    # --- quotes and trades ----------------------------------------------------------------------
    spread_bp: float = 1.3  # midday quoted spread, bp (at least one tick)
    extended_spread: float = 3.0  # spread multiplier in pre/post market
    trade_rate: float = 2.25  # midday trades per second of the median symbol (Poisson)
    trade_rate_dispersion: float = 0.1  # sd of a per-symbol log multiplier on the rates
    activity_open_boost: float = 2.0  # extra trade rate at the open (same shape as the vol)
    activity_close_boost: float = 2.5  # extra trade rate at the close
    activity_vol_elasticity: float = 0.5  # trade rate ∝ (vol shock)**elasticity
    extended_trade_rate: float = 0.38  # pre/post-market trades per second, median symbol
    side_persistence: float = 0.72  # probability that a trade is on the side of the last one
    trade_dollars: float = 9000.0  # median dollar size of a trade
    size_sigma: float = 0.9  # sd of the log size of a second's volume
    block_prob: float = 0.002  # probability that a traded second holds a block trade
    block_size: tuple[float, float] = (10.0, 60.0)  # block multiplier range, log-uniform
    cross_size: float = 150.0  # opening/closing cross volume in median trade sizes

    def sessions(self) -> list[dt.date]:
        """The NYSE sessions in `[start, end]`, oldest first."""
        days = sessions_between(parse_day(self.start), parse_day(self.end))
        if not days:
            raise ValueError(f"no NYSE session between {self.start} and {self.end}")
        return days

    def with_symbols(self, count: int) -> SyntheticConfig:
        """This config with the first `count` tickers of the universe."""
        if not 1 <= count <= len(UNIVERSE):
            raise ValueError(f"--symbols must be in 1..{len(UNIVERSE)}, got {count}")
        return replace(self, symbols=UNIVERSE[:count])


def _sessions_ending(end: str, count: int) -> tuple[str, str]:
    days = last_sessions(parse_day(end), count)
    return day_key(days[0]), day_key(days[-1])


def _profile(n_symbols: int, end: str, n_sessions: int) -> SyntheticConfig:
    start, end = _sessions_ending(end, n_sessions)
    return SyntheticConfig(symbols=UNIVERSE[:n_symbols], start=start, end=end)


PROFILES: dict[str, SyntheticConfig] = {
    "tiny": _profile(4, "20251104", 3),  # tests
    "demo": _profile(12, "20251113", 10),  # 20251031..20251113, spans the 2025-11-02 clock change
    "full": _profile(54, "20251118", 40),  # 20250924..20251118
}
