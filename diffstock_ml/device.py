"""The torch device to run on: the best available one, or the one asked for."""

from __future__ import annotations

import torch


def select_device(preference: str = "auto") -> torch.device:
    """`"auto"` picks cuda, then mps, then cpu; an explicit name (`"cuda:1"`) must be available."""
    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(preference)
    except RuntimeError as error:
        raise ValueError(
            f"unknown device {preference!r}; expected 'auto', 'cpu', 'mps' or 'cuda[:i]'"
        ) from error
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {preference!r} was asked for but CUDA is not available")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise RuntimeError(f"device {preference!r} was asked for but only {count} GPU(s) exist")
    elif device.type == "mps" and not _mps_available():
        raise RuntimeError(f"device {preference!r} was asked for but MPS is not available")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(
            f"unsupported device {preference!r}; expected 'auto', 'cpu', 'mps', 'cuda'"
        )
    return device


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return backend is not None and backend.is_available()


def has_native_bfloat16(device: torch.device) -> bool:
    """Whether `device` multiplies bfloat16 matrices in hardware (not by emulation).

    CUDA: compute capability 8.0 or later (Ampere, Hopper). CPU: AVX512-BF16 or AMX; older
    CPUs emulate bfloat16 and gain nothing. The CPU probes are private torch functions, so a
    torch without them answers False.
    """
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.get_device_capability(device)[0] >= 8
    if device.type == "cpu":
        probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(getattr(torch.cpu, name, lambda: False)() for name in probes)
    return False
