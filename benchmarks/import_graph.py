"""The project's import graph at the level of rooms (a package under engine/, or a top-level
package / module): its arrows, the circles among them and the in-function imports.

A room is `engine.<sub>` for a package or module under engine/ (engine.train, engine.store, …),
else the top-level name (ui, tokenviz, app). An arrow A → B: some module of A imports a module of B,
at module level or inside a function (both count: a deferred import is still a dependency).
Circles are the strongly connected components of more than one room (Tarjan).

    python benchmarks/import_graph.py [--root .] [--json FILE]

Prints rooms, arrows, circles, the arrows running back up `LAYERS` (the bottom-up order of the
rooms) and how many in-function imports lack the comment saying what they defer; exit status 1
when there is a circle, an arrow back up or a room not placed in LAYERS.
"""
from __future__ import annotations

import argparse
import ast
import json
import sys
from collections import defaultdict
from pathlib import Path

PACKAGES = ("engine", "ui", "tokenviz")
TOP_MODULES = ("app",)
# the rooms from the bottom up: a room imports only rooms before it (docs/layout.md, "Layers")
LAYERS = [f"engine.{r}" for r in (
    "paths processes atomic fingerprint json_lines param_check model_dirs memory_plan prompts tokens context data models "
    "preset_paths resolve selectors masks weights losses params eval run_config store mask_sets train presets "
    "jobs explore cli __main__").split()] + ["engine", "tokenviz", "ui", "app"]


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def room_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] == "engine":
        return "engine" if len(parts) == 1 else f"engine.{parts[1]}"
    if parts[0] in PACKAGES or parts[0] in TOP_MODULES:
        return parts[0]
    return None


def resolve(root: Path, module: str, is_pkg: bool, node: ast.ImportFrom) -> list[str]:
    """Absolute modules a `from … import …` depends on: `pkg.name` for each name that is a
    submodule, and the module itself when some name is not (an attribute of it)."""
    if node.level:
        base = module.split(".") if is_pkg else module.split(".")[:-1]
        base = base[:len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    folder = root.joinpath(*target.split("."))
    subs = [f"{target}.{a.name}" for a in node.names
            if (folder / f"{a.name}.py").is_file() or (folder / a.name / "__init__.py").is_file()]
    return subs + ([target] if len(subs) < len(node.names) else [])


def imports_of(root: Path, path: Path) -> list[tuple[str, int, bool]]:
    """(imported absolute name, line, inside a function) for every import in the file."""
    module = module_name(root, path)
    is_pkg = path.name == "__init__.py"
    tree = ast.parse(path.read_text(), str(path))
    out = []

    def visit(node: ast.AST, in_func: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = in_func or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                out.extend((a.name, child.lineno, in_func) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                out.extend((n, child.lineno, in_func) for n in resolve(root, module, is_pkg, child))
            visit(child, inner)
    visit(tree, False)
    return out


def files(root: Path) -> list[Path]:
    found = [p for pkg in PACKAGES for p in sorted((root / pkg).rglob("*.py"))]
    return found + [root / f"{m}.py" for m in TOP_MODULES if (root / f"{m}.py").is_file()]


def graph(root: Path) -> tuple[dict[str, set[str]], list[dict]]:
    """(room → rooms it imports, in-function imports of project modules with their comment)."""
    edges: dict[str, set[str]] = defaultdict(set)
    deferred = []
    for path in files(root):
        src = room_of(module_name(root, path))
        lines = path.read_text().splitlines()
        for name, line, in_func in imports_of(root, path):
            dst = room_of(name)
            top = name.split(".")[0]
            if in_func and (dst is None or top not in PACKAGES + TOP_MODULES):
                comment = lines[line - 1].split("#", 1)[1].strip() if "#" in lines[line - 1] else ""
                deferred.append({"file": str(path.relative_to(root)), "line": line, "module": name,
                                 "comment": comment})
            if dst is None or dst == src:
                continue
            edges[src].add(dst)
    for path in files(root):
        edges.setdefault(room_of(module_name(root, path)), set())
    return dict(edges), deferred


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one room (Tarjan's algorithm)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in sorted(edges):
        if v not in index:
            strong(v)
    return out


def back_arrows(edges: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Arrows from a room to a room above it in LAYERS (a room not in LAYERS counts as on top)."""
    rank = {r: i for i, r in enumerate(LAYERS)}
    top = len(LAYERS)
    return sorted((a, b) for a, bs in edges.items() for b in bs if rank.get(b, top) > rank.get(a, top))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=str(Path(__file__).resolve().parent.parent))
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    root = Path(args.root)
    edges, deferred = graph(root)
    found = circles(edges)
    n_arrows = sum(len(v) for v in edges.values())
    print(f"{len(edges)} rooms, {n_arrows} arrows, {len(found)} circle(s)")
    for comp in found:
        print("  circle:", " ↔ ".join(comp))
    up = back_arrows(edges)
    unplaced = sorted(set(edges) - set(LAYERS))
    print(f"{len(up)} arrow(s) running back up the layers" + (f"; rooms not in LAYERS: {unplaced}" if unplaced else ""))
    for a, b in up:
        print(f"  {a} → {b}")
    print(f"{len(deferred)} in-function imports of packages outside the project "
          f"({sum(1 for d in deferred if not d['comment'])} without a comment saying why)")
    if args.json:
        Path(args.json).write_text(json.dumps({"edges": {k: sorted(v) for k, v in edges.items()},
                                               "circles": found, "back": up, "deferred": deferred}, indent=1))
    return 1 if found or up or unplaced else 0


if __name__ == "__main__":
    raise SystemExit(main())
