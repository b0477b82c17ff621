"""The synthetic market: raw contract, stylised facts measured on the written CSVs, the oracle.

One market (10 symbols x 3 sessions) is written once per module and read back from disk the way
the pipeline will read it; every stylised fact is measured on the regular-hours close
forward-filled onto the 1 s grid.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
import pytest
from scipy import stats

from diffstock_ml.calendar import NEW_YORK, day_key, parse_day, session_bounds
from diffstock_ml.synthetic import (
    PROFILES,
    UNIVERSE,
    MarketParams,
    SyntheticConfig,
    generate_market,
    simulate_forward,
)
from diffstock_ml.synthetic.__main__ import main
from diffstock_ml.synthetic.writer import RAW_COLUMNS, raw_frame, write_params

CFG = SyntheticConfig(symbols=UNIVERSE[:10], start="20251103", end="20251105")
MIDDAY = slice(9000, 16200)  # 12:00-14:00 New York, seconds after a 09:30 open
RAW_TYPES = [pl.String] * 3 + [pl.Float64] * 3 + [pl.Int64, pl.Float64]
RAW_SCHEMA = dict(zip(RAW_COLUMNS, RAW_TYPES, strict=True))


@pytest.fixture(scope="module")
def market(tmp_path_factory) -> Path:
    raw = tmp_path_factory.mktemp("synthetic") / "raw"
    generate_market(CFG, raw, workers=1)
    return raw


def read_raw(path: Path) -> pl.DataFrame:
    frame = pl.read_csv(path, schema=RAW_SCHEMA)
    parse = "%Y-%m-%d %H:%M:%S%:z"
    return frame.with_columns(
        pl.col("bob").str.to_datetime(parse).dt.epoch("s").alias("t"),
        pl.col("eob").str.to_datetime(parse).dt.epoch("s").alias("t_end"),
    )


@pytest.fixture(scope="module")
def bars(market) -> dict[tuple[str, str], pl.DataFrame]:
    return {(d, s): read_raw(market / d / f"{s}.csv") for d in days() for s in CFG.symbols}


def days() -> list[str]:
    return [day_key(d) for d in CFG.sessions()]


def regular_grid(frame: pl.DataFrame, day: str) -> tuple[np.ndarray, np.ndarray]:
    """Cent-rounded close forward-filled (from pre-market on) and volume on the regular grid."""
    open_, close = (int(b.timestamp()) for b in session_bounds(parse_day(day)))
    t = frame["t"].to_numpy()
    first = min(int(t[0]), open_)
    price = np.full(close - first, np.nan)
    volume = np.zeros(close - first)
    inside = t < close
    price[t[inside] - first] = np.round(frame["close"].to_numpy()[inside], 2)
    volume[t[inside] - first] = frame["volume"].to_numpy()[inside]
    seen = np.maximum.accumulate(np.where(np.isnan(price), 0, np.arange(price.size)))
    return price[seen][open_ - first :], volume[open_ - first :]


@pytest.fixture(scope="module")
def grids(bars) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    return {key: regular_grid(frame, key[0]) for key, frame in bars.items()}


def log_returns(price: np.ndarray, step: int) -> np.ndarray:
    return np.diff(np.log(price[::step]))


def per_symbol(grids, fn) -> np.ndarray:
    """`fn(list of per-day grids)` for every symbol."""
    return np.array([fn([grids[d, s] for d in days()]) for s in CFG.symbols])


def acf(x: np.ndarray, lag: int) -> float:
    x = x - x.mean()
    return float((x[:-lag] * x[lag:]).sum() / (x * x).sum())


# --- configuration and raw contract ----------------------------------------------------------


def test_profiles_cover_the_promised_sessions():
    def shape(cfg: SyntheticConfig) -> tuple:
        return len(cfg.symbols), cfg.start, cfg.end, len(cfg.sessions()), cfg.seed

    assert shape(PROFILES["tiny"]) == (4, "20251031", "20251104", 3, 7)
    assert shape(PROFILES["demo"]) == (12, "20251031", "20251113", 10, 7)
    assert shape(PROFILES["full"]) == (54, "20250924", "20251118", 40, 7)


def test_raw_layout_follows_the_contract(market, bars):
    assert sorted(p.name for p in market.iterdir()) == days()
    for (day, symbol), frame in bars.items():
        header = (market / day / f"{symbol}.csv").read_text().split("\n", 1)[0]
        assert header == ",".join(RAW_COLUMNS)
        t = frame["t"].to_numpy()
        assert np.all(np.diff(t) > 0), "rows sorted by bob, one per traded second"
        assert np.all(frame["t_end"].to_numpy() == t + 1)
        assert frame["bob"][0].endswith("+00:00") and (frame["symbol"] == symbol).all()
        open_, close = session_bounds(parse_day(day))
        assert t[0] >= open_.timestamp() - 5.5 * 3600 and t[-1] < close.timestamp() + 4 * 3600
    latent = market.with_name("raw_latent")
    assert sorted(p.name for p in latent.iterdir()) == sorted(
        [f"{d}.parquet" for d in days()] + ["params.json"]
    )


def test_timestamp_styles_are_real_world_spellings():
    bars = {"bob": np.array([1762180200]), "volume": np.array([100]), "amount": np.array([1234.0])}
    bars |= {price: np.float32([12.34]) for price in ("close", "high", "low")}
    expected = {
        "utc_offset": "2025-11-03 14:30:00+00:00",
        "z": "2025-11-03T14:30:00Z",
        "naive": "2025-11-03 14:30:00",
        "new_york_offset": "2025-11-03 09:30:00-05:00",
    }
    for style, text in expected.items():
        row = raw_frame("ABC", bars, style).row(0, named=True)
        assert row["bob"] == text
        assert row["close"] == float(np.float32(12.34)) != 12.34  # float32 noise as exported


def test_prices_are_float32_noise_around_the_cent_grid(bars):
    for frame in bars.values():
        close, high, low = (frame[c].to_numpy() for c in ("close", "high", "low"))
        assert (np.abs(close - np.round(close, 2)) <= 6e-8 * close).all()  # float32 rounding
        assert (low <= close).all() and (close <= high).all()
    noisy = np.concatenate([f["close"].to_numpy() for f in bars.values()])
    assert (noisy != np.round(noisy, 2)).mean() > 0.5


def test_amount_over_volume_lies_between_low_and_high(bars):
    for frame in bars.values():
        vwap = frame["amount"].to_numpy() / frame["volume"].to_numpy()
        assert (vwap >= frame["low"].to_numpy() * (1 - 1e-12)).all()
        assert (vwap <= frame["high"].to_numpy() * (1 + 1e-12)).all()
        assert (frame["volume"] >= 1).all()


def test_only_traded_seconds_with_realistic_shares(bars):
    regular, extended, rows = [], [], []
    for (day, _), frame in bars.items():
        open_, close = (int(b.timestamp()) for b in session_bounds(parse_day(day)))
        four_am = dt.datetime.combine(parse_day(day), dt.time(4), ZoneInfo(NEW_YORK)).timestamp()
        t = frame["t"].to_numpy()
        inside = (t >= open_) & (t < close)
        regular.append(inside.sum() / (close - open_))
        extended.append((~inside).sum() / (open_ - four_am + 4 * 3600))
        rows.append(frame.height)
    assert min(regular) >= 0.5 and max(regular) <= 0.95
    assert min(extended) >= 0.05 and max(extended) <= 0.25
    assert 25_000 <= np.median(rows) <= 32_000
    assert min(rows) >= 22_000 and max(rows) <= 34_000


# --- stylised facts -----------------------------------------------------------------------------


def test_intraday_u_shape_in_volatility_and_volume(grids):
    def ratio(day_grids):
        r = [np.diff(np.log(p)) for p, _ in day_grids]
        return (
            np.concatenate([x[:1800] for x in r]).std()
            / np.concatenate([x[MIDDAY] for x in r]).std()
        )

    assert 2.0 <= np.median(per_symbol(grids, ratio)) <= 3.0
    for _, volume in grids.values():
        assert volume[:1800].mean() > volume[MIDDAY].mean() < volume[-1800:].mean()


def test_volatility_clusters_in_absolute_minute_returns(grids):
    absolute = [np.abs(log_returns(price, 60)) for price, _ in grids.values()]
    lag1 = np.mean([acf(a, 1) for a in absolute])
    lag10 = np.mean([acf(a, 10) for a in absolute])
    assert 0.1 <= lag1 <= 0.3 and lag10 > 0.03


def test_thirty_second_returns_are_heavy_tailed(grids):
    kurt = per_symbol(
        grids,
        lambda g: stats.kurtosis(np.concatenate([log_returns(p, 30) for p, _ in g]), fisher=False),
    )
    assert 4.0 <= np.median(kurt) <= 11.0


def test_bid_ask_bounce_makes_one_second_returns_mean_revert(grids):
    lag1 = per_symbol(grids, lambda g: acf(np.concatenate([np.diff(p) / p[:-1] for p, _ in g]), 1))
    assert -0.3 <= np.median(lag1) <= -0.05
    assert (lag1 < 0).all()


def test_a_market_factor_drives_co_movement(grids):
    corr = []
    for day in days():
        r = np.array([log_returns(grids[day, s][0], 30) for s in CFG.symbols])
        corr.append([np.corrcoef(r[i], np.delete(r, i, 0).mean(0))[0, 1] for i in range(len(r))])
    assert 0.3 <= np.median(np.mean(corr, axis=0)) <= 0.6


def test_large_caps_move_four_to_twelve_bp_in_thirty_seconds(grids):
    price = per_symbol(grids, lambda g: np.mean([p.mean() for p, _ in g]))
    sd_bp = per_symbol(grids, lambda g: np.concatenate([log_returns(p, 30) for p, _ in g]).std())
    sd_bp = sd_bp * 1e4
    assert price.min() < 20 and price.max() > 150
    assert ((sd_bp[price > 50] >= 4) & (sd_bp[price > 50] <= 12)).all()
    assert stats.spearmanr(price, sd_bp)[0] < -0.5, "cheap names move more in bp"


def test_volume_is_heavy_tailed(bars):
    for frame in bars.values():
        volume = frame["volume"].to_numpy()
        assert stats.kurtosis(volume, fisher=False) > 20
        assert volume.max() / np.median(volume) > 50


def test_jumps_are_rare_and_overnight_gaps_realistic(market, bars):
    latent = pl.read_parquet(market.with_name("raw_latent") / "*.parquet")
    jumps = latent.filter(pl.col("jump") != 0).height / (len(days()) * len(CFG.symbols))
    assert 0.1 <= jumps <= 5, "a few jumps per symbol-day (0.4 of them in regular hours)"
    gaps = []
    for before, after in zip(days()[:-1], days()[1:], strict=True):
        for s in CFG.symbols:
            last_close = regular_grid(bars[before, s], before)[0][-1]
            first_open = regular_grid(bars[after, s], after)[0][0]
            gaps.append(np.log(first_open / last_close))
    assert 0.004 <= np.std(gaps) <= 0.025


# --- determinism, CLI and the oracle ------------------------------------------------------------


def same_bytes(a: Path, b: Path) -> bool:
    return a.read_bytes() == b.read_bytes()


def test_one_day_alone_is_byte_identical(tmp_path, market):
    day = days()[1]
    alone = SyntheticConfig(symbols=CFG.symbols[:3], start=day, end=day)
    generate_market(alone, tmp_path / "raw", workers=1)
    for s in alone.symbols:
        assert same_bytes(tmp_path / "raw" / day / f"{s}.csv", market / day / f"{s}.csv")
    mine = pl.read_parquet(tmp_path / "raw_latent" / f"{day}.parquet")
    full = pl.read_parquet(market.with_name("raw_latent") / f"{day}.parquet")
    assert mine.equals(full.filter(pl.col("symbol").is_in(alone.symbols)))


def test_cli_writes_in_parallel_skips_and_overwrites(tmp_path, market, capsys):
    raw = tmp_path / "data" / "raw"
    argv = f"--raw {raw} --symbols 2 --start {days()[0]} --end {days()[1]} --workers 2".split()
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[:2]] == days()[:2] and "rows" in lines[0]
    for day in days()[:2]:
        for s in CFG.symbols[:2]:
            assert same_bytes(raw / day / f"{s}.csv", market / day / f"{s}.csv")
    assert main(argv) == 0
    assert all("skipped" in line for line in capsys.readouterr().out.splitlines()[:2])
    assert main([*argv, "--overwrite", "--workers", "1"]) == 0
    assert "rows" in capsys.readouterr().out.splitlines()[0]
    assert not list(raw.rglob("*.tmp"))
    assert (tmp_path / "data" / "raw_latent" / "params.json").exists()


def test_params_json_round_trips_and_guards_its_market(market, tmp_path):
    params = MarketParams.from_json(market.with_name("raw_latent") / "params.json")
    assert params == MarketParams.of(CFG)
    write_params(replace(CFG, symbols=UNIVERSE[:3]), tmp_path)
    write_params(replace(CFG, symbols=UNIVERSE[:5]), tmp_path)  # same market, more symbols
    assert MarketParams.from_json(tmp_path / "params.json") == MarketParams.of(
        replace(CFG, symbols=UNIVERSE[:5])
    )
    with pytest.raises(ValueError, match="another synthetic market"):
        write_params(replace(CFG, seed=8), tmp_path)
    write_params(replace(CFG, seed=8), tmp_path, overwrite=True)


def crps_ensemble(samples: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Sample CRPS `E|X - y| - E|X - X'| / 2` per row, with the sorted-samples identity."""
    n = samples.shape[1]
    xs = np.sort(samples, axis=1)
    spread = ((2 * np.arange(1, n + 1) - n - 1) * xs).sum(axis=1) / n**2
    return np.abs(samples - y[:, None]).mean(axis=1) - spread


def test_oracle_is_calibrated_and_beats_a_gaussian(market, grids):
    rng = np.random.default_rng(0)
    samples, realised = [], []
    for day in days():  # 150 random anchors a day, 30 s before the close at the latest
        latent = pl.read_parquet(market.with_name("raw_latent") / f"{day}.parquet")
        length = latent.height // len(CFG.symbols)
        rows = np.sort(rng.choice(latent.height, 150, replace=False))
        rows = rows[rows % length < length - 30]
        for row in rows:
            price, t = grids[day, CFG.symbols[row // length]][0], row % length
            realised.append(price[t + 30] / price[t] - 1)
        samples.append(simulate_forward(latent[rows], MarketParams.of(CFG), 30, 1000, rng))
    x, y = np.round(np.concatenate(samples), 10), np.round(realised, 10)  # compare on the grid
    pit = (x < y[:, None]).mean(axis=1) + rng.random(y.size) * (x == y[:, None]).mean(axis=1)
    assert stats.kstest(pit, "uniform").pvalue > 0.01, "randomised PIT is uniform"
    sd = y.std()
    z = y / sd
    gauss = sd * (z * (2 * stats.norm.cdf(z) - 1) + 2 * stats.norm.pdf(z) - 1 / np.sqrt(np.pi))
    assert crps_ensemble(x, y).mean() < 0.97 * gauss.mean()
