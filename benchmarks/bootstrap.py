"""Time the first-start bootstrap (benchmark + tokenizer + target + retain models) through both
paths a person takes, in one run, each in its own temporary WORKBENCH_HOME (the cached models
are left alone):

  cli: `python -m engine setup` until it exits;
  app: `python app.py` until `builtin/recipe.json` is written (the app's bootstrap thread), with a
       page's 1 s banner poll simulated by a gradio_client call per second when --poll is given.

    python benchmarks/bootstrap.py [--poll] [--paths cli,app]

Prints the seconds per path and the ratio app / cli (the issue's target: ≤ 1.2). The machine's
load average is printed too: on a shared machine the two paths do not see the same load.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # not benchmarks/: selectors.py there shadows the stdlib module subprocess needs

import argparse  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(home: str, port: int | None = None) -> dict:
    env = {**os.environ, "WORKBENCH_HOME": home, "GRADIO_ANALYTICS_ENABLED": "False"}
    env.pop("WORKBENCH_STORE", None)
    if port:
        env["GRADIO_SERVER_PORT"] = str(port)
    return env


def time_cli() -> float:
    with tempfile.TemporaryDirectory() as home:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "engine", "setup"], cwd=ROOT, env=_env(home), check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - start


def time_app(poll: bool) -> float:
    with tempfile.TemporaryDirectory() as home:
        port = free_port()
        done = Path(home) / "builtin" / "recipe.json"
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=_env(home, port),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = None
        try:
            while not done.is_file():
                if proc.poll() is not None:
                    raise RuntimeError(f"app.py exited with {proc.returncode} before the bootstrap finished")
                if poll:
                    client = client or _client(port)
                    if client is not None:
                        try:
                            client.predict(api_name="/run_status")  # one light request, as the banner timer makes
                        except Exception:
                            pass
                time.sleep(1.0 if poll else 0.5)
            return time.perf_counter() - start
        finally:
            proc.terminate()
            proc.wait(30)


def _client(port: int):
    try:
        from gradio_client import Client
        return Client(f"http://127.0.0.1:{port}/", verbose=False)
    except Exception:  # the server is not up yet
        return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--poll", action="store_true", help="poll the app once a second, as an open page does")
    ap.add_argument("--paths", default="cli,app")
    a = ap.parse_args()
    times = {}
    for path in a.paths.split(","):
        load = os.getloadavg()[0]
        times[path] = time_cli() if path == "cli" else time_app(a.poll)
        print(f"{path}: {times[path]:.1f} s (load average at start {load:.1f}, {os.cpu_count()} CPUs)", flush=True)
    if {"cli", "app"} <= set(times):
        print(f"ratio app / cli: {times['app'] / times['cli']:.2f} (target ≤ 1.2)")


if __name__ == "__main__":
    main()
