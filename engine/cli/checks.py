"""Argument checks the commands run before any work (issue 25): each raises `UserError` (exit 2)
naming the flag or parameter, the value and what to do; nothing is recorded or written first."""
from __future__ import annotations

import os
from pathlib import Path

from .errors import UserError

SEED_MAX = 2**32 - 1  # numpy's and CUDA's seed range (torch.manual_seed overflows past 2**64)
FINETUNE_MARKERS = (".state", "target", "retain", "memorisation.json")


def check_seed(value: int | None, flag: str = "--seed") -> None:
    if value is not None and not 0 <= value <= SEED_MAX:
        raise UserError(f"{flag} {value}: must be between 0 and {SEED_MAX} (2**32 - 1)")


def check_lora(r: int | None, alpha: int | float | None, prefix: str = "--lora") -> None:
    """LoRA's rank and alpha must be positive (the update is scaled by alpha / r)."""
    if r is not None and r <= 0:
        raise UserError(f"{prefix}-r {r}: must be positive (an integer: the adapters' rank)")
    if alpha is not None and not alpha > 0:
        raise UserError(f"{prefix}-alpha {alpha}: must be positive (the adapters' update is scaled by alpha / r)")


def check_model_arg(spec: str | None, flag: str) -> None:
    """A model name or directory that `load_model` could load (the directory's files; the rest is
    checked at load), before anything is recorded."""
    if not spec:
        return
    from ..models.loading import ModelLoadError, check_model_dir  # deferred: torch
    from ..resolve import model_path  # deferred: torch

    try:
        check_model_dir(Path(model_path(spec)))
    except (ModelLoadError, KeyError, ValueError) as err:
        raise UserError(f"{flag} {spec}: {err}") from None


def _scorer_keys(params: dict) -> list[str]:
    return [k for k in params if k == "scorer" or k.endswith(".scorer")]


def check_scorer_params(params: dict, flag: str = "--param") -> None:
    """An ATWU `scorer=` path must be a saved scorer: an existing *.safetensors file whose header
    reads (not /etc/passwd, not a folder)."""
    for key in _scorer_keys(params):
        value = params[key]
        path = Path(str(value)).expanduser()
        where = f"{flag}{key}={value}" if flag.endswith(".") else f"{flag} {key}={value}"
        if not path.exists():
            raise UserError(f"{where}: no such file; give a scorer saved by `fit-scorer` (*.safetensors)")
        if not path.is_file():
            raise UserError(f"{where}: is a directory; give a scorer file (*.safetensors)")
        if path.suffix != ".safetensors":
            raise UserError(f"{where}: not a saved ATWU scorer (expected a *.safetensors file from `fit-scorer`)")
        try:
            from safetensors import safe_open  # deferred: safetensors

            with safe_open(str(path), "pt") as fh:
                list(fh.keys())
        except Exception as err:  # noqa: BLE001 - any unreadable header is the same bad input
            raise UserError(f"{where}: not a readable safetensors file ({type(err).__name__}: {err})") from None


def check_not_symlink(path: str | None, flag: str) -> None:
    """Refuse an output path that is a symbolic link: outputs are written atomically (a new file
    renamed over the path), which would replace the link itself; the link is left alone and the
    user names the target instead."""
    if path and Path(path).expanduser().is_symlink():
        target = os.path.realpath(Path(path).expanduser())
        raise UserError(f"{flag} {path}: is a symbolic link (to {target}); it is left alone: give the target "
                        f"path itself, or another file")


def check_out_folder(out: str, flag: str = "--out") -> Path:
    """An output folder the command may create and fill: not a file, not a file-system root, not
    a non-empty folder of something else (only an earlier run of this command is resumed), and
    writable. Returns the path."""
    path = Path(out).expanduser()
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise UserError(f"{flag} {out}: is a file; give a folder (it is created when missing)")
    resolved = path.resolve()
    if resolved == Path(resolved.anchor) or resolved == Path.home().resolve():
        raise UserError(f"{flag} {out}: is {'the file-system root' if resolved == Path(resolved.anchor) else 'your home folder'}; "
                        f"give a new or empty folder of its own (e.g. {resolved / 'finetuned'})")
    if path.is_dir() and any(path.iterdir()) and not any((path / m).exists() for m in FINETUNE_MARKERS):
        raise UserError(f"{flag} {out}: a non-empty folder that is not an earlier output of this command; give a "
                        f"new or empty folder")
    existing = path if path.exists() else next((p for p in path.parents if p.exists()), None)
    if existing is None or not existing.is_dir() or not os.access(existing, os.W_OK):
        raise UserError(f"{flag} {out}: not writable (permission denied); choose another folder")
    return path
