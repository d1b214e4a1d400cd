"""Choosing the compute device: CUDA or MPS when present, else the CPU."""

from __future__ import annotations

import importlib.util
from types import ModuleType

from .errors import InvalidRequest


def _torch() -> ModuleType | None:
    """PyTorch when it is installed (heavy: imported only when a GPU may be asked for), else None."""
    if importlib.util.find_spec("torch") is None:
        return None
    import torch

    return torch


def resolve_device(requested: str) -> str:
    """Resolve ``auto | cpu | cuda | cuda:N | mps`` to a concrete device string.

    ``auto`` picks ``cuda:0`` when PyTorch sees a CUDA device, else ``mps`` on Apple silicon, else ``cpu``.
    Asking for a device that is not there raises InvalidRequest naming what is available.
    """
    requested = requested.strip().lower() or "auto"
    if requested == "cpu":
        return "cpu"
    torch = _torch()
    cuda_count = torch.cuda.device_count() if torch is not None and torch.cuda.is_available() else 0
    has_mps = bool(torch is not None and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    if requested == "auto":
        return "cuda:0" if cuda_count else ("mps" if has_mps else "cpu")
    if requested == "mps":
        if not has_mps:
            raise InvalidRequest("device 'mps' requested but Metal (MPS) is not available")
        return "mps"
    if requested == "cuda" or requested.startswith("cuda:"):
        index_text = requested.partition(":")[2] or "0"
        if not index_text.isdigit():
            raise InvalidRequest(f"device '{requested}': expected cuda or cuda:N")
        index = int(index_text)
        if index >= cuda_count:
            raise InvalidRequest(f"device '{requested}' requested but {cuda_count} CUDA device(s) are available")
        return f"cuda:{index}"
    raise InvalidRequest(f"unknown device '{requested}' (expected auto, cpu, cuda[:N] or mps)")


def describe_device(device: str) -> str:
    """Human-readable device description, e.g. ``cuda:0 (NVIDIA H100 80GB HBM3)``."""
    if device.startswith("cuda"):
        import torch

        return f"{device} ({torch.cuda.get_device_name(int(device.partition(':')[2] or 0))})"
    return device
