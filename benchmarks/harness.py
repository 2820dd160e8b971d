"""Run the app in-process for tests and benchmarks (tests/test_app.py, test_browser.py, test_explore.py,
benchmarks/ui_render.py): an isolated workbench home and a launched server.

    with isolated_home(tmp_path) as home, serve(build_demo(home / "store.sqlite")) as url:
        Client(url).predict(..., api_name="/explore_render")

`isolated_home` points WORKBENCH_HOME at a temporary directory whose `builtin/` links to the real
built-in models (built once, shared) and whose cache starts with copies of the retain model's
truth ratios; runs, checkpoints, ATWU scorers and the store stay inside the temporary directory.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
from pathlib import Path
from typing import Iterator


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def isolated_home(tmp: str | os.PathLike) -> Iterator[Path]:
    from engine import paths
    from engine.models.builtin import ensure_builtin

    real = ensure_builtin(lambda f, m: None).root
    real_cache = paths.cache_dir()
    home = Path(tmp)
    home.mkdir(parents=True, exist_ok=True)
    (home / "builtin").symlink_to(real, target_is_directory=True)
    (home / "cache").mkdir(exist_ok=True)
    for f in real_cache.glob("reference_tr_*.json"):
        shutil.copy2(f, home / "cache" / f.name)
    old = {k: os.environ.get(k) for k in ("WORKBENCH_HOME", "WORKBENCH_STORE")}
    os.environ["WORKBENCH_HOME"] = str(home)
    os.environ["WORKBENCH_STORE"] = str(home / "store.sqlite")
    try:
        yield home
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def serve(demo, port: int | None = None) -> Iterator[str]:
    """Launch without blocking on 127.0.0.1; yields the URL; closes the server in `finally`."""
    import app

    port = port or free_port()
    try:
        _, url, _ = app.launch(demo, port=port, prevent_thread_lock=True, quiet=True)
        yield url.rstrip("/")
    finally:
        demo.close()
