"""Benchmark of the `clean_bars` transform on one full synthetic day (54 symbols).

Prints one JSON object. In the same run, on the same files, it measures two references:
- the floor: a bare `polars.read_csv` of every file (no cleaning at all);
- a straightforward pandas cleaning (read, to UTC, filter hours, round, de-duplicate, resample
  to 1 s, forward-fill) — what the seed plan's pandas stack would do.
Each variant runs in its own fresh process (so peak RSS is its own); wall time is the best of
`--repeats` runs. Targets: clean_bars <= 2x the floor and >= 5x faster than pandas.

    python benchmarks/ingest.py [--raw PATH --day YYYYMMDD] [--repeats 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_DAY = "20251103"
VARIANTS = ("floor", "clean_bars", "pandas")


def floor(folder: Path, day: dt.date) -> int:
    import polars as pl

    return sum(pl.read_csv(path).height for path in sorted(folder.glob("*.csv")))


def clean_bars(folder: Path, day: dt.date) -> int:
    from diffstock_ml.ingest import clean_day

    return clean_day(folder, day).bars.height


def pandas_reference(folder: Path, day: dt.date) -> int:
    import pandas as pd

    from diffstock_ml.calendar import session_bounds

    open_utc, close_utc = session_bounds(day)
    grid = pd.date_range(open_utc, close_utc, freq="1s", inclusive="left")
    frames = []
    for path in sorted(folder.glob("*.csv")):
        raw = pd.read_csv(path)
        raw["ts"] = pd.to_datetime(raw["bob"], utc=True, format="ISO8601")
        for column in ("close", "high", "low"):
            raw[column] = raw[column].round(2)
        raw = raw.sort_values("ts").drop_duplicates("ts", keep="last").set_index("ts")
        pre = raw[raw.index < open_utc]
        regular = raw[(raw.index >= open_utc) & (raw.index < close_utc)]
        bars = regular.reindex(grid)
        bars["filled"] = bars["close"].isna()
        if len(pre):
            bars.iloc[0, bars.columns.get_loc("close")] = (
                bars["close"].iloc[0] if not bars["filled"].iloc[0] else pre["close"].iloc[-1]
            )
        bars["close"] = bars["close"].ffill()
        bars["high"] = bars["high"].fillna(bars["close"])
        bars["low"] = bars["low"].fillna(bars["close"])
        bars[["volume", "amount"]] = bars[["volume", "amount"]].fillna(0.0)
        bars["symbol"] = path.stem
        frames.append(bars)
    return len(pd.concat(frames))


def run_variant(name: str, folder: Path, day: dt.date) -> dict[str, float]:
    function = {"floor": floor, "clean_bars": clean_bars, "pandas": pandas_reference}[name]
    _warm_up(day)
    start = time.perf_counter()
    rows = function(folder, day)
    wall = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"wall_s": wall, "peak_rss_mb": peak_kib / 1024, "output_rows": rows}


def _warm_up(day: dt.date) -> None:
    """Imports and the (cached) calendar, so that only the work itself is timed."""
    import pandas  # noqa: F401
    import polars  # noqa: F401

    from diffstock_ml.calendar import session_bounds
    from diffstock_ml.ingest import clean_day  # noqa: F401

    session_bounds(day)


def measure(name: str, folder: Path, day: str, repeats: int) -> dict[str, float]:
    runs = []
    for _ in range(repeats):
        completed = subprocess.run(
            [
                sys.executable,
                __file__,
                "--variant",
                name,
                "--raw",
                str(folder.parent),
                "--day",
                day,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        runs.append(json.loads(completed.stdout))
    best = min(runs, key=lambda run: run["wall_s"])
    return {**best, "peak_rss_mb": max(run["peak_rss_mb"] for run in runs)}


def synthetic_day(day: str) -> Path:
    """One full-profile day (54 symbols) in a cached temporary folder."""
    from diffstock_ml.synthetic import PROFILES, generate_market

    root = Path(tempfile.gettempdir()) / "diffstock-bench" / "raw"
    config = dataclasses.replace(PROFILES["full"], start=day, end=day)
    generate_market(config, root, workers=1, write_latent=False)  # skips a day already there
    return root


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--raw", type=Path, help="raw root (default: a synthetic full day)")
    parser.add_argument("--day", default=DEFAULT_DAY)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    day = dt.datetime.strptime(args.day, "%Y%m%d").date()

    if args.variant:  # child process: one measurement
        print(json.dumps(run_variant(args.variant, args.raw / args.day, day)))
        return 0

    root = args.raw or synthetic_day(args.day)
    folder = root / args.day
    files = sorted(folder.glob("*.csv"))
    raw_rows = floor(folder, day)
    results = {name: measure(name, folder, args.day, args.repeats) for name in VARIANTS}
    clean = results["clean_bars"]
    clean["raw_rows_per_s"] = raw_rows / clean["wall_s"]
    ratio_floor = clean["wall_s"] / results["floor"]["wall_s"]
    speedup_pandas = results["pandas"]["wall_s"] / clean["wall_s"]
    report = {
        "benchmark": "ingest",
        "day": args.day,
        "files": len(files),
        "raw_rows": raw_rows,
        "raw_mb": round(sum(p.stat().st_size for p in files) / 2**20, 1),
        "results": results,
        "clean_bars_vs_floor": round(ratio_floor, 2),
        "pandas_vs_clean_bars": round(speedup_pandas, 2),
        "targets": {"clean_bars_vs_floor_max": 2.0, "pandas_vs_clean_bars_min": 5.0},
        "meets_targets": ratio_floor <= 2.0 and speedup_pandas >= 5.0,
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
