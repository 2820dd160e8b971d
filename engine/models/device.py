"""One device choice for the whole engine: cuda with bf16 when present, CPU with fp32 otherwise."""
from __future__ import annotations

import torch


def pick_device(device: str = "auto") -> str:
    """`auto` -> `cuda` when available, else `cpu`; an explicit string is checked and returned."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but torch sees no CUDA GPU")
    return device


def dtype_for(device: str) -> torch.dtype:
    """bf16 on cuda (when the GPU supports it), fp32 on CPU."""
    if device.startswith("cuda") and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32
