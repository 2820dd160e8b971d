"""`export`: a run's checkpoint as a plain model directory; a LoRA checkpoint (an adapter) is merged
into its base model (W + (α/r)·B·A), a full one is copied."""
from __future__ import annotations

import shutil
from pathlib import Path

from .. import paths
from ..models.adapter import is_adapter_dir, merge_adapter_dir
from ..store import NotFound, Store
from . import UserError

NAME = "export"
HELP = "write a run's checkpoint as a plain safetensors model directory (--merge OUT; LoRA adapters merged)"


def add_arguments(p) -> None:
    p.add_argument("--run", dest="run_id", type=int, required=True, metavar="ID", help="the run whose checkpoint to export")
    p.add_argument("--which", default="final", help="checkpoint kind: final (default) or best")
    p.add_argument("--merge", required=True, metavar="OUT", help="output directory (must not exist)")
    p.add_argument("--store", default=None, help="SQLite store (default: the workbench's)")


def run(args) -> int:
    out = Path(args.merge).expanduser()
    if out.exists():
        raise UserError(f"--merge {args.merge}: already exists; choose a new directory")
    if not out.parent.is_dir():
        raise UserError(f"--merge {args.merge}: no such directory: {out.parent}")
    store = Store(args.store or paths.store_path())
    try:
        record = store.get_run(args.run_id)
    except NotFound as err:
        raise UserError(f"--run {args.run_id}: {err}") from None
    ckpt = record.checkpoints.get(args.which)
    if ckpt is None:
        raise UserError(f"--which {args.which}: run {args.run_id} has no such checkpoint "
                        f"(has: {', '.join(record.checkpoints) or 'none'})")
    src = Path(ckpt.path)
    if is_adapter_dir(src):
        merge_adapter_dir(src, out)
        print(f"merged the LoRA adapter {src} into {out}")
    else:
        shutil.copytree(src, out)
        print(f"copied {src} to {out} (a full checkpoint, nothing to merge)")
    return 0
