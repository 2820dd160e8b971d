"""The code's layering (issue 22): no circle among the rooms (engine's packages and modules, ui,
tokenviz, app) counting deferred imports too, and every import left inside a function says which
heavy package it defers. `benchmarks/import_graph.py` prints the graph."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import import_graph  # noqa: E402

HEAVY = {"torch", "transformers", "peft", "accelerate", "gradio", "gradio_client", "plotly", "pandas", "scipy",
         "numpy", "safetensors", "gguf", "rouge_score", "tqdm", "tokenizers", "psutil", "playwright"}


def test_circles_finds_a_planted_circle():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert import_graph.circles(edges) == [["a", "b", "c"]]
    assert import_graph.circles({"a": {"b"}, "b": set()}) == []


def test_no_circle_among_rooms():
    edges, _ = import_graph.graph(ROOT)
    assert import_graph.circles(edges) == []


def test_every_room_is_placed_and_imports_only_downwards():
    edges, _ = import_graph.graph(ROOT)
    assert sorted(set(edges) - set(import_graph.LAYERS)) == []
    assert import_graph.back_arrows(edges) == []
    assert import_graph.back_arrows({"engine.paths": {"engine.train"}}) == [("engine.paths", "engine.train")]


def test_every_deferred_import_names_its_heavy_package():
    missing = []
    for path in import_graph.files(ROOT):
        lines = path.read_text().splitlines()
        tree = ast.parse("\n".join(lines))
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for st in ast.walk(fn):
                if isinstance(st, (ast.Import, ast.ImportFrom)):
                    line = lines[st.end_lineno - 1]
                    named = line.split("# deferred:", 1)[1].split()[0] if "# deferred:" in line else None
                    if named not in HEAVY:
                        missing.append(f"{path.relative_to(ROOT)}:{st.lineno}")
    assert missing == [], f"in-function imports without '# deferred: <heavy package>': {sorted(set(missing))}"
