"""`setup`: build the built-in benchmark, tokenizer, target and retain models (idempotent)."""
from __future__ import annotations

import json

NAME = "setup"
HELP = "build the built-in benchmark and the tiny target and retain models (cached; idempotent)"


def add_arguments(p) -> None:
    pass


def run(args) -> int:
    from ..models.builtin import ensure_builtin

    p = ensure_builtin()
    info = json.loads((p.root / "recipe.json").read_text())
    print(f"benchmark: {p.data}\ntarget model: {p.target}\nretain model: {p.retain}\n"
          f"(built in {info['build_seconds']} s)")
    return 0
