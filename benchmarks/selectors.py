"""Selector throughput: batched scoring (one call per batch of 32) versus a naive loop that scores
one sample per call, in the same run, on the built-in target model and forget10.

    python benchmarks/selectors.py [--batch-size 32] [--samples 96] [--repeats 3]

Prints answer tokens per second for both and their ratio, and first the same for the bare model
forward (already-encoded batches): the ceiling any selector's speed-up can reach on this device. The ATWU row uses a scorer with random
weights saved in a temporary directory (speed only; accuracy lives in `selector-report`).
"""
from __future__ import annotations

import sys
from pathlib import Path

# this file's name shadows the stdlib `selectors` module: replace its folder on the path first
sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402


def timed(fn, repeats: int) -> float:
    """Best wall time of `repeats` calls (after one warm-up call)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--samples", type=int, default=96)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    import torch

    from engine.models import load_model
    from engine.models.builtin import ensure_builtin
    from engine.resolve import load_data
    from engine.selectors import SELECTORS, select
    from engine.tokens import encode_samples, iter_batches

    paths = ensure_builtin()
    model, tok = load_model(paths.target, "cpu")
    samples = load_data("demo").forget[:args.samples]
    n_tokens = int(sum(encode_samples(tok, c).answer_mask.sum() for c in iter_batches(samples, 64)))
    scratch = tempfile.mkdtemp()
    os.environ["WORKBENCH_HOME"] = scratch  # the random ATWU scorer goes here, not in the real cache
    from engine.weights.atwu import AtwuScorer, model_key, save_scorer

    scorer = AtwuScorer(model.config.n_embd)
    torch.nn.init.normal_(scorer.linear.weight, std=0.1)
    save_scorer(scorer, model_key(model), samples)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, built-in target model, "
          f"{len(samples)} forget samples, {n_tokens} answer tokens, batch {args.batch_size}")
    print(f"{'selector':<13} {'batched tok/s':>14} {'per-sample tok/s':>17} {'speed-up':>9}")
    with torch.no_grad():  # the ceiling: the model forward alone, batched vs one sample per call
        batches = [encode_samples(tok, c) for c in iter_batches(samples, args.batch_size)]
        singles = [encode_samples(tok, [s]) for s in samples]
        fwd_b = timed(lambda: [model(input_ids=b.input_ids, attention_mask=b.attention_mask) for b in batches],
                      args.repeats)
        fwd_1 = timed(lambda: [model(input_ids=b.input_ids, attention_mask=b.attention_mask) for b in singles],
                      args.repeats)
    print(f"{'(forward)':<13} {n_tokens / fwd_b:>14,.0f} {n_tokens / fwd_1:>17,.0f} {fwd_1 / fwd_b:>8.1f}x")
    for name in SELECTORS:
        batched = timed(lambda: [select(name, model, tok, c) for c in iter_batches(samples, args.batch_size)],
                        args.repeats)
        naive = timed(lambda: [select(name, model, tok, [s]) for s in samples], 1 if name == "dto" else args.repeats)
        print(f"{name:<13} {n_tokens / batched:>14,.0f} {n_tokens / naive:>17,.0f} {naive / batched:>8.1f}x")


if __name__ == "__main__":
    main()
