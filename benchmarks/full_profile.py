"""The `full` profile end to end on one GPU: a full-size synthetic market, windows, training,
and the calibrated model against the likelihood heads on the test days.

Generates the synthetic market (default 54 symbols x the full profile's 40 sessions), builds
clean bars -> features -> windows for every day in parallel processes, trains the `full`
profile's model (optionally fewer steps: `--max-steps`) and scores the model, both heads (same
encoder, same training budget), the EWMA Gaussian and the oracle on the test days' anchors with
the report's CRPS and randomised-PIT coverage. Prints one JSON object: training windows/s,
seconds per epoch (measured rate x training windows), wall times of every stage, the scores, the
model's CRPS against the best head paired on the same anchors and, with `--samplers`, the same
trained model under other samplers (each with its own spread factor). A JSON line per finished
stage goes to stderr, so a run cut short keeps its figures.

    python benchmarks/full_profile.py --work /tmp/full --max-steps 3000 --samplers ddpm_1000
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

from diffstock_ml.baselines import BASELINES, Oracle
from diffstock_ml.device import select_device
from diffstock_ml.experiments import (
    ScoreConfig,
    paired_difference,
    run_trial,
    score_models,
    score_samplers,
)
from diffstock_ml.forecasting import CalibratedDiffusion
from diffstock_ml.pipeline import windows_from_raw
from diffstock_ml.study import SAMPLERS
from diffstock_ml.synthetic import PROFILES as MARKETS
from diffstock_ml.synthetic import generate_market
from diffstock_ml.train.profiles import PROFILES
from diffstock_ml.windows import load_day_arrays


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", type=Path, required=True, help="folder for market and windows")
    parser.add_argument("--market", default="full", choices=sorted(MARKETS))
    parser.add_argument("--profile", default="full", choices=sorted(PROFILES))
    parser.add_argument("--symbols", type=int, help="first N symbols of the market")
    parser.add_argument("--max-steps", type=int, help="training steps (default: the profile's)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--stride", type=int, default=120, help="scored anchors every N s")
    parser.add_argument("--prepare-only", action="store_true", help="market and windows only")
    parser.add_argument(
        "--samplers", nargs="*", default=[], choices=sorted(SAMPLERS), help="also score under"
    )
    args = parser.parse_args()
    timings: dict[str, float] = {}

    started = time.perf_counter()
    market = MARKETS[args.market]
    if args.symbols:
        market = dataclasses.replace(market, symbols=market.symbols[: args.symbols])
    raw = args.work / "raw"
    generate_market(market, raw, workers=args.workers)
    timings["generate_s"] = time.perf_counter() - started

    started = time.perf_counter()
    windows = args.work / "windows"
    folders = sorted(p for p in raw.iterdir() if p.is_dir())
    with ProcessPoolExecutor(args.workers) as pool:
        days = [p.name for p in pool.map(windows_from_raw, folders, [windows] * len(folders))]
    timings["windows_s"] = time.perf_counter() - started
    _progress("windows", timings)
    if args.prepare_only:
        return 0

    profile = PROFILES[args.profile]
    days = days[-profile.days :]
    arrays = [load_day_arrays(windows / d) for d in days]
    train_days = arrays[: profile.train_days]
    val_days = arrays[profile.train_days : profile.train_days + profile.val_days]
    test_days = arrays[profile.train_days + profile.val_days :]
    train_config = profile.train
    if args.max_steps:
        train_config = dataclasses.replace(train_config, max_steps=args.max_steps)
    device = select_device("auto")

    started = time.perf_counter()
    trial = run_trial(
        profile.model,
        train_config,
        train_days,
        val_days,
        args.work / "checkpoints",
        device,
        ScoreConfig(anchor_stride_s=args.stride),
    )
    timings["train_and_validate_s"] = time.perf_counter() - started
    train_windows = sum(len(d.anchors) for d in train_days)
    _progress(
        "trained",
        {
            "windows_per_s": trial.training.windows_per_s,
            "train_windows": train_windows,
            "steps": trial.training.steps,
            "validation": trial.scores.flat(),
            **timings,
        },
    )

    started = time.perf_counter()
    rng = np.random.default_rng(0)
    heads = train_config  # the diffusion model's own budget
    models = {"diffusion": CalibratedDiffusion(trial.bundle)}
    models["diffusion"].scale = trial.spread_factor  # fitted on the training days by run_trial
    for name in ("gaussian_head", "student_t_head"):
        head_started = time.perf_counter()
        models[name] = BASELINES[name](
            model_config=profile.model, train_config=heads, device=device
        )
        models[name].fit(train_days, rng)
        timings[f"{name}_s"] = time.perf_counter() - head_started
        _progress(name, timings)
    models["ewma_gaussian"] = BASELINES["ewma_gaussian"]()
    models["ewma_gaussian"].fit(train_days, rng)
    latent = raw.parent / f"{raw.name}_latent"
    if (latent / "params.json").exists():
        models["oracle"] = Oracle(latent)
        models["oracle"].fit(train_days, rng)
    timings["baselines_s"] = time.perf_counter() - started
    _progress("baselines", timings)

    started = time.perf_counter()
    scores = score_models(models, test_days, ScoreConfig(anchor_stride_s=args.stride))
    timings["score_s"] = time.perf_counter() - started
    crps = {name: s.crps_bp for name, s in scores.items()}
    best_head = min(crps["gaussian_head"], crps["student_t_head"])
    head = scores["gaussian_head" if crps["gaussian_head"] == best_head else "student_t_head"]
    vs_head = paired_difference(scores["diffusion"], head)
    _progress("scored", {"vs_best_head": vs_head, **{k: s.flat() for k, s in scores.items()}})

    started = time.perf_counter()
    samplers = {}
    if args.samplers:
        scored = score_samplers(
            trial.bundle,
            {n: SAMPLERS[n] for n in args.samplers},
            train_days,
            test_days,
            ScoreConfig(anchor_stride_s=args.stride),
        )
        for name, (factor, sampler_scores) in scored.items():
            samplers[name] = sampler_scores.flat() | {
                "spread_factor": factor,
                "vs_default": paired_difference(sampler_scores, scores["diffusion"]),
                "vs_best_head": paired_difference(sampler_scores, head),
            }
        timings["samplers_s"] = time.perf_counter() - started
        _progress("samplers", {"samplers": samplers})
    out = {
        "device": str(device),
        "gpu": torch.cuda.get_device_name() if device.type == "cuda" else None,
        "symbols": len(market.symbols),
        "days": {"train": profile.train_days, "val": profile.val_days, "test": profile.test_days},
        "train_windows": train_windows,
        "steps": trial.training.steps,
        "batch_size": train_config.batch_size,
        "k_noise": train_config.k_noise,
        "windows_per_s": trial.training.windows_per_s,
        "epoch_s": train_windows / trial.training.windows_per_s,
        "best_step": trial.training.best_step,
        "spread_factor": trial.spread_factor,
        "skill_vs_best_head": 1 - crps["diffusion"] / best_head,
        "vs_best_head": vs_head,
        "gap_closed": (
            (crps["ewma_gaussian"] - crps["diffusion"]) / (crps["ewma_gaussian"] - crps["oracle"])
            if "oracle" in crps
            else None
        ),
        "test": {name: s.flat() | {"anchors": s.anchors} for name, s in scores.items()},
        "validation": trial.scores.flat(),
        "samplers": samplers,
        "timings_s": timings,
    }
    print(json.dumps(out, indent=1))
    return 0


def _progress(stage: str, figures: dict) -> None:
    """A JSON line on stderr per finished stage: a run cut short still shows its figures."""
    print(json.dumps({"stage": stage, **figures}), file=sys.stderr, flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
