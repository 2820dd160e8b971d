"""Time the first-run bootstrap (benchmark + tokenizer + target + retain models) from scratch.

Builds into a temporary WORKBENCH_HOME so the cached models are left alone, then evaluates the
target and retain models on forget10 and prints the TOFU shape.
    python benchmarks/bootstrap.py
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parent.parent)  # not benchmarks/: selectors.py there shadows the stdlib


def main() -> None:
    import torch

    with tempfile.TemporaryDirectory() as home:
        os.environ["WORKBENCH_HOME"] = home
        from engine.eval.full import evaluate, reference_truth_ratios
        from engine.models import load_model
        from engine.models.builtin import ensure_builtin
        from engine.resolve import load_data

        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
        t0 = time.perf_counter()
        p = ensure_builtin()
        t1 = time.perf_counter()
        bench = load_data("demo/forget10")
        ref = reference_truth_ratios(p.retain, bench, "cpu")
        rows = []
        for name, d in (("target", p.target), ("retain", p.retain)):
            r = evaluate(*load_model(d, "cpu"), bench, ref)
            rows.append((name, r))
        t2 = time.perf_counter()
        print(f"bootstrap: {t1 - t0:.1f} s   evaluation of both models: {t2 - t1:.1f} s")
        print("| model | FQ | MU | forget prob | forget ROUGE-L |\n|---|---|---|---|---|")
        for name, r in rows:
            c = r.components
            print(f"| {name} | {r.forget_quality:.2g} | {r.model_utility:.3f} | "
                  f"{c['forget_probability']:.3f} | {c['forget_rouge_l']:.3f} |")


if __name__ == "__main__":
    main()
