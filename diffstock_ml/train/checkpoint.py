"""Training checkpoints: everything needed to resume exactly, written atomically."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

LATEST = "latest.pt"
BEST = "best.pt"


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
