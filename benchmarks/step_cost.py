"""Cost of one training step per loss (with a token selector's weights) against a plain GA step.

Same model weights, same forget batch (and retain batch where the loss has a retain term). For
each case, `engine.train.step` and a hand-written plain GA step (forward, mean NLL over label
tokens, backward, clip, AdamW, on its own copy of the model) are timed alternately, one call
each per round, so both medians come from the same stretch of machine load (the CPU may be
shared). The ratio is median(case) / median(plain GA of the same rounds). The token-weighted GA
step should cost within 1.05× of the plain one.

Weights come from the `oracle` selector (fact spans): a step costs the same whatever selector
made the mask, since the selector runs once before training. `atwu` uses the live scorer.

Peak memory: cuda: torch.cuda.max_memory_allocated during one step, above what was live
before it; CPU: the peak of the running sum of the tensor allocations and frees the torch
profiler records during one step.

    python benchmarks/step_cost.py [--model demo] [--data demo] [--batch-size 8] [--rounds 40]
                                   [--threads 1] [--device auto] [--json FILE] [--markdown FILE]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

# the repo root replaces this script's folder on the path: benchmarks/selectors.py would shadow the stdlib module
sys.path[0] = str(Path(__file__).resolve().parent.parent)

import torch  # noqa: E402

# (label, loss, selector, extra RunConfig fields)
CASES = [
    ("ga + oracle mask", "ga", "oracle", {}),
    ("ga + oracle, soft weights", "ga", "oracle", {"weighting": "scores"}),
    ("graddiff + oracle mask", "graddiff", "oracle", {}),
    ("npo + oracle mask", "npo", "oracle", {}),
    ("tpo + oracle mask", "tpo", "oracle", {}),
    ("dto + oracle mask", "dto", "oracle", {}),
    ("dto + oracle, orthogonalised", "dto", "oracle", {"orthogonalize": True}),
    ("atwu + live atwu scorer", "atwu", "atwu", {}),
]


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str) -> float:
    t = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t


def peak_memory(fn, device: str) -> float:
    """Peak memory (MiB) allocated during one call of fn, above what was live before it."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    # each op's own allocations (net of its own frees), in time order
    events = sorted((e.time_range.start, e.self_cpu_memory_usage) for e in prof.events()
                    if e.self_cpu_memory_usage)
    live = peak = 0
    for _, delta in events:
        live += delta
        peak = max(peak, live)
    return peak / 2**20


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="demo")
    p.add_argument("--data", default="demo")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--rounds", type=int, default=40, help="timed (plain, case) pairs per case")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: robust on a shared CPU)")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", default=None)
    p.add_argument("--markdown", default=None, help="also write the table to this markdown file")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from transformers.utils import logging as hf_logging

    from engine.tokens import encode_samples, per_token_nll
    from engine.train import RunConfig, prepare, step

    hf_logging.disable_progress_bar()

    def config(loss, selector, **extra):
        return RunConfig(model=args.model, data=args.data, loss=loss, selector=selector, device=args.device,
                         batch_size=args.batch_size, eval_every_epoch=False, save_checkpoints=False, lr=1e-5, **extra)

    plain_state = prepare(config("ga", "all"))
    device = plain_state.device
    idx = list(range(args.batch_size))
    forget = encode_samples(plain_state.tokenizer, [plain_state.forget[i] for i in idx])
    retain = encode_samples(plain_state.tokenizer, plain_state.retain[:args.batch_size])
    plain_batch = forget.to(device)

    def plain_step(s=plain_state, batch=plain_batch):
        logits = s.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits  # (B, T, V)
        loss = -per_token_nll(logits, batch).sum() / batch.label_mask.sum()  # mean NLL over label tokens, ascended
        loss.backward()
        torch.nn.utils.clip_grad_norm_(s.trainable, 1.0)
        s.optimizer.step()
        s.optimizer.zero_grad(set_to_none=True)

    plain_mib = peak_memory(plain_step, device)
    rows = []
    for label, loss, selector, extra in CASES:
        state = prepare(config(loss, selector, **extra))
        micro = [(idx, forget, retain if state.spec.needs_retain(state.loss_kwargs) else None)]

        def case_step(s=state, micro=micro):
            step(s, micro)

        for _ in range(args.warmup):
            plain_step()
            case_step()
        plain_t, case_t = [], []
        for _ in range(args.rounds):
            plain_t.append(timed(plain_step, device))
            case_t.append(timed(case_step, device))
        mib = peak_memory(case_step, device)
        p_med, c_med = statistics.median(plain_t), statistics.median(case_t)
        rows.append({"case": label, "ms": c_med * 1e3, "plain_ms": p_med * 1e3, "time_ratio": c_med / p_med,
                     "peak_mib": mib, "plain_peak_mib": plain_mib, "memory_ratio": mib / plain_mib if plain_mib else None})
        print(f"{label}: {c_med * 1e3:.1f} ms vs plain {p_med * 1e3:.1f} ms (×{c_med / p_med:.3f}), "
              f"{mib:.1f} MiB vs {plain_mib:.1f} MiB", flush=True)
        del state
    head = (f"model {args.model}, data {args.data}, batch {args.batch_size}, {args.rounds} alternating rounds per "
            f"case, device {device}, {torch.get_num_threads()} thread(s), torch {torch.__version__}")
    lines = [head, "", "| step | ms (median) | plain GA ms, same rounds | × plain GA | peak MiB | × plain GA |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        mem = "n/a" if r["memory_ratio"] is None else f"{r['memory_ratio']:.2f}"
        lines.append(f"| {r['case']} | {r['ms']:.1f} | {r['plain_ms']:.1f} | {r['time_ratio']:.3f} | "
                     f"{r['peak_mib']:.1f} | {mem} |")
    ga = rows[0]
    verdict = "within" if ga["time_ratio"] <= 1.05 else "NOT within"
    lines += ["", f"plain GA peak memory: {plain_mib:.1f} MiB",
              f"token-weighted GA: {ga['time_ratio']:.3f}× plain GA time ({verdict} the 1.05× target)", "",
              "What the extra cost is: graddiff, npo and atwu (retain weight α = 1 by default) add a forward and "
              "backward on a retain batch of the same size; npo and tpo read the reference's per-token NLL / "
              "logit from a cache made before the first step (no reference forward); dto runs the frozen "
              "reference forward and a full-vocabulary KL on every step; orthogonalisation takes two backward "
              "passes; atwu also keeps the last hidden states and steps its scorer every 5 steps."]
    text = "\n".join(lines)
    print("\n" + text)
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(f"# Step cost\n\n`python benchmarks/step_cost.py`\n\n{text}\n")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": device, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
