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

        import contextlib

        saved = views.DTO_LOOP_PARAMS, views.shared_forward
        views.DTO_LOOP_PARAMS, views.shared_forward = 10**15, contextlib.nullcontext  # the old behaviour
        time_chunk(args, "before (DTO probe: vmap; one forward per selector)")
        views.DTO_LOOP_PARAMS, views.shared_forward = saved
    time_chunk(args, "after (DTO probe: per-sample loop on a CPU; one shared forward)" if args.before else "")


def time_chunk(args, title: str) -> None:
    with isolated_home(tempfile.mkdtemp(prefix="first-chunk-")):
        svc = ExploreService(device="cpu", chunk_size=args.chunk)
        svc.samples(args.data, "forget")
        times, cpu = {}, {}
        t0, c0 = time.perf_counter(), time.process_time()
        t, c = t0, c0

        def lap(name: str) -> None:
            nonlocal t, c
            times[name], cpu[name] = time.perf_counter() - t, time.process_time() - c
            t, c = time.perf_counter(), time.process_time()

        current = ["load model"]

        def phase(p: dict) -> None:  # ExploreService.view calls this as each piece of work starts
            lap(current[0])
            current[0] = f"selector {p['selector']}" if p["phase"] == "selector" else p["phase"]

        svc.view(args.model, args.data, "forget", args.index, progress=phase)
        lap(current[0])
        total, total_cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"{title + ': ' if title else ''}first chunk ({args.chunk} samples) of {args.data} on {args.model}, "
          f"{os.environ.get('OMP_NUM_THREADS', 'all')} thread(s):")
    for k, v in times.items():
        if k == "load model" and v < 0.01:
            continue
        print(f"  {k:36s} {v:7.2f} s wall  {cpu[k]:7.2f} s CPU")
    print(f"  {'total':36s} {total:7.2f} s wall  {total_cpu:7.2f} s CPU")


if __name__ == "__main__":
    main()
