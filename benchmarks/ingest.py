"""Benchmark of the `clean_bars` transform on one full synthetic day (54 symbols).

Prints one JSON object (and writes it to `--out`). In the same run, on the same files, it
measures three references:
- the floor: a bare `polars.read_csv` of every file (no cleaning at all), one after another;
- the same bare read with the files read READ_THREADS at a time, as `clean_day` reads them (not
  a target: it says how much of the margin over the floor is the threaded read);
- a straightforward pandas cleaning (read, to UTC, filter hours, round, de-duplicate, resample
  to 1 s, forward-fill) - what the seed plan's pandas stack would do.
Each measurement runs in its own fresh process (so peak RSS is its own). The three variants are
interleaved, round after round, in a rotating order, so that a change in the host's load hits
all of them; each ratio is the median of the per-round ratios. A last fresh process times the
stages of `clean_day` (best of 3, in process). Targets: clean_bars <= 2x the floor, faster than
pandas, peak RSS <= 4x the CSV bytes; `--check` exits 1 when one is missed.

    python benchmarks/ingest.py [--raw PATH --day YYYYMMDD] [--repeats 5] [--out F] [--check]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

DEFAULT_DAY = "20251103"
VARIANTS = ("floor", "floor_threads", "clean_bars", "pandas")
TARGETS = {"clean_bars_vs_floor_max": 2.0, "pandas_vs_clean_bars_min": 1.0, "rss_vs_csv_max": 4.0}


def floor(folder: Path, day: dt.date) -> int:
    import polars as pl

    return sum(pl.read_csv(path).height for path in sorted(folder.glob("*.csv")))


def floor_threads(folder: Path, day: dt.date) -> int:
    import polars as pl

    from diffstock_ml.ingest.read import READ_THREADS

    with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
        paths = sorted(folder.glob("*.csv"))
        return sum(pool.map(lambda path: pl.read_csv(path).height, paths))


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


def clean_day_stages(folder: Path, day: dt.date, repeats: int = 3) -> dict[str, float]:
    """Seconds per stage of `clean_day` (best of `repeats`), batch by batch as `clean_day` runs
    them but one stage after the other: `clean_day` reads the next batch while it checks one, so
    its wall time is less than the sum."""
    from diffstock_ml.calendar import session_bounds
    from diffstock_ml.config import IngestConfig
    from diffstock_ml.ingest import clean
    from diffstock_ml.ingest.grid import build_grid
    from diffstock_ml.ingest.read import list_day_folder, read_day_files
    from diffstock_ml.ingest.timestamps import with_utc_timestamps

    config, (open_utc, close_utc) = IngestConfig(), session_bounds(day)
    best: dict[str, float] = {}
    for _ in range(repeats):
        seconds = dict.fromkeys(("read", "timestamps", "validate_and_report", "grid"), 0.0)
        for paths in clean._file_batches(list_day_folder(folder).csv_files):
            start = time.perf_counter()
            raw_files = read_day_files(paths)
            seconds["read"] += time.perf_counter() - start
            start = time.perf_counter()  # timed alone, then again inside the checks
            with_utc_timestamps(clean._concat_rows(raw_files), day)
            seconds["timestamps"] += time.perf_counter() - start
            start = time.perf_counter()
            good = clean.validate_files(raw_files, day, config).good
            seconds["validate_and_report"] += time.perf_counter() - start
            start = time.perf_counter()
            build_grid(good.lazy(), open_utc, close_utc, config.stale_after_s).collect()
            seconds["grid"] += time.perf_counter() - start
        seconds["validate_and_report"] -= seconds["timestamps"]
        best = {k: min(v, best.get(k, v)) for k, v in seconds.items()}
    return {k: round(v, 3) for k, v in best.items()}


def run_variant(name: str, folder: Path, day: dt.date) -> dict[str, float]:
    functions = {"floor": floor, "floor_threads": floor_threads, "clean_bars": clean_bars}
    function = {**functions, "pandas": pandas_reference}[name]
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


def measure(name: str, folder: Path, day: str) -> dict[str, float]:
    """One fresh process: wall time and peak RSS of one variant."""
    command = [sys.executable, __file__, "--variant", name, "--raw", str(folder.parent)]
    completed = subprocess.run([*command, "--day", day], capture_output=True, text=True, check=True)
    return json.loads(completed.stdout)


def summarise(rounds: list[dict[str, dict[str, float]]], raw_rows: int) -> dict[str, dict]:
    """Per variant: best and median wall, peak RSS (max over rounds), rows."""
    results = {}
    for name in VARIANTS:
        runs = [r[name] for r in rounds]
        walls = [run["wall_s"] for run in runs]
        results[name] = {
            "wall_s_best": round(min(walls), 3),
            "wall_s_median": round(statistics.median(walls), 3),
            "peak_rss_mb": round(max(run["peak_rss_mb"] for run in runs), 1),
            "output_rows": runs[0]["output_rows"],
        }
    results["clean_bars"]["raw_rows_per_s"] = round(raw_rows / results["clean_bars"]["wall_s_best"])
    return results


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
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    parser.add_argument("--variant", choices=(*VARIANTS, "stages"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    day = dt.datetime.strptime(args.day, "%Y%m%d").date()

    if args.variant == "stages":  # child process: the breakdown of clean_day
        _warm_up(day)
        print(json.dumps(clean_day_stages(args.raw / args.day, day)))
        return 0
    if args.variant:  # child process: one measurement
        print(json.dumps(run_variant(args.variant, args.raw / args.day, day)))
        return 0

    load_before = os.getloadavg()
    root = args.raw or synthetic_day(args.day)
    folder = root / args.day
    files = sorted(folder.glob("*.csv"))
    csv_bytes = sum(p.stat().st_size for p in files)
    raw_rows = floor(folder, day)
    rounds = []
    for i in range(args.repeats):  # rotate the order so that no variant always goes first
        order = VARIANTS[i % len(VARIANTS) :] + VARIANTS[: i % len(VARIANTS)]
        rounds.append({name: measure(name, folder, args.day) for name in order})
    results = summarise(rounds, raw_rows)
    vs_floor = [r["clean_bars"]["wall_s"] / r["floor"]["wall_s"] for r in rounds]
    vs_pandas = [r["pandas"]["wall_s"] / r["clean_bars"]["wall_s"] for r in rounds]
    vs_threads = [r["clean_bars"]["wall_s"] / r["floor_threads"]["wall_s"] for r in rounds]
    stages = measure("stages", folder, args.day)
    ratios = {
        "clean_bars_vs_floor": round(statistics.median(vs_floor), 2),
        "pandas_vs_clean_bars": round(statistics.median(vs_pandas), 2),
        "rss_vs_csv": round(results["clean_bars"]["peak_rss_mb"] * 2**20 / csv_bytes, 2),
    }
    # not a target: the share of the margin over the floor that the threaded read buys
    threaded = {"clean_bars_vs_floor_threads": round(statistics.median(vs_threads), 2)}
    meets = {
        "clean_bars_vs_floor": ratios["clean_bars_vs_floor"] <= TARGETS["clean_bars_vs_floor_max"],
        "pandas_vs_clean_bars": ratios["pandas_vs_clean_bars"]
        >= TARGETS["pandas_vs_clean_bars_min"],
        "rss_vs_csv": ratios["rss_vs_csv"] <= TARGETS["rss_vs_csv_max"],
    }
    report = {
        "benchmark": "ingest",
        "day": args.day,
        "files": len(files),
        "raw_rows": raw_rows,
        "raw_mb": round(csv_bytes / 2**20, 1),
        "rounds": args.repeats,
        "results": results,
        "per_round_wall_s": {n: [round(r[n]["wall_s"], 3) for r in rounds] for n in VARIANTS},
        "clean_day_stages_s": stages,
        **ratios,
        **threaded,
        "targets": TARGETS,
        "meets": meets,
        "meets_targets": all(meets.values()),
        "host": {"cpus": os.cpu_count(), "load_average": [load_before, os.getloadavg()]},
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 1 if args.check and not report["meets_targets"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
