"""Benchmark of the window batch loader against a naive per-window `Dataset` + `DataLoader`.

Same run, same data: `--days` synthetic full-profile days (54 symbols), N = 120. Prints JSON:
- windows/s of `WindowLoader` (memory-mapped days, batches gathered by index; raw, and with
  the training normaliser) over a full shuffled epoch, and of the naive loader whose
  `__getitem__` slices one window at a time (what the seed plan's `dataset.py` implies) over
  `--naive-batches` batches;
- peak RSS of each (separate fresh processes) against the bytes of the day arrays.
Targets: >= 20x the naive loader; peak RSS <= 1.5x the arrays.

    python benchmarks/batches.py [--days 10] [--batch-size 512]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CACHE = Path(tempfile.gettempdir()) / "diffstock-bench"
# ours: the same work as the naive loader (raw windows); ours_normalised: what training uses
VARIANTS = ("ours", "ours_normalised", "naive")


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
    missing = [day for day, folder in zip(days, folders, strict=True) if not folder.exists()]
    if missing:
        config = dataclasses.replace(PROFILES["full"], start=missing[0], end=missing[-1])
        generate_market(config, CACHE / "raw", workers=2, write_latent=False)
    for day, folder in zip(days, folders, strict=True):
        if folder.exists():
            continue
        bars = clean_day(CACHE / "raw" / day, parse_day(day)).bars
        features = build_features(bars.lazy(), FeatureConfig()).collect()
        save_day_arrays(build_day_arrays(features, day, WindowConfig()), folder)
    return folders


def run_ours(folders: list[Path], batch_size: int, normalise: bool) -> dict[str, float]:
    from diffstock_ml.batches import Normaliser, WindowLoader
    from diffstock_ml.windows import load_day_arrays

    days = [load_day_arrays(folder) for folder in folders]
    normaliser = Normaliser.fit(days[:1]) if normalise else None
    loader = WindowLoader(days, batch_size=batch_size, normaliser=normaliser, seed=0)
    start = time.perf_counter()
    windows = 0
    for batch in loader:
        windows += len(batch.x)
    return {"windows": windows, "wall_s": time.perf_counter() - start}


def run_naive(folders: list[Path], batch_size: int, n_batches: int) -> dict[str, float]:
    import numpy as np
    import torch

    from diffstock_ml.windows import load_day_arrays

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
    start = time.perf_counter()
    windows = 0
    for i, (x, _, _) in enumerate(loader):
        windows += len(x)
        if i + 1 == n_batches:
            break
    return {"windows": windows, "wall_s": time.perf_counter() - start}


def child(args: argparse.Namespace) -> None:
    folders = [Path(p) for p in args.folders.split(",")]
    if args.variant.startswith("ours"):
        result = run_ours(folders, args.batch_size, normalise=args.variant == "ours_normalised")
    else:
        result = run_naive(folders, args.batch_size, args.naive_batches)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--naive-batches", type=int, default=200)
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--folders", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        child(args)
        return 0

    folders = build_windows(args.days)
    array_bytes = sum(f.stat().st_size for folder in folders for f in folder.glob("*.npy"))
    results = {}
    for variant in VARIANTS:
        command = [sys.executable, __file__, "--variant", variant, "--folders"]
        command += [",".join(map(str, folders)), "--batch-size", str(args.batch_size)]
        command += ["--naive-batches", str(args.naive_batches)]
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        result = json.loads(out)
        result["windows_per_s"] = result["windows"] / result["wall_s"]
        result["peak_rss_vs_arrays"] = result["peak_rss_mb"] * 2**20 / array_bytes
        results[variant] = result
    speedup = results["ours"]["windows_per_s"] / results["naive"]["windows_per_s"]
    speedup_normalised = (
        results["ours_normalised"]["windows_per_s"] / results["naive"]["windows_per_s"]
    )
    report = {
        "benchmark": "batches",
        "days": args.days,
        "window_length": 120,
        "batch_size": args.batch_size,
        "array_mb": round(array_bytes / 2**20, 1),
        "results": results,
        "speedup_vs_naive": round(speedup, 1),
        "speedup_normalised_vs_naive": round(speedup_normalised, 1),
        "targets": {"speedup_vs_naive_min": 20.0, "peak_rss_vs_arrays_max": 1.5},
        "meets_targets": speedup >= 20 and results["ours"]["peak_rss_vs_arrays"] <= 1.5,
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
