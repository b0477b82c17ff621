"""The synthetic market: one day of 1 s bars for every symbol, and the oracle forward simulation.

Model, per symbol i and second t of the day (04:00 New York to 4 h after the close):

1. Efficient log price x(t) = x(t-1) + β·σ_m(t)·ε_m(t) + σ_i(t)·ε_i(t) + J(t) + b·s(t)², with
   σ_m = m·U·exp(h_m − v_m) and σ_i = a·U·exp(h_f + h_s + h_m − v): U the time-of-day vol factor
   (1 + boost·exp(−τ/decay) near the open and close, `extended_vol` off hours), h_f, h_s, h_m
   stationary Gaussian AR(1) log-vols (fast and slow per symbol, one shared by the market;
   v_m, v their variances so the mean variances are m², a²), ε_m normal and shared, ε_i
   Student-t with unit variance, J Poisson jumps with normal sizes, s² = β²σ_m² + σ_i².
   The day starts at the previous session's daily level plus an overnight gap and is bridged
   to end at its own daily level (a slow AR(1) path over calendar days, drawn once per symbol):
   the drift b·s² spreads the difference over the day in proportion to variance. So any day
   can be simulated alone and its open still continues yesterday's close across the gap.
2. Quotes: spread k(t) = max(1, round(k_i·U^0.85)) ticks (× `extended_spread` off hours),
   bid = floor(mid/tick − k/2 + 1/2)·tick, ask = bid + k·tick, mid = exp(x).
3. Trades: n(t) ~ Poisson(λ_i·A(t)·shock^γ), A an activity U-shape (a ramp off hours), shock
   the idiosyncratic vol shock. The side of a traded second's last trade repeats the previous
   one with probability p (bid-ask bounce with some persistence); close = ask after a buy,
   bid after a sell; high/low span both quotes when both sides traded. Volume = n·size·
   lognormal × rare blocks, plus the opening and closing cross; amount = volume × a price in
   [low, high]. Only traded seconds are bars.

Every draw comes from `stream(seed, key, day)` (key: the symbol or the market), so a day, or one
symbol of a day, is the same however many days or symbols are generated. Calibrated facts (10
symbols x 3 days, medians over symbols): first-30-min / midday 1 s vol 2.4, acf of |1 min
returns| 0.2 at lag 1 and 0.14 at lag 10, 30 s kurtosis 7, lag-1 acf of 1 s returns −0.17,
correlation with the market 0.45, 30 s vol of $50+ names 6–9 bp.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl
from numpy.random import Generator

from diffstock_ml.calendar import last_sessions
from diffstock_ml.market import HORIZON_S
from diffstock_ml.synthetic.config import SyntheticConfig
from diffstock_ml.synthetic.params import (
    LATENT_COLUMNS,
    MARKET,
    DayClock,
    MarketParams,
    SymbolParams,
    ar1_path,
    ar_coefficient,
    daily_level,
    day_clock,
    day_shapes,
    quotes,
    session_position,
    shapes_at,
    stream,
    vol_parts,
)


@dataclass(frozen=True)
class MarketDay:
    """One simulated day: the traded seconds per symbol and the regular-hours latent state."""

    clock: DayClock
    # symbol -> {"bob" (epoch s), "close", "high", "low" (float32), "volume", "amount"}
    bars: dict[str, dict[str, np.ndarray]]
    latent: dict[str, np.ndarray]  # LATENT_COLUMNS -> values, symbols stacked in config order


Array = np.ndarray


def _efficient_path(
    cfg: SyntheticConfig, p: SymbolParams, clock: DayClock, u: Array, market: dict, rng: Generator
) -> dict[str, Array]:
    """The efficient log price `x`, its variance per second, jumps and vol states."""
    n = clock.n
    h_fast = ar1_path(rng, n, p.phi_fast, cfg.fast_sd)
    h_slow = ar1_path(rng, n, p.phi_slow, cfg.slow_sd)
    sig_m, sig_i, shock = vol_parts(
        cfg, p.beta * p.market_sd, p.idio_sd, u, h_fast, h_slow, market["h"]
    )
    eps = rng.standard_t(p.df, n) / np.sqrt(p.df / (p.df - 2.0))
    jump = np.zeros(n)
    n_jumps = rng.poisson(p.jump_rate * n)
    jump[rng.integers(0, n, n_jumps)] = rng.standard_normal(n_jumps) * p.jump_sd
    # start at the previous session's level plus an overnight gap, bridge to today's level
    prev = last_sessions(clock.day - dt.timedelta(days=1), 1)[0]
    z_gap = np.sqrt(cfg.market_share) * p.beta * market["gap"]
    z_gap += np.sqrt(1 - cfg.market_share) * rng.standard_t(4) / np.sqrt(2.0)
    var = sig_m**2 + sig_i**2
    x = daily_level(cfg, p, prev) + cfg.gap_sd * z_gap
    x = x + np.cumsum(sig_m * market["eps"] + sig_i * eps + jump)
    cum_var = np.cumsum(var)
    bridge = (daily_level(cfg, p, clock.day) - x[-1]) / cum_var[-1]
    x += bridge * cum_var
    return {
        "x": x,
        "var": var,
        "jump": jump,
        "shock": shock,
        "h_fast": h_fast,
        "h_slow": h_slow,
        "bridge": np.full(n, bridge),
    }


def _trades(
    cfg: SyntheticConfig,
    p: SymbolParams,
    clock: DayClock,
    path: dict,
    shapes: tuple,
    rng: Generator,
) -> dict[str, Array]:
    """Traded seconds with their close/high/low in ticks, volume and amount."""
    _, activity, spread_u = shapes
    spread = np.maximum(1.0, np.rint(p.spread_ticks * spread_u))
    bid, ask = quotes(path["x"], spread, p.tick)
    regular = np.zeros(clock.n, dtype=bool)
    regular[clock.open : clock.close] = True
    rate = np.where(regular, p.trade_rate, p.extended_trade_rate) * activity
    counts = rng.poisson(rate * path["shock"] ** cfg.activity_vol_elasticity)
    counts[[clock.open, clock.close - 1]] += 1  # the opening and closing cross always trade
    idx = np.flatnonzero(counts)
    k = counts[idx]
    flips = rng.random(idx.size) >= p.side_persistence
    side = np.where(np.cumsum(flips) % 2 == 0, 1, -1) * rng.choice([-1, 1])
    both = (k >= 2) & (rng.random(idx.size) < 1.0 - p.side_persistence ** (k - 1))
    b, a = bid[idx], ask[idx]
    size = k * p.trade_size * np.exp(cfg.size_sigma * rng.standard_normal(idx.size))
    blocks = rng.random(idx.size) < cfg.block_prob
    size[blocks] *= np.exp(rng.uniform(*np.log(cfg.block_size), blocks.sum()))
    cross = np.isin(idx, [clock.open, clock.close - 1])
    size[cross] += cfg.cross_size * p.trade_size * np.exp(0.5 * rng.standard_normal(cross.sum()))
    return {
        "idx": idx,
        "side": side,
        "close": np.where(side > 0, a, b),
        "high": np.where(both | (side > 0), a, b),
        "low": np.where(both | (side < 0), b, a),
        "volume": np.maximum(1, np.rint(size)).astype(np.int64),
        "at_ask": np.where(both, rng.random(idx.size), side > 0),  # share of volume at the ask
        "spread": spread,
    }


def _bars(clock: DayClock, trades: dict, tick: float) -> dict[str, Array]:
    """Bars as exported: float32 prices; amount/volume within [low, high] of the float32 prices."""
    cents = round(1 / tick)
    high = (trades["high"] / cents).astype(np.float32)
    low = (trades["low"] / cents).astype(np.float32)
    lo, hi = low.astype(np.float64), high.astype(np.float64)
    return {
        "bob": clock.start + trades["idx"],
        "close": (trades["close"] / cents).astype(np.float32),
        "high": high,
        "low": low,
        "volume": trades["volume"],
        "amount": trades["volume"] * (lo + trades["at_ask"] * (hi - lo)),
    }


def _latent(
    clock: DayClock, path: dict, trades: dict, u: Array, h_mkt: Array, tick: float
) -> dict[str, Array]:
    """The regular seconds' state; the last trade is carried forward from the whole day."""
    idx, seconds = trades["idx"], np.arange(clock.n)
    traded = np.zeros(clock.n, dtype=bool)
    traded[idx] = True
    last = np.maximum.accumulate(np.where(traded, seconds, -1))
    side, price = np.zeros(clock.n, dtype=np.int8), np.full(clock.n, np.nan)
    side[idx], price[idx] = trades["side"], trades["close"] / round(1 / tick)
    reg = slice(clock.open, clock.close)
    last_reg = last[reg]
    seen = last_reg >= 0
    return {
        "ts": clock.start + np.arange(clock.open, clock.close),
        "mid": np.exp(path["x"][reg]),
        "sigma_1s": np.sqrt(path["var"][reg]),
        "h_fast": path["h_fast"][reg],
        "h_slow": path["h_slow"][reg],
        "h_mkt": h_mkt[reg],
        "tod": u[reg],
        "spread_ticks": trades["spread"][reg].astype(np.int16),
        "jump": path["jump"][reg],
        "last_side": np.where(seen, side[np.maximum(last_reg, 0)], 0).astype(np.int8),
        "last_price": np.where(seen, price[np.maximum(last_reg, 0)], np.nan),
        "bridge": path["bridge"][reg],
    }


def simulate_day(
    cfg: SyntheticConfig, day: dt.date, params: MarketParams | None = None
) -> MarketDay:
    """Simulate every symbol of `cfg` on session `day` (deterministic in `cfg.seed` and `day`)."""
    params = params or MarketParams.of(cfg)
    clock = day_clock(day)
    shapes = day_shapes(cfg, clock)
    rng = stream(cfg.seed, MARKET, day)
    h_mkt = ar1_path(rng, clock.n, ar_coefficient(cfg.market_halflife_s), cfg.market_sd)
    market = {"h": h_mkt, "eps": rng.standard_normal(clock.n), "gap": rng.standard_normal()}
    bars, latents = {}, []
    for symbol in cfg.symbols:
        p = params.symbols[symbol]
        rng = stream(cfg.seed, symbol, day)
        path = _efficient_path(cfg, p, clock, shapes[0], market, rng)
        trades = _trades(cfg, p, clock, path, shapes, rng)
        bars[symbol] = _bars(clock, trades, p.tick)
        latents.append(_latent(clock, path, trades, shapes[0], h_mkt, p.tick))
    latent = {k: np.concatenate([lat[k] for lat in latents]) for k in list(LATENT_COLUMNS)[1:]}
    latent["symbol"] = np.repeat(np.array(cfg.symbols), clock.close - clock.open)
    return MarketDay(clock, bars, latent)


def simulate_forward(
    state_rows: pl.DataFrame,
    params: MarketParams,
    horizon_s: int = HORIZON_S,
    n_samples: int = 1000,
    rng: Generator | None = None,
) -> np.ndarray:
    """Samples of the observed return `close[t+h]/close[t] − 1` given the latent state at `t`.

    `state_rows` are rows of a latent file (any symbols and seconds); the result has shape
    `(rows, n_samples)`: tick-exact returns with bid-ask bounce and seconds without trades,
    drawn from exactly the dynamics that generated the market (the oracle forecast).
    """
    rng = rng or np.random.default_rng()
    chunk = max(1, 2_000_000 // n_samples)
    parts = [
        _forward_chunk(state_rows.slice(i, chunk), params, horizon_s, n_samples, rng)
        for i in range(0, state_rows.height, chunk)
    ]
    return np.concatenate(parts) if parts else np.empty((0, n_samples))


def _forward_chunk(
    rows: pl.DataFrame,
    params: MarketParams,
    horizon_s: int,
    n_samples: int,
    rng: Generator,
) -> np.ndarray:
    cfg, shape = params.config, (rows.height, n_samples)
    names, inverse = np.unique(rows["symbol"].to_numpy(), return_inverse=True)
    fields = [f.name for f in dataclasses.fields(SymbolParams) if f.name != "symbol"]
    table = np.array([[getattr(params.symbols[str(n)], f) for f in fields] for n in names])
    p = {f: table[inverse, j][:, None] for j, f in enumerate(fields)}  # each (rows, 1)
    state = {c: rows[c].cast(pl.Float64).to_numpy()[:, None] for c in list(LATENT_COLUMNS)[2:]}
    tau, length = session_position(rows["ts"])
    ahead = tau[:, None] + np.arange(1, horizon_s + 1)  # (rows, horizon) seconds after the open
    u, activity, spread_u = shapes_at(cfg, ahead, length[:, None])
    rate = np.where(ahead < length[:, None], p["trade_rate"], p["extended_trade_rate"]) * activity
    spread = np.maximum(1.0, np.rint(p["spread_ticks"] * spread_u))
    # the state at t, one copy per sample
    x = np.log(state["mid"]) + np.zeros(shape)
    h = [state[c] + np.zeros(shape) for c in ("h_fast", "h_slow", "h_mkt")]
    phis = [p["phi_fast"], p["phi_slow"], p["phi_market"]]
    sds = [cfg.fast_sd, cfg.slow_sd, cfg.market_sd]
    side = np.where(state["last_side"] == 0, rng.choice([-1.0, 1.0], shape), state["last_side"])
    last = np.where(np.isnan(state["last_price"]), state["mid"], state["last_price"])
    start = np.rint(last / p["tick"])
    price = start + np.zeros(shape)
    t_scale = np.sqrt(p["df"] / (p["df"] - 2.0))
    for k in range(horizon_s):
        for j in range(3):  # the log-vol AR(1) steps
            noise = rng.standard_normal(shape)
            h[j] = phis[j] * h[j] + sds[j] * np.sqrt(1 - phis[j] ** 2) * noise
        sig_m, sig_i, shock = vol_parts(
            cfg, p["beta"] * p["market_sd"], p["idio_sd"], u[:, k : k + 1], *h
        )
        eps = rng.standard_t(np.broadcast_to(p["df"], shape)) / t_scale
        x += sig_m * rng.standard_normal(shape) + sig_i * eps
        jumps = np.nonzero(rng.random(shape) < p["jump_rate"])
        x[jumps] += rng.standard_normal(jumps[0].size) * p["jump_sd"][jumps[0], 0]
        x += state["bridge"] * (sig_m**2 + sig_i**2)
        bid, ask = quotes(x, spread[:, k : k + 1], p["tick"])
        lam = rate[:, k : k + 1] * shock**cfg.activity_vol_elasticity
        traded = rng.random(shape) < -np.expm1(-lam)  # P(Poisson(lam) > 0)
        side = np.where(traded & (rng.random(shape) >= p["side_persistence"]), -side, side)
        price = np.where(traded, np.where(side > 0, ask, bid), price)
    return price / start - 1.0
