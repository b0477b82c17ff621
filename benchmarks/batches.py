"""Benchmark of the window batch loader against a naive per-window `Dataset` + `DataLoader`.

Same run, same data: `--days` synthetic full-profile days (54 symbols), N = 120. Prints JSON
(and writes it to `--out`):
- windows/s of `WindowLoader` (memory-mapped days, batches gathered by index; raw, and with
  the training normaliser, which is what training uses) and of the naive loader whose
  `__getitem__` slices one window at a time (what the seed plan's `dataset.py` implies), each
  timed over the same `--windows` windows of a shuffled epoch in its own fresh process, the
  three interleaved for `--rounds` rounds in a rotating order; each ratio is the median of the
  per-round ratios. Building the loaders is timed apart (`setup_s`), not in windows/s;
- peak RSS of a fresh process that iterates one full normalised epoch, against the bytes of
  the day arrays.
Targets: normalised >= 20x the naive loader; peak RSS <= 1.5x the arrays; `--check` exits 1
when one is missed.

    python benchmarks/batches.py [--days 10] [--windows 1000000] [--rounds 3] [--out F] [--check]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CACHE = Path(tempfile.gettempdir()) / "diffstock-bench"
# ours: the same work as the naive loader (raw windows); ours_normalised: what training uses
VARIANTS = ("ours", "ours_normalised", "naive")
TARGETS = {"speedup_normalised_vs_naive_min": 20.0, "peak_rss_vs_arrays_max": 1.5}


def build_windows(n_days: int) -> list[Path]:
    """Synthetic full-profile days -> clean -> features -> windows, cached on disk."""
    from diffstock_ml.calendar import day_key, parse_day
    from diffstock_ml.config import FeatureConfig, WindowConfig
    from diffstock_ml.features import build_features
    from diffstock_ml.ingest import clean_day
    from diffstock_ml.synthetic import PROFILES, generate_market
    from diffstock_ml.windows import build_day_arrays, save_day_arrays

    days = [day_key(d) for d in PROFILES["full"].sessions()[-n_days:]]
    folders = [CACHE / "windows" / day for day in days]
    current = [_is_current(folder) for folder in folders]  # a cache of another feature set: rebuild
    missing = [day for day, ok in zip(days, current, strict=True) if not ok]
    if missing and not all((CACHE / "raw" / day).exists() for day in missing):
        config = dataclasses.replace(PROFILES["full"], start=missing[0], end=missing[-1])
        generate_market(config, CACHE / "raw", workers=2, write_latent=False)
    for day, folder, ok in zip(days, folders, current, strict=True):
        if ok:
            continue
        bars = clean_day(CACHE / "raw" / day, parse_day(day)).bars
        features = build_features(bars.lazy(), FeatureConfig()).collect()
        save_day_arrays(build_day_arrays(features, day, WindowConfig()), folder)
    return folders


def _is_current(folder: Path) -> bool:
    from diffstock_ml.windows import META_FILE, feature_mismatch

    meta = folder / META_FILE
    return meta.exists() and feature_mismatch(json.loads(meta.read_text())["feature_names"]) is None


def run_ours(
    folders: list[Path], batch_size: int, normalise: bool, n_windows: int | None
) -> dict[str, float]:
    """`WindowLoader` over the first `n_windows` windows of a shuffled epoch (None: all)."""
    from diffstock_ml.batches import Normaliser, WindowLoader
    from diffstock_ml.windows import load_day_arrays

    start = time.perf_counter()
    days = [load_day_arrays(folder) for folder in folders]
    normaliser = Normaliser.fit(days[:1]) if normalise else None
    loader = WindowLoader(days, batch_size=batch_size, normaliser=normaliser, seed=0)
    setup = time.perf_counter() - start
    start = time.perf_counter()
    windows = 0
    for batch in loader:
        windows += len(batch.x)
        if n_windows is not None and windows >= n_windows:
            break
    return {"windows": windows, "wall_s": time.perf_counter() - start, "setup_s": setup}


def run_naive(folders: list[Path], batch_size: int, n_windows: int) -> dict[str, float]:
    import numpy as np
    import torch

    from diffstock_ml.windows import load_day_arrays

    start = time.perf_counter()
    days = [load_day_arrays(folder) for folder in folders]

    class NaiveWindows(torch.utils.data.Dataset):
        """One window per `__getitem__`, sliced from the day arrays."""

        def __init__(self) -> None:
            self.index = [(d, int(s), int(t)) for d, day in enumerate(days) for s, t in day.anchors]

        def __len__(self) -> int:
            return len(self.index)

        def __getitem__(self, i: int):
            d, s, t = self.index[i]
            day = days[d]
            window = torch.from_numpy(np.array(day.x[s, t - 119 : t + 1]))
            return window, torch.tensor(day.target[s, t]), torch.tensor(day.sigma[s, t])

    dataset = NaiveWindows()
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True)
    setup = time.perf_counter() - start
    start = time.perf_counter()
    windows = 0
    for x, _, _ in loader:
        windows += len(x)
        if windows >= n_windows:
            break
    return {"windows": windows, "wall_s": time.perf_counter() - start, "setup_s": setup}


def child(args: argparse.Namespace) -> None:
    folders = [Path(p) for p in args.folders.split(",")]
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.variant == "epoch":  # one full normalised epoch: the memory measurement
        result = run_ours(folders, args.batch_size, normalise=True, n_windows=None)
    elif args.variant.startswith("ours"):
        normalise = args.variant == "ours_normalised"
        result = run_ours(folders, args.batch_size, normalise, args.windows)
    else:
        result = run_naive(folders, args.batch_size, args.windows)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["rss_before_work_mb"] = baseline
    print(json.dumps(result))


def measure(variant: str, folders: list[Path], args: argparse.Namespace) -> dict[str, float]:
    """One fresh process."""
    command = [sys.executable, __file__, "--variant", variant, "--folders"]
    command += [",".join(map(str, folders)), "--batch-size", str(args.batch_size)]
    command += ["--windows", str(args.windows)]
    result = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
    result["windows_per_s"] = round(result["windows"] / result["wall_s"])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--windows", type=int, default=1_000_000, help="timed, every loader")
    parser.add_argument("--rounds", type=int, default=3)  # odd: the median is one round's
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    parser.add_argument("--variant", choices=(*VARIANTS, "epoch"), help=argparse.SUPPRESS)
    parser.add_argument("--folders", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        child(args)
        return 0

    load_before = os.getloadavg()
    folders = build_windows(args.days)
    array_bytes = sum(f.stat().st_size for folder in folders for f in folder.glob("*.npy"))
    rounds = []
    for i in range(args.rounds):  # rotate the order so that no variant always goes first
        order = VARIANTS[i % 3 :] + VARIANTS[: i % 3]
        rounds.append({variant: measure(variant, folders, args) for variant in order})
    epoch = measure("epoch", folders, args)
    epoch["peak_rss_vs_arrays"] = round(epoch["peak_rss_mb"] * 2**20 / array_bytes, 2)

    def ratio(variant: str) -> float:
        speedups = [r[variant]["windows_per_s"] / r["naive"]["windows_per_s"] for r in rounds]
        return round(statistics.median(speedups), 1)

    results = {
        variant: {
            "windows": rounds[0][variant]["windows"],
            "windows_per_s_per_round": [r[variant]["windows_per_s"] for r in rounds],
            "windows_per_s_best": max(r[variant]["windows_per_s"] for r in rounds),
            "setup_s": round(min(r[variant]["setup_s"] for r in rounds), 2),
        }
        for variant in VARIANTS
    }
    speedup, speedup_normalised = ratio("ours"), ratio("ours_normalised")
    meets = {
        "speedup_normalised_vs_naive": speedup_normalised
        >= TARGETS["speedup_normalised_vs_naive_min"],
        "peak_rss_vs_arrays": epoch["peak_rss_vs_arrays"] <= TARGETS["peak_rss_vs_arrays_max"],
    }
    report = {
        "benchmark": "batches",
        "days": args.days,
        "window_length": 120,
        "batch_size": args.batch_size,
        "array_mb": round(array_bytes / 2**20, 1),
        "timed_windows": args.windows,
        "rounds": args.rounds,
        "results": results,
        "epoch_normalised": epoch,
        "speedup_vs_naive": speedup,
        "speedup_normalised_vs_naive": speedup_normalised,
        "peak_rss_vs_arrays": epoch["peak_rss_vs_arrays"],
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
