"""Where the workbench keeps its generated data, cached models, scores and the SQLite store.

`WORKBENCH_HOME` overrides the default `<repo>/.workbench`.
"""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def home() -> Path:
    """The workbench directory (created on first use)."""
    path = Path(os.environ.get("WORKBENCH_HOME", REPO_ROOT / ".workbench")).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def builtin_dir() -> Path:
    """Generated benchmark, tokenizer and the two tiny models."""
    return home() / "builtin"


def cache_dir() -> Path:
    path = home() / "cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


def store_path() -> Path:
    return home() / "store.sqlite"


def runs_dir(store: str | os.PathLike | None = None) -> Path:
    """Checkpoint folders of the runs a store records, beside that store: `<home>/runs` for the
    default store, `<dir>/<stem>-runs` for any other, so two stores never share run ids' folders."""
    if store is None or Path(store).resolve() == store_path().resolve():
        path = home() / "runs"
    else:
        path = Path(store).parent / f"{Path(store).stem}-runs"
    path.mkdir(parents=True, exist_ok=True)
    return path
