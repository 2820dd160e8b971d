"""Under load (issue 25, point 6): simulated users browse Explore and Compare through
gradio_client while a run trains on the built-in model in the same app.

    OMP_NUM_THREADS=1 python benchmarks/load_test.py               # 20 users, a 2-epoch run
    OMP_NUM_THREADS=1 python benchmarks/load_test.py --users 5 --epochs 1

1. the run alone (started through /run_start, polled to its end): its per-epoch metrics;
2. the same run again while `--users` threads, each its own gradio_client, loop over Explore
   (explore_render of random samples and rules, explore_next) and Compare (compare_refresh)
   until the run ends (each waits up to USER_TIMEOUT_S for an answer, as a browser does);
3. prints the requests made, the failed ones (an exception, or a **Problem:** status; a view must say **OK:**),
   whether the run's per-epoch numbers are identical to the run alone (every metric except
   timings), and the p50 / p95 latency of a sample view (explore_render, queueing included).
`run_load_test` returns the same figures as a dict (tests/test_load_stress.py uses a small one).
"""
from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":  # the repository, not benchmarks/ (whose selectors.py would shadow the stdlib's)
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

FORM = dict(model="demo", data="demo/forget01", loss="ga", source="selector", selector="oracle", mask_set=None,
            epochs=2, lr=3e-4, batch_size=8, max_steps=0, weighting="auto", lora=False, retain_eval_size=20,
            eval_tokens=16, eval_every=True, save_ckpt=False, seed=0, selector_params="", loss_params="",
            orthogonalize=False)
RULES = ["default", "top-k", "threshold"]
TIMING = ("second", "time", "elapsed", "duration")
USER_TIMEOUT_S = 300.0  # a user waits as a browser does (httpx's 5 s default counts a busy queue as a failure)


def _call(client, api: str, *args):
    return client.predict(*args, api_name=f"/{api}")


def _run_to_end(client, store, form: dict, timeout: float) -> int:
    """Start a run through the app and wait for it; returns its id (RuntimeError when it failed)."""
    status, _ = _call(client, "run_start", *form.values())
    if "**OK:**" not in status:
        raise RuntimeError(f"run not started: {status}")
    end = time.monotonic() + timeout
    snap = _call(client, "run_status")
    while (snap.get("state") in ("starting", "running", "cancelling") or snap.get("run_id") is None) \
            and time.monotonic() < end:
        time.sleep(0.5)
        snap = _call(client, "run_status")
    if snap.get("state") != "finished":
        raise RuntimeError(f"run ended {snap.get('state')}: {snap.get('error')}")
    return int(snap["run_id"])


def epoch_numbers(store, run_id: int) -> list[dict]:
    """The run's per-epoch metrics without timing fields."""
    return [{"epoch": r.epoch, "step": r.step,
             **{k: v for k, v in r.metrics.to_dict().items() if not any(t in k for t in TIMING)}}
            for r in store.get_run(run_id).metrics]


def _user(url: str, stop: threading.Event, seed: int, out: dict, lock: threading.Lock, samples: int) -> None:
    from gradio_client import Client

    rnd = random.Random(seed)
    try:
        client = Client(url, verbose=False, httpx_kwargs={"timeout": USER_TIMEOUT_S})
    except Exception as err:  # noqa: BLE001 - counted as a failed request
        with lock:
            out["failed"].append(f"connect: {err}")
        return
    while not stop.is_set():
        kind = rnd.choice(["view", "view", "next", "compare"])
        t0 = time.perf_counter()
        try:
            if kind == "view":
                _, _, status = _call(client, "explore_render", "demo", "demo", "forget", rnd.randrange(samples),
                                     rnd.choice(RULES), 5, 0.5)
            elif kind == "next":
                _, status = _call(client, "explore_next", "demo", "forget", "", rnd.randrange(samples))
            else:
                status = _call(client, "compare_refresh", "demo", "demo/forget01", 20, 16, True)[-1]
            good = "**Problem:**" not in str(status) and (kind != "view" or "**OK:**" in str(status))
        except Exception as err:  # noqa: BLE001 - every failure is counted
            good, status = False, f"{type(err).__name__}: {err}"
        took = time.perf_counter() - t0
        with lock:
            out["requests"] += 1
            if kind == "view":
                out["view_latency"].append(took)
            if not good:
                out["failed"].append(f"{kind}: {str(status)[:200]}")


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def run_load_test(users: int = 20, epochs: int = 2, timeout: float = 900.0, home: str | Path | None = None) -> dict:
    """The figures of one load test (see the module docstring)."""
    from gradio_client import Client

    import app
    from benchmarks.harness import isolated_home, serve

    form = {**FORM, "epochs": epochs}
    tmp = Path(home or tempfile.mkdtemp(prefix="wb-load-"))
    with isolated_home(tmp) as h:
        demo = app.build_demo(h / "store.sqlite")
        store = demo.wb_context.store
        with serve(demo) as url:
            client = Client(url, verbose=False)
            t0 = time.perf_counter()
            alone_id = _run_to_end(client, store, form, timeout)
            alone_s = time.perf_counter() - t0
            samples = len(demo.wb_context.explore.samples("demo", "forget"))
            out: dict = {"requests": 0, "failed": [], "view_latency": []}
            lock, stop = threading.Lock(), threading.Event()
            threads = [threading.Thread(target=_user, args=(url, stop, i, out, lock, samples), daemon=True)
                       for i in range(users)]
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            try:
                loaded_id = _run_to_end(client, store, form, timeout)
            finally:
                loaded_s = time.perf_counter() - t0
                stop.set()
                for t in threads:
                    t.join(timeout=120)
            alone, loaded = epoch_numbers(store, alone_id), epoch_numbers(store, loaded_id)
    lat = out["view_latency"]
    return {"users": users, "epochs": epochs, "requests": out["requests"], "failed": len(out["failed"]),
            "failures": out["failed"][:10], "identical_epochs": alone == loaded, "epochs_alone": alone,
            "epochs_under_load": loaded, "run_alone_s": round(alone_s, 1), "run_under_load_s": round(loaded_s, 1),
            "views": len(lat), "view_p50_s": _pct(lat, 0.5), "view_p95_s": _pct(lat, 0.95)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=int, default=20)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--json", default=None, help="also write the figures here")
    args = p.parse_args()
    r = run_load_test(args.users, args.epochs)
    print(f"{r['users']} users, {r['requests']} requests while a {r['epochs']}-epoch run trained: "
          f"{r['failed']} failed")
    for f in r["failures"]:
        print(f"  failed: {f}")
    print(f"run alone {r['run_alone_s']} s, under load {r['run_under_load_s']} s; per-epoch numbers identical: "
          f"{r['identical_epochs']}")
    if not r["identical_epochs"]:
        print(f"  alone: {r['epochs_alone']}\n  under load: {r['epochs_under_load']}")
    if r["views"]:
        print(f"sample view (explore_render, queueing included): {r['views']} views, p50 {r['view_p50_s']:.2f} s, "
              f"p95 {r['view_p95_s']:.2f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=1))


if __name__ == "__main__":
    main()
