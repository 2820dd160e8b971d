"""`setup`: build the built-in benchmark, tokenizer, target and retain models (idempotent)."""
from __future__ import annotations

import json

NAME = "setup"
HELP = "build the built-in benchmark and the tiny target and retain models (cached; idempotent)"


PROGRESS_PREFIX = "progress "


def add_arguments(p) -> None:
    p.add_argument("--progress-lines", action="store_true",
                   help="report progress as lines `progress <fraction> <message>` on stdout (for the app, "
                        "which runs this command as a child process) instead of a bar")


def _print_progress(fraction: float, message: str) -> None:
    print(f"{PROGRESS_PREFIX}{fraction:.4f} {message}", flush=True)


def run(args) -> int:
    from ..models.builtin import ensure_builtin

    p = ensure_builtin(_print_progress if args.progress_lines else None)
    info = json.loads((p.root / "recipe.json").read_text())
    print(f"benchmark: {p.data}\ntarget model: {p.target}\nretain model: {p.retain}\n"
          f"(built in {info['build_seconds']} s)")
    return 0
