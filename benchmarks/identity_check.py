"""Identity check for refactors (issue 22): three evaluated runs on the built-in tiny model give the same
per-epoch metric values, every digit, before and after a change.

Runs (RunConfig fields; model `demo`, data `demo`, --epochs epochs, seed --seed, no checkpoints, each in
a fresh temporary store): ATWU (loss `atwu`, selector `atwu`: ATWU's joint training, as the CLI's
`--loss atwu --selector atwu`), NPO + `tif`, GradDiff + `all`. Every per-epoch value the store records
is written to --out as JSON: floats as `repr` strings (full precision, digit-exact on reload), the
rest as JSON values, keyed by run label → epoch → metric name.

    python benchmarks/identity_check.py --out benchmarks/results/identity_before.json [--epochs 2] [--seed 0]
    python benchmarks/identity_check.py --compare A.json B.json   # exit 1 on any difference
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parent.parent)  # the repo root, not benchmarks/

RUNS = [  # (label, RunConfig fields)
    ("ATWU", {"loss": "atwu", "selector": "atwu"}),
    ("NPO + tif", {"loss": "npo", "selector": "tif"}),
    ("GradDiff + all", {"loss": "graddiff", "selector": "all"}),
]


def exact(value):
    """A JSON value that keeps every digit: floats as their repr, containers element-wise."""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict):
        return {str(k): exact(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [exact(v) for v in value]
    return value


def epoch_values(epoch) -> dict:
    """Every value one stored epoch carries, by name (a dict of metrics, or a record with `values`)."""
    metrics = epoch.metrics
    if hasattr(metrics, "to_dict"):
        metrics = metrics.to_dict()
    return {k: exact(v) for k, v in sorted(metrics.items())}


def collect(epochs: int, seed: int) -> dict:
    """{run label: {epoch: {metric: exact value}}} from the three runs, each in its own temporary store."""
    from engine.store import Store
    from engine.train import RunConfig, unlearn

    out: dict = {}
    for label, fields in RUNS:
        with tempfile.TemporaryDirectory() as tmp:
            store = Store(Path(tmp) / "store.sqlite")
            cfg = RunConfig(model="demo", data="demo", epochs=epochs, seed=seed, save_checkpoints=False, **fields)
            result = unlearn(cfg, store)
            if result.status != "finished":
                raise RuntimeError(f"{label}: the run ended {result.status}: {result.error}")
            run = store.get_run(result.run_id)
            out[label] = {str(e.epoch): {"step": e.step, **epoch_values(e)} for e in run.metrics}
            print(f"{label}: {len(run.metrics)} epochs recorded", flush=True)
    return out


def differences(a: dict, b: dict, where: str = "") -> list[str]:
    """Every path at which `a` and `b` differ (a missing key counts), as 'path: a != b'."""
    if isinstance(a, dict) and isinstance(b, dict):
        diffs = []
        for k in sorted(set(a) | set(b)):
            here = f"{where}/{k}"
            if k not in a or k not in b:
                diffs.append(f"{here}: {'missing in A' if k not in a else 'missing in B'}")
            else:
                diffs += differences(a[k], b[k], here)
        return diffs
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{where}[{i}]")]
    return [] if a == b else [f"{where}: {a!r} != {b!r}"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", help="write the per-epoch values here (JSON)")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--compare", nargs=2, metavar=("A", "B"), help="compare two --out files; exit 1 on a difference")
    args = ap.parse_args(argv)
    if args.compare:
        a, b = (json.loads(Path(p).read_text())["runs"] for p in args.compare)
        diffs = differences(a, b)
        n = sum(len(m) for run in a.values() for m in run.values())
        for d in diffs:
            print(d)
        print(f"{len(diffs)} difference(s) over {n} values")
        return 1 if diffs else 0
    if not args.out:
        ap.error("give --out FILE or --compare A B")
    runs = collect(args.epochs, args.seed)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"epochs": args.epochs, "seed": args.seed, "runs": runs}, indent=1,
                                         sort_keys=True) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
