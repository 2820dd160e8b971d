"""The share of a default run's time spent evaluating, on the built-in model (CPU), and the
evaluation's metrics against the values stored from the evaluation path before issue 15.

    python benchmarks/eval_share.py [--epochs 10] [--eval-every N] [--threads 2] [--skip-check]
                                    [--skip-subsample-check]

1. Check: the target model's step-0 metrics and those of a deterministically perturbed copy
   (every weight + 0.02·N(0,1), seed 1), computed by today's `evaluate_state`, against
   benchmarks/results/eval_reference_before.json (written by the old path): max |difference|.
2. Share: one default `unlearn` run (RunConfig defaults except the flags above, no checkpoints)
   with the step-0 cache warm (a first run fills it); evaluation seconds (every `evaluate_state`
   call, timed) over the run's seconds. Target: ≤ 0.30. Without --eval-every: the default
   `RunConfig.eval_every`, and also eval_every=1 when the default is another N. The default run
   evaluates ROUGE on `RunConfig.eval_rouge_rows` seeded rows per split between step 0 and the
   last epoch (issue 23); also printed: one per-epoch (subsampled) evaluation's seconds over the run's,
   the subsampled and the full evaluations' seconds, and the seconds per part of the evaluation over
   the whole run (`eval_profile.PARTS`: prefill, continuation scoring, greedy decode, ROUGE, ...).
3. Subsample check: three default runs (GA, NPO, TPO + tif); at every subsampled epoch the
   same weights are also evaluated on every row: max |MU(subsample) − MU(full)| (target ≤ 0.02)
   and max |fact leak rate(subsample) − fact leak rate(full)|, then every epoch's pair.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parent.parent)
sys.path.append(str(Path(__file__).resolve().parent))  # eval_profile (last: benchmarks/selectors.py is no stdlib)

import torch  # noqa: E402

REFERENCE = Path(__file__).resolve().parent / "results" / "eval_reference_before.json"


def numbers(m: dict) -> dict:
    return {k: v for k, v in m.items() if isinstance(v, (int, float)) or v is None}


def check_metrics() -> float:
    from engine.train.evaluation import eval_context, evaluate_state
    from engine.train import RunConfig, prepare

    ref = json.loads(REFERENCE.read_text())
    state = prepare(RunConfig(epochs=1, device="cpu"))
    ctx = eval_context(state)
    got = {"target_step0": numbers(evaluate_state(state, ctx))}
    with torch.no_grad():
        g = torch.Generator().manual_seed(1)
        for p in state.model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.02)
    got["perturbed"] = numbers(evaluate_state(state, ctx))
    worst = 0.0
    for case in ("target_step0", "perturbed"):
        for k, v in ref[case].items():
            if v is None or got[case].get(k) is None:
                assert v is None and got[case].get(k) is None, (case, k)
                continue
            worst = max(worst, abs(v - got[case][k]))
    return worst


def share(epochs: int, eval_every: int) -> dict:
    from engine.train import evaluation as eval_run
    from engine.store import Store
    from engine.train import RunConfig, loop, unlearn

    from eval_profile import wrap_parts

    spent, sub = [], []
    parts: dict = defaultdict(float)
    names = wrap_parts(parts)  # seconds per part over every evaluation of the run
    real = eval_run.evaluate_state

    def timed(*a, **k):
        t = time.perf_counter()
        out = real(*a, **k)
        spent.append(time.perf_counter() - t)
        if out.get("subsampled"):
            sub.append(spent[-1])
        return out

    loop.evaluate_state = timed
    cfg = RunConfig(epochs=epochs, device="cpu", save_checkpoints=False, eval_every=eval_every)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "store.sqlite")
        unlearn(RunConfig(epochs=1, device="cpu", save_checkpoints=False, max_steps=1), store)  # warms the cache
        spent.clear()
        parts.clear()
        result = unlearn(cfg, store)
    loop.evaluate_state = real
    assert result.status == "finished", result.error
    return {"run_s": result.seconds, "eval_s": sum(spent), "evaluations": len(spent),
            "eval_every": cfg.eval_every, "epochs": epochs, "share": sum(spent) / result.seconds,
            "subsampled": len(sub), "one_subsampled_s": sum(sub) / max(1, len(sub)),
            "train_s": result.seconds - sum(spent), "sub_s": sum(sub),
            "parts": {n: parts[n] for n in names if n in parts}}


def subsample_check(epochs: int) -> list[dict]:
    """Per run (GA, NPO, TPO + tif; RunConfig defaults otherwise): per subsampled epoch, MU on the
    subsample and MU of the same weights on every row."""
    from engine.train import evaluation as eval_run
    from engine.store import Store
    from engine.train import RunConfig, loop, unlearn

    real = eval_run.evaluate_state
    out = []
    for loss, selector in (("ga", "all"), ("npo", "all"), ("tpo", "tif")):
        pairs, leaks = [], []

        def both(state, ctx, *a, rouge_rows=None, **k):
            m = real(state, ctx, *a, rouge_rows=rouge_rows, **k)
            if m.get("subsampled"):
                full = real(state, ctx)
                pairs.append((m["model_utility"], full["model_utility"]))
                leaks.append((m.get("fact_leak_rate"), full.get("fact_leak_rate")))
            return m
        loop.evaluate_state = both
        try:
            with tempfile.TemporaryDirectory() as tmp:
                result = unlearn(RunConfig(loss=loss, selector=selector, epochs=epochs, device="cpu",
                                           save_checkpoints=False), Store(Path(tmp) / "store.sqlite"))
        finally:
            loop.evaluate_state = real
        assert result.status == "finished", result.error
        worst = max(abs(a - b) for a, b in pairs)
        leak = [abs(a - b) for a, b in leaks if a is not None and b is not None]
        out.append({"run": f"{loss}+{selector}", "epochs": len(pairs), "max_abs_mu_diff": worst,
                    "pairs": pairs, "max_abs_leak_diff": max(leak) if leak else None, "leaks": leaks})
    return out


def _f(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--eval-every", type=int, default=None, help="default: RunConfig's")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-check", action="store_true")
    ap.add_argument("--skip-subsample-check", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if not args.skip_check:
        print(f"metrics vs the old path (stored): max |diff| = {check_metrics():.2e} (target ≤ 1e-6)")
    from engine.train import RunConfig

    default = RunConfig().eval_every
    for n in [args.eval_every] if args.eval_every else [default] + ([1] if default != 1 else []):
        s = share(args.epochs, n)
        label = "default run" if n == default else "default run with"
        print(f"{label}, {s['epochs']} epochs, eval_every={n}: {s['evaluations']} evaluations (step 0 from the "
              f"cache), {s['eval_s']:.1f} s of {s['run_s']:.1f} s -> evaluation share {s['share']:.2f} (target ≤ 0.30)")
        print(f"  ROUGE subsample {RunConfig().eval_rouge_rows} rows/split: {s['subsampled']} subsampled evaluations, "
              f"{s['one_subsampled_s']:.1f} s each = {s['one_subsampled_s'] / s['run_s']:.2f} of the run, "
              f"{s['sub_s']:.1f} s together = {s['sub_s'] / s['run_s']:.2f}; full evaluations (last, best) "
              f"{s['eval_s'] - s['sub_s']:.1f} s = {(s['eval_s'] - s['sub_s']) / s['run_s']:.2f}; "
              f"training + loading + saving {s['train_s']:.1f} s")
        print("  evaluation seconds by part (rouge_l_recall also inside token_level_metrics): "
              + ", ".join(f"{k} {v:.1f}" for k, v in s["parts"].items())
              + f", other {s['eval_s'] - sum(v for k, v in s['parts'].items() if k != 'rouge_l_recall'):.1f}")
    if not args.skip_subsample_check:
        for r in subsample_check(args.epochs):
            print(f"subsample check {r['run']}: {r['epochs']} subsampled epochs, max |MU(sub) - MU(full)| = "
                  f"{r['max_abs_mu_diff']:.4f} (target ≤ 0.02); max |leak rate(sub) - leak rate(full)| = "
                  f"{r['max_abs_leak_diff'] if r['max_abs_leak_diff'] is None else round(r['max_abs_leak_diff'], 4)}")
            print("  per epoch (MU sub, MU full; leak sub, leak full): " + "; ".join(
                f"{a:.4f}, {b:.4f}; {_f(c)}, {_f(d)}" for (a, b), (c, d) in zip(r["pairs"], r["leaks"])))


if __name__ == "__main__":
    main()
