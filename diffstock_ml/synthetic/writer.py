"""Write simulated days in the raw layout (`RAW/YYYYMMDD/SYMBOL.csv`) and the latent truth.

The latent folder sits beside the raw folder (`data/raw` -> `data/raw_latent`), never inside
it: `LATENT/YYYYMMDD.parquet` (one row per symbol and regular second) and `LATENT/params.json`.
Every file is written to a temporary name in its final folder and renamed into place, so a
killed run never leaves a half-written file under a real name.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, replace
from itertools import repeat
from pathlib import Path

import polars as pl

from diffstock_ml.calendar import NEW_YORK, day_key
from diffstock_ml.synthetic.config import SyntheticConfig, TimestampStyle
from diffstock_ml.synthetic.market import MarketDay, simulate_day
from diffstock_ml.synthetic.params import LATENT_COLUMNS, MarketParams

RAW_COLUMNS = ("symbol", "bob", "eob", "close", "high", "low", "volume", "amount")
PARAMS_FILE = "params.json"
_FORMATS: dict[str, str] = {
    "utc_offset": "%Y-%m-%d %H:%M:%S+00:00",
    "z": "%Y-%m-%dT%H:%M:%SZ",
    "naive": "%Y-%m-%d %H:%M:%S",
    "new_york_offset": "%Y-%m-%d %H:%M:%S%:z",
}


@dataclass(frozen=True)
class DaySummary:
    """What happened to one day: written (with row count and seconds taken) or skipped."""

    day: dt.date
    symbols: int
    rows: int  # raw rows written (0 when skipped)
    seconds: float
    skipped: bool


def default_latent_root(raw_root: Path) -> Path:
    """The sibling folder `<raw name>_latent` of `raw_root`."""
    raw_root = Path(raw_root).absolute()
    return raw_root.with_name(f"{raw_root.name}_latent")


def has_latent_state(latent_root: Path | None) -> bool:
    """True when `latent_root` holds a synthetic market's latent state (its `params.json`)."""
    return latent_root is not None and (Path(latent_root) / PARAMS_FILE).exists()


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp)` on a temporary file beside `path`, then rename it to `path`."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _timestamps(epoch_s: pl.Expr, style: TimestampStyle) -> pl.Expr:
    ts = pl.from_epoch(epoch_s, time_unit="s").dt.replace_time_zone("UTC")
    if style == "new_york_offset":
        ts = ts.dt.convert_time_zone(NEW_YORK)
    return ts.dt.to_string(_FORMATS[style])


def raw_frame(symbol: str, bars: dict, style: TimestampStyle = "utc_offset") -> pl.DataFrame:
    """One symbol's bars as the raw CSV columns (prices float32 widened to float64 on purpose)."""
    frame = pl.DataFrame({k: bars[k] for k in ("bob", "close", "high", "low", "volume", "amount")})
    return frame.select(
        pl.lit(symbol).alias("symbol"),
        _timestamps(pl.col("bob"), style).alias("bob"),
        _timestamps(pl.col("bob") + 1, style).alias("eob"),
        pl.col("close", "high", "low").cast(pl.Float64),
        pl.col("volume").cast(pl.Int64),
        pl.col("amount").cast(pl.Float64),
    )


def latent_frame(day: MarketDay) -> pl.DataFrame:
    """The day's latent state with `ts` as a UTC datetime (bar begin of the second)."""
    frame = pl.DataFrame({k: day.latent[k] for k in LATENT_COLUMNS})
    floats = ["sigma_1s", "h_fast", "h_slow", "h_mkt", "tod", "jump"]
    return frame.with_columns(
        pl.from_epoch("ts", time_unit="s").dt.cast_time_unit("us").dt.replace_time_zone("UTC"),
        pl.col(floats).cast(pl.Float32),
    )


def day_present(
    cfg: SyntheticConfig, day: dt.date, raw_root: Path, latent_root: Path | None
) -> bool:
    """True when every symbol's CSV (and the latent file, if wanted) of `day` exists."""
    folder = Path(raw_root) / day_key(day)
    raw_done = all((folder / f"{s}.csv").exists() for s in cfg.symbols)
    return raw_done and (latent_root is None or (latent_root / f"{day_key(day)}.parquet").exists())


def write_day(
    cfg: SyntheticConfig, day: dt.date, raw_root: Path, latent_root: Path | None
) -> DaySummary:
    """Simulate `day` and write its CSVs (and latent parquet when `latent_root` is given)."""
    began = time.perf_counter()
    market = simulate_day(cfg, day)
    folder = Path(raw_root) / day_key(day)
    folder.mkdir(parents=True, exist_ok=True)
    rows = 0
    for symbol, bars in market.bars.items():
        frame = raw_frame(symbol, bars, cfg.timestamp_style)
        rows += frame.height
        atomic_write(folder / f"{symbol}.csv", frame.write_csv)
    if latent_root is not None:
        latent_root.mkdir(parents=True, exist_ok=True)
        frame = latent_frame(market)
        atomic_write(latent_root / f"{day_key(day)}.parquet", frame.write_parquet)
    return DaySummary(day, len(cfg.symbols), rows, time.perf_counter() - began, skipped=False)


def write_params(cfg: SyntheticConfig, latent_root: Path, overwrite: bool = False) -> MarketParams:
    """Write `params.json`, merging the symbols of an earlier run of the same market.

    A file from a market with other dynamics (seed or any parameter) is an error unless
    `overwrite`: the latent days beside it would not match.
    """
    params = MarketParams.of(cfg)
    path = latent_root / PARAMS_FILE
    if path.exists() and not overwrite:
        old = MarketParams.from_json(path)
        same = replace(old.config, symbols=cfg.symbols, start=cfg.start, end=cfg.end)
        if same != replace(cfg, timestamp_style=old.config.timestamp_style):
            raise ValueError(f"{path} describes another synthetic market; use overwrite to replace")
        symbols = {**old.symbols, **params.symbols}
        names = tuple(symbols)
        start, end = min(old.config.start, cfg.start), max(old.config.end, cfg.end)
        params = MarketParams(replace(cfg, symbols=names, start=start, end=end), symbols)
    latent_root.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: tmp.write_text(params.to_json()))
    return params


def generate_market(
    cfg: SyntheticConfig,
    raw_root: Path,
    latent_root: Path | None = None,
    *,
    workers: int = 2,
    overwrite: bool = False,
    write_latent: bool = True,
    on_day: Callable[[DaySummary], None] | None = None,
) -> list[DaySummary]:
    """Write every session of `cfg` over `workers` processes; one summary per day, oldest first.

    Days whose files all exist are skipped unless `overwrite`. `latent_root` defaults to
    `default_latent_root(raw_root)`; `write_latent=False` writes the raw folder only.
    `on_day` is called with each day's summary as soon as it is known, in date order.
    """
    raw_root, latent = Path(raw_root), None
    if write_latent:
        latent = Path(latent_root) if latent_root else default_latent_root(raw_root)
        write_params(cfg, latent, overwrite)
    days = cfg.sessions()
    skipped = {
        day: DaySummary(day, len(cfg.symbols), 0, 0.0, skipped=True)
        for day in days
        if not overwrite and day_present(cfg, day, raw_root, latent)
    }
    todo = [day for day in days if day not in skipped]
    with ExitStack() as stack:
        if workers <= 1 or len(todo) <= 1:
            done = (write_day(cfg, day, raw_root, latent) for day in todo)
        else:
            # spawn, not fork: forking a process whose polars thread pool runs can deadlock
            spawn = multiprocessing.get_context("spawn")
            pool = stack.enter_context(ProcessPoolExecutor(workers, mp_context=spawn))
            done = pool.map(write_day, repeat(cfg), todo, repeat(raw_root), repeat(latent))
        summaries = []
        for day in days:
            summaries.append(skipped[day] if day in skipped else next(done))
            if on_day is not None:
                on_day(summaries[-1])
    return summaries
