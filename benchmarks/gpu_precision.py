"""Precision on a GPU (engine.models.device.precision_for): DTO masks with the probe in bf16 vs fp32
on a bf16-loaded model, and how much of an lr-1e-5 AdamW step survives on pure bf16 weights vs fp32
master weights under bf16 autocast. Prints ratios; run with the built-in models built.

    python benchmarks/gpu_precision.py [--device cuda] [--samples 16]
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import time

import torch
from scipy.stats import spearmanr

from engine.data import load_benchmark
from engine.models import load_model
from engine.models.builtin import ensure_builtin
from engine.models.device import precision_for
from engine.selectors import select
from engine.tokens import encode_samples, per_token_nll
import engine.selectors.dto as dto


def jaccard(a, b) -> float:
    return float((a & b).sum()) / max(1.0, float((a | b).sum()))


def dto_rows(model, tok, samples, fp32_probe: bool):
    saved = dto.computing_in
    if not fp32_probe:  # the old behaviour: the probe runs in the weights' dtype
        dto.computing_in = lambda m, d: contextlib.nullcontext()
    try:
        return select("dto", model, tok, samples)
    finally:
        dto.computing_in = saved


def update_kept(model, batch, precision) -> tuple[float, float]:
    """(share of block weights changed by one AdamW lr-1e-5 step, seconds for the step)."""
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.01)
    model.train()
    t = time.perf_counter()
    with precision.context():
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    (per_token_nll(logits, batch).sum() / batch.label_mask.sum()).backward()
    opt.step()
    if batch.input_ids.is_cuda:
        torch.cuda.synchronize()
    dt = time.perf_counter() - t
    names = [n for n in before if ".h." in n]
    changed = torch.cat([(dict(model.named_parameters())[n].detach() != before[n]).flatten() for n in names])
    return float(changed.float().mean()), dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="auto")
    ap.add_argument("--samples", type=int, default=16)
    args = ap.parse_args()
    b = ensure_builtin()
    samples = load_benchmark(b.data, "forget10").forget[:args.samples]
    ev = precision_for("evaluate", args.device)
    print(f"device {ev.device} ({torch.cuda.get_device_name() if ev.device.startswith('cuda') else 'cpu'}), "
          f"evaluate weights {ev.master}, train {precision_for('train', args.device)}")
    m32, tok = load_model(b.target, ev.device, dtype=torch.float32)
    m16, _ = load_model(b.target, ev.device, dtype=torch.bfloat16)
    ref = select("dto", m32, tok, samples)
    for label, fp32_probe in (("bf16 probe (before)", False), ("fp32 probe (now)", True)):
        out = dto_rows(m16, tok, samples, fp32_probe)
        lm = ref.mask.new_zeros(ref.mask.shape) | encode_samples(tok, samples).answer_mask.to(ref.mask.device)
        rho = spearmanr(ref.scores[lm].float().cpu(), out.scores[lm].float().cpu()).statistic
        print(f"DTO on bf16 weights, {label}: Jaccard of top-30% masks vs fp32 {jaccard(ref.mask, out.mask):.3f}, "
              f"Spearman of Δ {rho:.3f}")
    batch = encode_samples(tok, samples).to(ev.device)
    pure = copy.deepcopy(m16)
    kept_pure, t_pure = update_kept(pure, batch, precision_for("evaluate", args.device))
    master = copy.deepcopy(m32)
    kept_master, t_master = update_kept(master, batch, precision_for("train", args.device))
    print(f"lr 1e-5 AdamW step: pure bf16 weights changed {kept_pure:.1%} (lost {1 - kept_pure:.1%}); "
          f"fp32 master + {precision_for('train', args.device).compute} autocast changed {kept_master:.1%}")
    print(f"step seconds (first step, includes warm-up): pure bf16 {t_pure:.3f}, fp32 master {t_master:.3f}")


if __name__ == "__main__":
    main()
