"""Where the Explore tab's first chunk goes on a real model: load, per-sample info, each selector.

    OMP_NUM_THREADS=1 python benchmarks/explore_first_chunk.py --model /tmp/smollm2 \
        --data ../shared/data/tofu_sample/forget_spans_dev [--chunk 8]

The model: SmolLM2-135M-Instruct as a plain safetensors directory (see ../shared/models/…/README.md:
load the GGUF with gguf_file=, copy the state dict into a fresh LlamaForCausalLM without
quantization_config, save_pretrained). Prints seconds per phase and the total; not a test. --before also times the previous behaviour
first (DTO's probe in its vmap form, what `mode=auto` picks), in the same process, for a fair
comparison on a shared machine.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parent.parent)  # the repo root (benchmarks/selectors.py shadows)

from benchmarks.harness import isolated_home  # noqa: E402
from engine.explore import ExploreService  # noqa: E402
from engine.selectors import SELECTORS  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--chunk", type=int, default=8)
    ap.add_argument("--index", type=int, default=0)
    ap.add_argument("--before", action="store_true", help="time the vmap probe (the old default) first")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    if args.before:
        from engine.explore import views

        saved, views.DTO_LOOP_PARAMS = views.DTO_LOOP_PARAMS, 10**15  # never the loop: the old behaviour
        time_chunk(args, "before (DTO probe: vmap)")
        views.DTO_LOOP_PARAMS = saved
    time_chunk(args, "after (DTO probe: per-sample loop on a CPU)" if args.before else "")


def time_chunk(args, title: str) -> None:
    with isolated_home(tempfile.mkdtemp(prefix="first-chunk-")):
        svc = ExploreService(device="cpu", chunk_size=args.chunk)
        svc.samples(args.data, "forget")
        times = {}
        t0 = time.perf_counter()
        svc.model(args.model)
        times["load model"] = time.perf_counter() - t0
        t = time.perf_counter()
        svc.info(args.model, args.data, "forget", args.index)
        times["tokens + p(token)"] = time.perf_counter() - t
        for name in SELECTORS:
            t = time.perf_counter()
            row = svc.selector_row(args.model, args.data, "forget", args.index, name)
            times[f"selector {name}" + ("" if row.ok else " (unavailable)")] = time.perf_counter() - t
        total = time.perf_counter() - t0
    print(f"{title + ': ' if title else ''}first chunk ({args.chunk} samples) of {args.data} on {args.model}, "
          f"{os.environ.get('OMP_NUM_THREADS', 'all')} thread(s):")
    for k, v in sorted(times.items(), key=lambda kv: -kv[1]):
        print(f"  {k:32s} {v:7.2f} s  ({100 * v / total:4.1f} %)")
    print(f"  {'total':32s} {total:7.2f} s")


if __name__ == "__main__":
    main()
