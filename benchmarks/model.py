"""Benchmark of the diffusion model: training throughput, sampling latency, sampler quality.

Same run, same model, same validation windows. Prints one JSON object with
- training windows/s of the `demo` profile's loss + backward + AdamW step (CPU; CUDA if present);
- latency of one prediction (one window, 1000 samples) for DDIM-20, DDIM-50 and DDPM-1000;
- CRPS (bp, fair estimator) and 90 % coverage of each sampler on the same validation windows,
  the speed ratio DDPM-1000 / DDIM-k and the CRPS difference with its paired standard error
  (sampling noise); DDIM-50 with bfloat16 matmuls against float32 DDIM-50 as well.
Targets: one prediction < 100 ms on a 2-core CPU; DDIM-50 >= 15x faster than DDPM-1000 with
CRPS within 1 % and coverage within 1 pp.

    python benchmarks/model.py [--bundle PATH] [--train-steps 1000] [--windows 200]

Without --bundle it trains the demo model on two cached synthetic full days (see batches.py).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from batches import build_windows

from diffstock_ml.batches import WindowLoader
from diffstock_ml.evaluation import crps_bp, interval_coverage
from diffstock_ml.model.bundle import ModelBundle, load_bundle, save_bundle
from diffstock_ml.model.config import SamplerConfig
from diffstock_ml.splits import fit_normaliser, split_days
from diffstock_ml.train import train
from diffstock_ml.train.profiles import PROFILES
from diffstock_ml.windows import load_day_arrays

SAMPLERS = {
    "ddim_20": SamplerConfig(sampler="ddim", steps=20, precision="float32"),
    "ddim_50": SamplerConfig(sampler="ddim", steps=50, precision="float32"),
    "ddpm_1000": SamplerConfig(sampler="ddpm", steps=1000, precision="float32"),
    # the same DDIM-50 with bfloat16 matmuls (autocast; the default where the CPU has them)
    "ddim_50_bf16": SamplerConfig(sampler="ddim", steps=50, precision="bfloat16"),
}


def trained_bundle(steps: int, arrays: dict) -> Path:
    profile = PROFILES["demo"]
    splits = split_days(list(arrays), 1, 1, 0)
    normaliser = fit_normaliser(arrays, splits)
    config = dataclasses.replace(profile.train, max_steps=steps, eval_every=steps)
    folder = Path(tempfile.mkdtemp(prefix="diffstock-bench-model-"))
    result = train(
        profile.model,
        config,
        [arrays[d] for d in splits.train],
        [arrays[d] for d in splits.val],
        normaliser,
        folder,
        torch.device("cpu"),
    )
    first = arrays[splits.train[0]]
    return save_bundle(
        folder / "bundle.pt",
        profile.model,
        result.best_state,
        normaliser,
        first.feature_names,
        first.config.length,
    )


def training_rate(bundle: ModelBundle, day, device: torch.device) -> float:
    """Windows per second through loss + backward + AdamW step (demo profile's batch and K)."""
    loader = WindowLoader(
        [day],
        batch_size=PROFILES["demo"].train.batch_size,
        normaliser=bundle.normaliser,
        seed=0,
        device=device,
    )
    model = copy.deepcopy(bundle.model).to(device).train()  # the bundle itself stays untouched
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    k = PROFILES["demo"].train.k_noise
    batches = iter(loader)
    for _ in range(3):  # warm-up
        _step(model, optimizer, next(batches), k)
    start, windows = time.perf_counter(), 0
    for _ in range(20):
        batch = next(batches)
        _step(model, optimizer, batch, k)
        windows += len(batch.x)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return windows / (time.perf_counter() - start)


def _step(model, optimizer, batch, k) -> None:
    optimizer.zero_grad()
    model.loss(batch.x, (batch.target / batch.sigma).float(), k).backward()
    optimizer.step()


def latencies_ms(bundle: ModelBundle, x, sigma, close, rounds: int = 9) -> dict[str, float]:
    """Median wall time of one prediction of 1000 samples for one window, per sampler.

    The samplers take turns within each round, so a noisy neighbour on a shared host slows
    them alike and the ratios stay fair.
    """
    bundles = {
        name: dataclasses.replace(bundle, sampler=dataclasses.replace(sampler, n_samples=1000))
        for name, sampler in SAMPLERS.items()
    }
    for candidate in bundles.values():  # warm-up
        candidate.predict(x[:1], sigma[:1], close[:1], seed=0)
    times: dict[str, list[float]] = {name: [] for name in bundles}
    for repeat in range(rounds):
        for name, candidate in bundles.items():
            start = time.perf_counter()
            candidate.predict(x[:1], sigma[:1], close[:1], seed=repeat)
            times[name].append(time.perf_counter() - start)
    return {name: 1000 * statistics.median(t) for name, t in times.items()}


def quality(bundle: ModelBundle, x, sigma, close, target, sampler: SamplerConfig) -> dict:
    bundle = dataclasses.replace(bundle, sampler=dataclasses.replace(sampler, n_samples=200))
    samples = bundle.predict(x, sigma, close, seed=0).samples.numpy()
    crps = crps_bp(samples, target)  # the report's CRPS and coverage
    coverage = interval_coverage(samples, target, np.asarray(close), 0.9, sampler.tick)
    return {
        "crps_bp": float(crps.mean()),
        "coverage_90": float(coverage.mean()),
        "crps_per_window": crps,  # for paired comparisons; dropped from the JSON
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--bundle", type=Path)
    parser.add_argument("--train-steps", type=int, default=PROFILES["demo"].train.max_steps)
    parser.add_argument("--windows", type=int, default=200)
    args = parser.parse_args()
    torch.manual_seed(0)

    folders = build_windows(2)
    arrays = {f.name: load_day_arrays(f) for f in folders}
    path = args.bundle or trained_bundle(args.train_steps, arrays)
    print(f"model bundle: {path} (reuse with --bundle)", file=sys.stderr)
    bundle = load_bundle(path)
    val = arrays[folders[-1].name]
    loader = WindowLoader([val], batch_size=args.windows, shuffle=True, seed=1)
    batch = next(iter(loader))  # raw windows: the bundle normalises them
    x, sigma, close = batch.x, batch.sigma.double(), batch.close.double()
    target = batch.target.double().numpy()

    train_day = arrays[folders[0].name]
    rates = {"cpu": training_rate(bundle, train_day, torch.device("cpu"))}
    if torch.cuda.is_available():
        rates["cuda"] = training_rate(bundle, train_day, torch.device("cuda"))

    latency = latencies_ms(bundle, x, sigma, close)
    results = {}
    for name, sampler in SAMPLERS.items():
        results[name] = {
            "latency_ms_1000_samples": latency[name],
            **quality(bundle, x, sigma, close, target, sampler),
        }
    for name, reference in (
        ("ddim_20", "ddpm_1000"),
        ("ddim_50", "ddpm_1000"),
        ("ddim_50_bf16", "ddpm_1000"),
        ("ddim_50_bf16", "ddim_50"),
    ):
        r, ref = results[name], results[reference]
        r[f"speedup_vs_{reference}"] = ref["latency_ms_1000_samples"] / r["latency_ms_1000_samples"]
        r[f"crps_vs_{reference}_pct"] = 100 * (r["crps_bp"] / ref["crps_bp"] - 1)
        # paired over the same windows: the sampling noise of the difference, in % of the ref
        paired = r["crps_per_window"] - ref["crps_per_window"]
        r[f"crps_vs_{reference}_se_pct"] = (
            100 * paired.std(ddof=1) / np.sqrt(len(paired)) / ref["crps_bp"]
        )
        r[f"coverage_vs_{reference}_pp"] = 100 * (r["coverage_90"] - ref["coverage_90"])
    for r in results.values():
        del r["crps_per_window"]
    d50 = results["ddim_50"]
    report = {
        "benchmark": "model",
        "threads": torch.get_num_threads(),
        "training_windows_per_s": rates,
        "validation_windows": len(target),
        "samplers": results,
        "targets": {
            "latency_ms_max": 100,
            "ddim50_speedup_min": 15,
            "crps_pct_max": 1,
            "coverage_pp_max": 1,
        },
        "meets_targets": {
            "latency": d50["latency_ms_1000_samples"] < 100,
            "latency_bf16": results["ddim_50_bf16"]["latency_ms_1000_samples"] < 100,
            "ddim50_speedup": d50["speedup_vs_ddpm_1000"] >= 15,
            "ddim50_crps": abs(d50["crps_vs_ddpm_1000_pct"]) <= 1,
            # is the difference distinguishable from sampling noise at all (2 paired SEs)?
            "ddim50_crps_within_2se": bool(
                abs(d50["crps_vs_ddpm_1000_pct"]) <= 2 * d50["crps_vs_ddpm_1000_se_pct"]
            ),
            "ddim50_coverage": abs(d50["coverage_vs_ddpm_1000_pp"]) <= 1,
        },
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
