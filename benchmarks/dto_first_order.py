"""Agreement of DTO's first-order score with the exact probe step, on the built-in target model.

For the first `--samples` forget questions, Δ from `select_dto(method="exact")` and
`select_dto(method="first_order")` (same probe_lr). Per sample, over its answer tokens: the
Spearman rank correlation of the two Δ rows, and the Jaccard index of the two default masks
(top-30 %). Prints the mean, the minimum and the time of each form.

    python benchmarks/dto_first_order.py [--samples 40] [--probe-lr 0.01] [--threads 2]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parent.parent)

import torch  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from engine.models import load_model  # noqa: E402
from engine.resolve import load_data, model_path  # noqa: E402
from engine.selectors import select  # noqa: E402
from engine.tokens import encode_samples  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=40)
    ap.add_argument("--probe-lr", type=float, default=1e-2)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model, tok = load_model(model_path("demo"), "cpu")
    samples = load_data("demo").forget[:a.samples]
    batch = encode_samples(tok, samples)
    out, secs = {}, {}
    for method in ("exact", "first_order"):
        t = time.perf_counter()
        out[method] = select("dto", model, tok, samples, batch=batch, method=method, probe_lr=a.probe_lr)
        secs[method] = time.perf_counter() - t
    rho, jac = [], []
    for i in range(len(samples)):
        keep = batch.answer_mask[i]
        e, f = out["exact"].scores[i][keep], out["first_order"].scores[i][keep]
        if keep.sum() > 2:
            rho.append(spearmanr(e.numpy(), f.numpy()).statistic)
        me, mf = out["exact"].mask[i][keep], out["first_order"].mask[i][keep]
        jac.append(((me & mf).sum() / (me | mf).sum().clamp(min=1)).item())
    print(f"built-in target model, {len(samples)} forget samples, probe_lr {a.probe_lr}")
    print(f"Spearman ρ of Δ per sample: mean {statistics.mean(rho):.3f}, min {min(rho):.3f}")
    print(f"Jaccard of the top-30 % masks: mean {statistics.mean(jac):.3f}, min {min(jac):.3f}")
    print(f"time: exact {secs['exact']:.1f} s, first order {secs['first_order']:.1f} s")


if __name__ == "__main__":
    main()
