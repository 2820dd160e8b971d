"""The smollm2-tofu preset's figures, and Explore on SmolLM2.

    python benchmarks/smollm2_preset.py summary            # preset.json: FQ, MU, memorisation, phase times
    python benchmarks/smollm2_preset.py explore [--model smollm2-tofu] [--data tofu/forget10-dev]

`explore` times what Explore's first page does on this machine: the model load, then the first
chunk's token probabilities and every registered selector's scores (engine.explore.ExploreService,
the service the tab calls), printing each selector's time and whether it ran.
Run the preset first: `python -m engine setup --preset smollm2-tofu` (or `setup --model smollm2`
for `--model smollm2`).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parent.parent)  # repo root; benchmarks/selectors.py shadows nothing


def summary() -> int:
    from engine.presets import preset_dir

    out = preset_dir()
    path = out / "preset.json"
    if not path.is_file():
        print(f"{path}: not written yet (the preset has not finished); phases so far:")
        phases = out / "phases.json"
        print(phases.read_text() if phases.is_file() else "  none")
        return 1
    s = json.loads(path.read_text())
    print(f"plan {s['plan']['name']}: data {s['data']}, rows {s['rows']}")
    for label in ("target", "retain"):
        print(f"{label}: FQ {s[label]['forget_quality']}, MU {s[label]['model_utility']}")
    for key, m in s["memorisation"].items():
        print(f"{key}: ROUGE-L recall {m['rouge_l_recall']:.3f}, exact {m['exact_matches']}/{m['samples']}, "
              f"top-1 {m['top1']:.3f}")
    print(f"phase seconds {s['phase_seconds']} (total {sum(s['phase_seconds'].values()):.0f} s)")
    return 0


def explore(model: str, data: str, index: int) -> int:
    import torch

    from engine import selectors
    from engine.explore import ExploreService

    print(f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()}")
    svc = ExploreService(device="cpu")
    t = time.perf_counter()
    svc.model(model)
    print(f"model load {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    info = svc.info(model, data, "forget", index)
    print(f"first chunk ({svc.chunk_size} samples) token probabilities {time.perf_counter() - t:.1f} s; "
          f"sample {index}: {len(info.tokens)} label tokens, first {info.tokens[:6]}")
    total = 0.0
    for name in selectors.SELECTORS:
        t = time.perf_counter()
        row = svc.selector_row(model, data, "forget", index, name)
        dt = time.perf_counter() - t
        total += dt
        print(f"  {name:<16} {dt:6.1f} s  " + ("ok" if row.ok else f"unavailable: {row.error[:90]}"))
    print(f"every selector on the first chunk: {total:.1f} s")
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    sub.add_parser("summary")
    e = sub.add_parser("explore")
    e.add_argument("--model", default="smollm2-tofu")
    e.add_argument("--data", default="tofu/forget10-dev")
    e.add_argument("--index", type=int, default=0)
    args = p.parse_args()
    return summary() if args.what == "summary" else explore(args.model, args.data, args.index)


if __name__ == "__main__":
    raise SystemExit(main())
