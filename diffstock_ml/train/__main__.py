"""`python -m diffstock_ml.train`: train on window folders written by the `windows` asset.

    python -m diffstock_ml.train --windows data/lake/windows/2025103* ... --split 6 2 2 \\
        --out runs/demo --profile demo [--device auto] [--max-steps N]

Days are sorted and split oldest first (train / val / test; test days are not touched). The
normaliser is fitted on the training days. Re-running with the same --out resumes from the
last checkpoint. Under `torchrun --nproc_per_node=K` each rank trains on its shard through
DistributedDataParallel (NCCL on CUDA, gloo on CPU).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

import torch

from diffstock_ml.device import select_device
from diffstock_ml.splits import fit_normaliser, split_days
from diffstock_ml.train.loop import EvalMetrics, StepMetrics, train
from diffstock_ml.train.profiles import PROFILES
from diffstock_ml.windows import META_FILE, DayArrays, load_day_arrays


class PrintCallback:
    def on_step(self, metrics: StepMetrics) -> None:
        print(
            f"step {metrics.step}: loss {metrics.loss:.4f} lr {metrics.lr:.2e} "
            f"grad {metrics.grad_norm:.2f} {metrics.windows_per_s:.0f} windows/s",
            flush=True,
        )

    def on_eval(self, metrics: EvalMetrics) -> None:
        print(
            f"eval {metrics.step}: val CRPS {metrics.val_crps_bp:.4f} bp, 90% coverage "
            f"{metrics.val_coverage_90:.3f} (best {metrics.best_val_crps_bp:.4f})",
            flush=True,
        )

    def on_message(self, text: str) -> None:
        print(text, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--windows", nargs="+", type=Path, required=True, help="day folders")
    parser.add_argument(
        "--split",
        nargs=3,
        type=int,
        metavar=("TRAIN", "VAL", "TEST"),
        help="days per split, oldest first (default: the profile's, e.g. 6 2 2 for demo)",
    )
    parser.add_argument("--out", type=Path, required=True, help="checkpoint folder (resumed)")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="demo")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--max-steps", type=int)
    args = parser.parse_args(argv)

    profile = PROFILES[args.profile]
    split = args.split or (profile.train_days, profile.val_days, profile.test_days)
    try:
        arrays = load_window_folders(args.windows, split, args.profile)
    except CommandError as error:  # one line a person can act on, no traceback
        print(f"error: {error}", file=sys.stderr)
        return 1
    splits = split_days(list(arrays), *split)
    device = _setup_distributed(args.device)
    model_config, train_config = profile.model, profile.train
    if args.max_steps:
        train_config = dataclasses.replace(train_config, max_steps=args.max_steps)
    result = train(
        model_config,
        train_config,
        [arrays[d] for d in splits.train],
        [arrays[d] for d in splits.val],
        fit_normaliser(arrays, splits, seed=train_config.seed),
        args.out,
        device,
        PrintCallback(),
    )
    summary = {
        "steps": result.steps,
        "best_step": result.best_step,
        "best_val_crps_bp": result.best_val_crps_bp,
        "first_val_crps_bp": result.first_val_crps_bp,
        "resumed_from": result.resumed_from,
        "stopped_early": result.stopped_early,
        "device": result.device,
        "wall_s": result.wall_s,
        "windows_per_s": result.windows_per_s,
        "splits": dataclasses.asdict(splits),
    }
    if not torch.distributed.is_initialized() or torch.distributed.get_rank() == 0:
        (args.out / "result.json").write_text(json.dumps(summary, indent=1))
        print(json.dumps(summary))
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    return 0


class CommandError(Exception):
    """A problem with the command's arguments, printed as one line."""


def load_window_folders(
    folders: list[Path], split: tuple[int, int, int], profile: str
) -> dict[str, DayArrays]:
    """The days of `folders` by name, checked before any work: each must be a day folder the
    `windows` asset wrote, and there must be exactly as many as `split` needs."""
    missing = [str(f) for f in folders if not f.is_dir()]
    if missing:
        raise CommandError(
            f"{len(missing)} window folder(s) do not exist: {', '.join(missing[:3])}; pass day "
            "folders written by the `windows` asset (e.g. data/lake/windows/2025*)"
        )
    unbuilt = [str(f) for f in folders if not (f / META_FILE).is_file()]
    if unbuilt:
        raise CommandError(
            f"{len(unbuilt)} folder(s) hold no {META_FILE}: {', '.join(unbuilt[:3])}; pass day "
            "folders written by the `windows` asset (materialise `windows` for those days first)"
        )
    names = sorted({f.name for f in folders})
    needed = sum(split)
    if len(names) != len(folders) or len(names) != needed:
        train_days, val_days, test_days = split
        raise CommandError(
            f"found {len(names)} distinct day folder(s) ({names[0]}…{names[-1]}), but the split "
            f"{train_days}/{val_days}/{test_days} ({profile} profile unless --split) needs "
            f"exactly {needed}; pass {needed} day folders or set --split TRAIN VAL TEST"
        )
    return {folder.name: load_day_arrays(folder) for folder in folders}


def _setup_distributed(preference: str) -> torch.device:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = select_device(preference)
    if world > 1:
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if device.type == "cuda":
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        backend = "nccl" if device.type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend=backend)
    return device


if __name__ == "__main__":
    sys.exit(main())
