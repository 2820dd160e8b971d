"""Where one evaluation's time goes, on the built-in model (CPU): seconds per part of one
`evaluate_state`, for the target model (step 0) and for the model after a default run's training
(RunConfig defaults, 130 steps, no evaluation; gradient ascent leaves it answering nonsense up to
`eval_max_new_tokens`, the costliest case for generation).

    python benchmarks/eval_profile.py [--threads 1]

Parts are the functions in PARTS that exist in this tree (prompt prefill, continuation scoring
(every forward-only number: probabilities, truth ratios, MIA token statistics), greedy decode,
ROUGE, the privacy and token-level metrics), timed by wrapping them; 'other' is the rest of
`evaluate_state` (tokenisation, batching, formulas). One warm-up evaluation runs first. Each case
is profiled as a per-epoch (subsampled, `RunConfig.eval_rouge_rows`) and as a full evaluation.
"""
from __future__ import annotations

import argparse
import functools
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parent.parent)

import torch  # noqa: E402

PARTS = {  # module: functions timed; the parts `evaluate_state` reaches do not nest, but for
    # rouge_l_recall (ROUGE-L components and token_level's kept-words recall)
    "engine.eval.passes": ["prefill", "continuation_scores", "greedy_decode"],
    "engine.eval.metrics": ["rouge_l_recall"],
    "engine.eval.privacy": ["memorisation", "privacy_metrics", "grad_norm_scores"],
    "engine.train.evaluation": ["token_level_metrics", "compute_hooks"],
}


def wrap_parts(spent: dict) -> list[str]:
    """Replace each existing part by a timed copy (module attribute, so callers inside the module see
    it); returns the names wrapped."""
    import importlib

    names = []
    for module_name, functions in PARTS.items():
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        for name in functions:
            real = getattr(module, name, None)
            if real is None:
                continue

            @functools.wraps(real)
            def timed(*a, _real=real, _name=name, **k):
                t = time.perf_counter()
                try:
                    return _real(*a, **k)
                finally:
                    spent[_name] += time.perf_counter() - t

            setattr(module, name, timed)
            names.append(name)
    return names


def profile(state, spent: dict, names: list[str], **kw) -> dict:
    """Seconds per part of one `evaluate_state(state, ctx, **kw)` after a warm-up call."""
    from engine.train.evaluation import eval_context, evaluate_state

    ctx = eval_context(state)
    evaluate_state(state, ctx, **kw)  # warm-up
    spent.clear()
    t = time.perf_counter()
    evaluate_state(state, ctx, **kw)
    total = time.perf_counter() - t
    parts = {n: spent[n] for n in names if n in spent and n != "rouge_l_recall"}
    return {"total": total, **parts, "other": total - sum(parts.values()), "(rouge_l_recall)": spent["rouge_l_recall"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    spent: dict = defaultdict(float)
    names = wrap_parts(spent)
    from engine.train import RunConfig, prepare, short_run

    rows = RunConfig().eval_rouge_rows
    cases = [("target model (step 0)", lambda: prepare(RunConfig(device="cpu"))),
             ("after a default run's 130 steps", lambda: short_run(RunConfig(device="cpu"), 130))]
    for label, make in cases:
        state = make()
        for kind, kw in ((f"per-epoch ({rows} rows/split)", {"rouge_rows": rows}), ("full", {})):
            row = profile(state, spent, names, **kw)
            print(f"{label}, {kind}: " + ", ".join(f"{k} {v:.2f} s" for k, v in row.items()))


if __name__ == "__main__":
    main()
