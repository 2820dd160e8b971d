"""What the memorisation and membership-inference metrics add to one evaluation (a run's per-epoch
cost): the built-in target model on demo/forget10, evaluated (a) as before these metrics (no
holdout split, no gradient norm), (b) with the holdout answers and token statistics in the same
pass, (c) plus the gradient-norm attack (one backward pass per forget and holdout answer).

    OMP_NUM_THREADS=1 python benchmarks/eval_privacy_cost.py [--data demo] [--repeats 2]

Prints seconds per evaluation (the best of --repeats) and the share each part adds.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parent.parent)  # the repository, not benchmarks/ (its selectors.py)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="demo")
    p.add_argument("--model", default="demo")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()

    import torch

    from engine.eval.full import evaluate, reference_mia, reference_truth_ratios
    from engine.models import load_model
    from engine.resolve import load_data, model_path, retain_model_for

    torch.set_num_threads(args.threads)
    bench = load_data(args.data)
    retain = retain_model_for(args.model, args.data)
    ref_tr = reference_truth_ratios(model_path(retain), bench, "cpu") if retain else None
    ref_mia = reference_mia(model_path(retain), bench, "cpu") if retain else None
    model, tok = load_model(model_path(args.model), "cpu")
    cases = {"before (no holdout, no gradient norm)": (dataclasses.replace(bench, holdout=[]), False),
             "+ holdout answers and token statistics": (bench, False),
             "+ gradient norm (backward per answer)": (bench, True)}
    times = {}
    for name, (b, gradnorm) in cases.items():
        best = float("inf")
        for _ in range(args.repeats):
            t = time.perf_counter()
            evaluate(model, tok, b, ref_tr, max_new_tokens=64, retain_mia=ref_mia, gradnorm=gradnorm)
            best = min(best, time.perf_counter() - t)
        times[name] = best
    base = next(iter(times.values()))
    print(f"{args.model} on {bench.name}: {len(bench.eval_split('forget'))} forget, "
          f"{len(bench.eval_split('holdout'))} holdout answers, {args.threads} thread(s), best of {args.repeats}")
    for name, t in times.items():
        print(f"  {name:<42} {t:6.2f} s  ({t / base:.2f}×)")


if __name__ == "__main__":
    main()
