"""The model ablation on a synthetic market, without the orchestration stack (e.g. on a GPU box).

Generates the market, builds its windows, scores the reference models (EWMA, both likelihood
heads with the profile's training budget, the oracle) on the validation days, then trains and
scores the profile and each one-option change of `diffstock_ml.study.OPTIONS` in order, until
`--budget-s` is spent. Validation days only, as `python -m dagster_project.study` (which does
the same with Optuna and one MLflow run per trial). Prints a markdown table and JSON; `--out`
is rewritten after every trial, so a run cut short keeps what it finished. `--samplers` re-scores
the profile's own trained model under other samplers (`diffstock_ml.study.SAMPLERS`), each with
its own spread factor, paired with the first one named and with the best head on the same anchors.
`--own-head` also scores the profile's model with its denoiser's output zeroed (`study.own_head`:
it then samples its own location-scale head), paired with the model: what the denoiser adds.

    python benchmarks/ablation.py --work /tmp/ablation --budget-s 600 --out ablation.json
    python benchmarks/ablation.py --work /tmp/ablation --only prediction \
        --samplers dpmpp_2m_10 ddpm_100 ddpm_1000 --out ablation.json
    python benchmarks/ablation.py --work /tmp/ablation --window-length 300 --only context_s
    python benchmarks/ablation.py --work /tmp/ablation --only nothing --own-head --seed 1
    python benchmarks/ablation.py --work /tmp/wide --market-param spread_bp=8 --only nothing
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

from diffstock_ml.config import WindowConfig
from diffstock_ml.device import select_device
from diffstock_ml.experiments import ScoreConfig, paired_difference, score_models, score_samplers
from diffstock_ml.pipeline import windows_from_raw
from diffstock_ml.study import (
    SAMPLERS,
    ablation,
    markdown_table,
    own_head,
    reference_models,
    run_design,
)
from diffstock_ml.synthetic import PROFILES as MARKETS
from diffstock_ml.synthetic import SyntheticConfig, generate_market
from diffstock_ml.train.profiles import PROFILES
from diffstock_ml.windows import load_day_arrays


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", type=Path, required=True, help="folder for market and windows")
    parser.add_argument("--market", default="demo", choices=sorted(MARKETS))
    parser.add_argument(
        "--market-param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a SyntheticConfig number of the market, e.g. spread_bp=8 (repeatable)",
    )
    parser.add_argument("--profile", default="demo", choices=sorted(PROFILES))
    parser.add_argument("--budget-s", type=float, default=1e9, help="no new trial after this")
    parser.add_argument("--only", nargs="*", help="only these options (and the profile)")
    parser.add_argument("--stride", type=int, default=30)
    parser.add_argument(
        "--window-length",
        type=int,
        default=WindowConfig().length,
        help="seconds per window (300: the context_s trials 60/120/300 of the seed plan)",
    )
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="training seed of every trial and of the heads, and the draws' seed",
    )
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--out", type=Path, help="JSON file, rewritten after every trial")
    parser.add_argument(
        "--samplers", nargs="*", default=[], choices=sorted(SAMPLERS), help="re-score the profile"
    )
    parser.add_argument(
        "--own-head", action="store_true", help="score the profile without its denoiser too"
    )
    args = parser.parse_args()
    started = time.perf_counter()

    raw = args.work / "raw"
    generate_market(market_config(args.market, args.market_param), raw, workers=args.workers)
    folders = sorted(p for p in raw.iterdir() if p.is_dir())
    windows = WindowConfig(length=args.window_length)
    out = args.work / ("windows" if windows == WindowConfig() else f"windows_{windows.length}")
    with ProcessPoolExecutor(args.workers) as pool:
        built = list(pool.map(partial(windows_from_raw, out=out, windows=windows), folders))
    profile = PROFILES[args.profile]
    profile = dataclasses.replace(profile, train=dataclasses.replace(profile.train, seed=args.seed))
    days = [load_day_arrays(folder) for folder in built[-profile.days :]]
    train_days = days[: profile.train_days]
    val_days = days[profile.train_days : profile.train_days + profile.val_days]
    device = select_device("auto")
    score = ScoreConfig(anchor_stride_s=args.stride, n_samples=args.samples, seed=args.seed)

    references = score_models(
        reference_models(profile, train_days, raw, device, args.seed), val_days, score
    )
    designs = ablation(profile, windows.length)
    if args.only:
        designs = [d for d in designs if all(d[k] is None for k in d if k not in args.only)]
    rows: list[dict] = []
    samplers: dict[str, dict] = {}
    for number, design in enumerate(designs):
        if time.perf_counter() - started > args.budget_s:
            break
        _, metrics, bundle = run_design(
            profile,
            design,
            train_days,
            val_days,
            references,
            args.work / "checkpoints" / str(number),
            device,
            score,
        )
        rows.append({"trial": number, "options": design, **metrics})
        _write(args, device, profile.name, references, rows, samplers, started)
        print(json.dumps(rows[-1]), flush=True)
        if number == 0 and args.samplers:  # the profile's own model under other samplers
            samplers = sampler_rows(bundle, args.samplers, train_days, val_days, references, score)
            _write(args, device, profile.name, references, rows, samplers, started)
            print(json.dumps({"samplers": samplers}), flush=True)
        if number == 0 and args.own_head:
            rows[-1]["own_head"] = own_head_row(bundle, train_days, val_days, score)
            _write(args, device, profile.name, references, rows, samplers, started)
            print(json.dumps({"own_head": rows[-1]["own_head"]}), flush=True)
    print(markdown_table(rows, references))
    return 0


def market_config(name: str, overrides: list[str]) -> SyntheticConfig:
    """The named market profile with `NAME=VALUE` overrides of its numeric parameters."""
    config = MARKETS[name]
    numbers = {f.name: type(getattr(config, f.name)) for f in dataclasses.fields(config)}
    changes = {}
    for item in overrides:
        key, _, value = item.partition("=")
        if numbers.get(key) not in (int, float):
            known = sorted(k for k, kind in numbers.items() if kind in (int, float))
            raise SystemExit(f"--market-param {item!r}: not a number of SyntheticConfig: {known}")
        try:
            changes[key] = numbers[key](value)
        except ValueError:
            kind = numbers[key].__name__
            raise SystemExit(f"--market-param {item!r}: {value!r} is not a {kind}") from None
    return dataclasses.replace(config, **changes)


def own_head_row(bundle, train_days, val_days, score) -> dict:
    """The model and its own head (the denoiser's output zeroed), each with its spread factor,
    on the same anchors; the head's CRPS relative to the model's."""
    sampler = {"model": bundle.sampler}
    ((_, model),) = score_samplers(bundle, sampler, train_days, val_days, score).values()
    ((factor, head),) = score_samplers(
        own_head(bundle), sampler, train_days, val_days, score
    ).values()
    return {**head.flat(), "spread_factor": factor, "vs_model": paired_difference(head, model)}


def sampler_rows(bundle, names, train_days, val_days, references, score) -> dict[str, dict]:
    """Scores of one model per sampler, paired with the first sampler and with the best head."""
    scored = score_samplers(bundle, {n: SAMPLERS[n] for n in names}, train_days, val_days, score)
    first = scored[names[0]][1]
    head = min(
        (references[h] for h in ("gaussian_head", "student_t_head")), key=lambda s: s.crps_bp
    )
    return {
        name: {
            **scores.flat(),
            "spread_factor": factor,
            "vs_first": paired_difference(scores, first),
            "vs_best_head": paired_difference(scores, head),
        }
        for name, (factor, scores) in scored.items()
    }


def _write(args, device, profile, references, rows, samplers, started) -> None:
    if not args.out:
        return
    payload = {
        "device": str(device),
        "market": args.market,
        "profile": profile,
        "references": {k: v.flat() for k, v in references.items()},
        "trials": rows,
        "samplers": samplers,
        "elapsed_s": time.perf_counter() - started,
    }
    args.out.write_text(json.dumps(payload, indent=1))


if __name__ == "__main__":
    raise SystemExit(main())
