"""Training checkpoints: everything needed to resume exactly, written atomically.

`latest.pt` holds the model, EMA (with its update count), optimizer, LR schedule, each rank's
random state (`random_state`), the data position (epoch, batch in epoch) and the early-stopping
state; `best.pt` the EMA weights of the best validation.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

LATEST = "latest.pt"
BEST = "best.pt"


def settings_fingerprint(*configs: object) -> str:
    """12 hex digits naming the settings (dataclass configs) of a run. Training resumes from
    whatever `latest.pt` its folder holds, so callers keep each run's checkpoints in a folder
    named by this: a run with other settings (another seed, say) never resumes another's."""
    text = json.dumps([dataclasses.asdict(c) for c in configs], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def save_checkpoint(state: dict[str, Any], folder: Path, name: str = LATEST) -> Path:
    """`torch.save` to a temporary file, then rename: a kill never leaves half a checkpoint."""
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / name
    temporary = folder / f".{name}.{os.getpid()}.tmp"
    torch.save(state, temporary)
    os.replace(temporary, final)
    return final


def load_checkpoint(folder: Path, name: str = LATEST) -> dict[str, Any] | None:
    """The checkpoint `name` in `folder`, or None when there is none yet."""
    path = folder / name
    if not path.exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=False)


def discard_partial(folder: Path) -> list[Path]:
    """Remove temporary files a killed run left mid-save (the final checkpoints are intact)."""
    partial = list(folder.glob(".*.tmp")) if folder.exists() else []
    for path in partial:
        path.unlink(missing_ok=True)
    return partial


def random_state(generator: torch.Generator) -> dict[str, torch.Tensor]:
    """This process's random state: the training `generator` (noise, dequantisation) and
    torch's global generators, which dropout draws from: the CPU one, and the one of the
    generator's accelerator ("cuda" or "mps") when it is on one."""
    state = {"generator": generator.get_state(), "torch": torch.get_rng_state()}
    if generator.device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(generator.device)
    elif generator.device.type == "mps":
        state["mps"] = torch.mps.get_rng_state()
    return state


def set_random_state(state: dict[str, torch.Tensor], generator: torch.Generator) -> bool:
    """Restore what `random_state` saved; False, restoring nothing, when it was saved with the
    generator on another kind of device."""
    accelerator = set(state) - {"generator", "torch"}
    if accelerator != ({generator.device.type} - {"cpu"}):
        return False
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], generator.device)
    elif "mps" in state:
        torch.mps.set_rng_state(state["mps"])
    return True
