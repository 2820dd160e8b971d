"""One device and precision choice for the whole engine (`precision_for`).

Per purpose (SPEC "right numbers on cuda"):
  train      weights (master copy, optimiser state, LoRA adapters) in fp32; the forward runs under
             bf16 autocast on a bf16 GPU. An AdamW step of lr 1e-5 moves a weight by ~1e-5·|w|-ish
             amounts, below bf16's half-ulp (2^-9 relative), so on pure bf16 weights most of the
             update rounds away; an fp32 master copy keeps it.
  evaluate   as before: bf16 weights and compute on a bf16 GPU, fp32 on CPU (no optimiser).
  dto-probe  fp32 compute whatever the weights: the probe's Δ is a difference of two close
             log-probabilities, and bf16 rounding on a small probe step reorders the tokens.
`precision='bf16'` forces the low-precision half on any device (CPU autocast supports bf16), so
the GPU paths can be tested on CPU; 'fp32' turns low precision off; 'auto' picks by device.
"""
from __future__ import annotations

import contextlib
import ctypes
import gc
from dataclasses import dataclass

import torch

PURPOSES = ("train", "evaluate", "dto-probe")
PRECISIONS = ("auto", "bf16", "fp32")


def pick_device(device: str = "auto") -> str:
    """`auto` -> `cuda` when available, else `cpu`; an explicit string is checked and returned."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but torch sees no CUDA GPU")
    return device


def _low_precision(device: str, precision: str) -> bool:
    """True when the low-precision (bf16) half applies: forced, or 'auto' on a bf16-capable GPU."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return precision == "bf16"
    return device.startswith("cuda") and torch.cuda.is_bf16_supported()


@dataclass(frozen=True)
class Precision:
    """device; compute: the dtype matmuls run in; master: the dtype weights are loaded and kept in."""

    purpose: str
    device: str
    compute: torch.dtype
    master: torch.dtype

    @property
    def autocast(self) -> bool:
        """True when compute is lower than the weights' dtype (the forward runs under autocast)."""
        return self.compute != self.master

    def context(self):
        """Autocast to `compute` for the block when `autocast`, else a no-op context."""
        if not self.autocast:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.split(":")[0], dtype=self.compute)


def precision_for(purpose: str, device: str = "auto", precision: str = "auto") -> Precision:
    """THE (device, compute dtype, master-weight dtype) choice per purpose (see the module doc).

    train: master fp32, compute bf16 under autocast when low precision applies, else fp32.
    evaluate: master = compute = bf16 when low precision applies, else fp32.
    dto-probe: compute fp32; master as `evaluate` (the probe casts a bf16 model up for its run).
    """
    if purpose not in PURPOSES:
        raise ValueError(f"purpose must be one of {', '.join(PURPOSES)}, got {purpose!r}")
    device = pick_device(device)
    low = torch.bfloat16 if _low_precision(device, precision) else torch.float32
    if purpose == "train":
        return Precision(purpose, device, low, torch.float32)
    if purpose == "evaluate":
        return Precision(purpose, device, low, low)
    return Precision(purpose, device, torch.float32, low)


def dtype_for(device: str) -> torch.dtype:
    """The weights' dtype for evaluation on `device`: bf16 on a bf16 GPU, fp32 otherwise."""
    return precision_for("evaluate", device).master


@contextlib.contextmanager
def computing_in(model: torch.nn.Module, dtype: torch.dtype):
    """Cast `model`'s floating parameters and buffers to `dtype` for the block, then each back to
    its own dtype.

    Up-casting bf16 → fp32 and back is exact (every bf16 value is an fp32 value), so the model
    leaves bit-identical. No copy is kept: the peak is the model in `dtype`.
    """
    tensors = [t for t in list(model.parameters()) + list(model.buffers()) if t.is_floating_point()]
    changed = [(t, t.dtype) for t in tensors if t.dtype != dtype]
    for t, _ in changed:
        t.data = t.data.to(dtype)
    try:
        yield model
    finally:
        for t, orig in changed:
            t.data = t.data.to(orig)


def release_memory() -> bool:
    """Hand freed memory back after models were dropped: collect garbage, return CUDA's cached
    blocks to the driver and, on glibc, the C heap's free pages to the OS (`malloc_trim(0)`).

    Tensors under glibc's mmap threshold (it rises up to 32 MB after the first large free; a 100M
    model's layers are 2-9 MB) live on the heap and stay resident after they are freed: at 101M
    parameters, Explore's DTO scoring left 1.4 GB resident once its model was dropped, 0.45 GB
    after the trim (benchmarks/big_model_smoke.py). Returns True when the heap was trimmed.
    """
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    try:
        return bool(ctypes.CDLL("libc.so.6").malloc_trim(0))
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to trim this way
        return False


def adamw(params, **settings) -> torch.optim.AdamW:
    """torch.optim.AdamW with the fused kernel where torch has one (cpu, cuda): one kernel over all
    tensors and no temporaries per step (HF Trainer's default, `adamw_torch_fused`); the same update
    as the per-tensor loop up to rounding. Elsewhere torch's default implementation."""
    params = list(params)
    fused = bool(params) and {p.device.type for p in params} <= {"cpu", "cuda"} and all(p.is_floating_point() for p in params)
    return torch.optim.AdamW(params, fused=True if fused else None, **settings)

