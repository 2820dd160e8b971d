"""The TOFU-style results table on the built-in benchmark (demo/forget10 by default).

Runs the sequence-level baselines (GA, GradDiff, NPO and open-unlearning's SimNPO, IdkDPO, RMU,
UNDIAL, CE-U, PDU, with the `all` selector; with --cross also on the tif mask) and each seed
method with its paper's default selector (TPO + tif, DTO + dto, ATWU + atwu, GA / NPO +
tokenunlearn; TPO+RT is the TIF code's `tpo_grad_diff` variant, TPO plus a retain NLL term),
all with the same budget (epochs, batch size) and their default hyper-parameters, evaluating after every epoch. Prints, as a markdown table, forget quality
(FQ) and model utility (MU) at the best-FQ epoch and at the final epoch, the best FQ among
epochs that keep MU ≥ 0.9 × the target model's, and the target and retain model rows; writes
the same as JSON. Methods whose selector is not registered are listed as skipped.

    python benchmarks/results_table.py [--data demo/forget10] [--epochs 10] [--lrs 1e-4,3e-4,1e-3] [--oracle]
                                       [--only tpo+tif,ga] [--threads 1] [--json FILE] [--markdown FILE]

Tuning, the same for every method: each method runs once per learning rate in --lrs (same
epochs, batch size, seed) and the table keeps, per method, the learning rate whose run reaches
the highest FQ at MU ≥ the floor (ties: the higher MU). Every run is in the JSON.

Runs are recorded in a temporary store (or --store PATH) with checkpoints off.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

# the repo root replaces this script's folder on the path: benchmarks/selectors.py would shadow the stdlib module
sys.path[0] = str(Path(__file__).resolve().parent.parent)

# (label, RunConfig fields); the baselines use the sequence-level `all` selector
METHODS = [
    ("GA", {"loss": "ga", "selector": "all"}),
    ("GradDiff", {"loss": "graddiff", "selector": "all"}),
    ("NPO", {"loss": "npo", "selector": "all"}),
    # open-unlearning's other trainers, sequence-level (`all`) as there, their defaults
    ("SimNPO", {"loss": "simnpo", "selector": "all"}),
    ("IdkDPO", {"loss": "dpo", "selector": "all"}),
    ("RMU", {"loss": "rmu", "selector": "all"}),
    ("UNDIAL", {"loss": "undial", "selector": "all"}),
    ("CE-U", {"loss": "ceu", "selector": "all"}),
    ("PDU", {"loss": "pdu", "selector": "all"}),
    ("TPO + tif", {"loss": "tpo", "selector": "tif"}),
    ("TPO+RT + tif", {"loss": "tpo", "selector": "tif", "loss_params": {"alpha": 1.0}}),
    ("DTO + dto", {"loss": "dto", "selector": "dto"}),
    ("ATWU + atwu", {"loss": "atwu", "selector": "atwu"}),
    ("GA + tokenunlearn", {"loss": "ga", "selector": "tokenunlearn"}),
    ("NPO + tokenunlearn", {"loss": "npo", "selector": "tokenunlearn"}),
]
ORACLE_METHODS = [  # upper-bound references: the ground-truth fact spans as the mask
    ("TPO + oracle", {"loss": "tpo", "selector": "oracle"}),
    ("TPO+RT + oracle", {"loss": "tpo", "selector": "oracle", "loss_params": {"alpha": 1.0}}),
    ("DTO + oracle", {"loss": "dto", "selector": "oracle"}),
    ("NPO + oracle", {"loss": "npo", "selector": "oracle"}),
]
CROSS_METHODS = [  # one paper's loss with another paper's selector: still token-level, no ground truth
    ("TPO+RT + dto", {"loss": "tpo", "selector": "dto", "loss_params": {"alpha": 1.0}}),
    ("TPO+RT + entropy", {"loss": "tpo", "selector": "entropy", "loss_params": {"alpha": 1.0}}),
    ("NPO + dto", {"loss": "npo", "selector": "dto"}),
    ("SimNPO + tif", {"loss": "simnpo", "selector": "tif"}),  # open-unlearning's losses on a token mask
    ("IdkDPO + tif", {"loss": "dpo", "selector": "tif"}),
    ("RMU + tif", {"loss": "rmu", "selector": "tif"}),
    ("UNDIAL + tif", {"loss": "undial", "selector": "tif"}),
    ("CE-U + tif", {"loss": "ceu", "selector": "tif"}),
    ("PDU + tif", {"loss": "pdu", "selector": "tif"}),
]
BASELINES = ("GA", "GradDiff", "NPO", "SimNPO", "IdkDPO", "RMU", "UNDIAL", "CE-U", "PDU")
MU_FRACTION = 0.9


def _f(x, digits: int = 3) -> str:
    if x is None:
        return "n/a"
    return f"{x:.2g}" if abs(x) < 1e-2 and x != 0 else f"{x:.{digits}f}"


def summarise(history: list[dict], mu_floor: float | None) -> dict:
    """Best-FQ epoch and final epoch (epochs ≥ 1), and the best FQ among all epochs, step 0
    included (stopping before any step is always allowed), whose MU ≥ mu_floor."""
    scored = [m for m in history if m.get("forget_quality") is not None]
    trained = [m for m in scored if m["epoch"] >= 1]
    if not trained:
        return {}
    best = max(trained, key=lambda m: m["forget_quality"])
    final = trained[-1]
    kept = [m for m in scored if mu_floor is not None and (m.get("model_utility") or 0) >= mu_floor]
    kept_best = max(kept, key=lambda m: m["forget_quality"]) if kept else None
    pick = lambda m: None if m is None else {k: m.get(k) for k in  # noqa: E731
                                             ("epoch", "forget_quality", "model_utility", "forget_probability")}
    return {"best": pick(best), "final": pick(final), "best_at_mu": pick(kept_best)}


def model_row(name: str, model_spec: str, data: str, ref, retain_size: int) -> dict:
    from engine.eval.full import evaluate
    from engine.models import load_model
    from engine.resolve import load_data, model_path

    bench = load_data(data)
    r = evaluate(*load_model(model_path(model_spec)), bench, ref, retain_size=retain_size)
    return {"forget_quality": r.forget_quality, "model_utility": r.model_utility,
            "forget_probability": r.components["forget_probability"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="demo/forget10")
    p.add_argument("--model", default="demo")
    p.add_argument("--epochs", type=int, default=None, help="default: RunConfig's")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lrs", default="1e-4,3e-4,1e-3", help="learning rates tried for every method")
    p.add_argument("--oracle", action="store_true", help="add TPO / DTO / NPO with the oracle (fact-span) mask")
    p.add_argument("--cross", action="store_true", help="add cross pairings (TPO+RT or NPO with dto / entropy, "
                   "open-unlearning's losses with tif)")
    p.add_argument("--only", default=None, help="comma-separated method labels (lower case, no spaces)")
    p.add_argument("--store", default=None, help="SQLite store to record the runs in (default: a temporary one)")
    p.add_argument("--batch-size", type=int, default=None, help="default: RunConfig's")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: robust on a shared CPU)")
    p.add_argument("--json", default="results_table.json")
    p.add_argument("--markdown", default=None, help="also write the table and its settings to this file")
    args = p.parse_args()

    import torch
    from transformers.utils import logging as hf_logging

    from engine.eval.full import reference_truth_ratios
    from engine.resolve import load_data, model_path, retain_model_for
    from engine.selectors import SELECTORS
    from engine.store import Store
    from engine.train import RunConfig, unlearn

    torch.set_num_threads(args.threads)
    hf_logging.disable_progress_bar()
    started = time.perf_counter()
    tmp = tempfile.TemporaryDirectory()
    store = Store(Path(args.store) if args.store else Path(tmp.name) / "store.sqlite")
    bench = load_data(args.data)
    retain_spec = retain_model_for(args.model, args.data)
    ref = reference_truth_ratios(model_path(retain_spec), bench) if retain_spec else None
    defaults = RunConfig()
    retain_size = defaults.retain_eval_size
    rows = {"target model": model_row("target", args.model, args.data, ref, retain_size)}
    if retain_spec:
        rows["retain model"] = model_row("retain", retain_spec, args.data, ref, retain_size)
    target_mu = rows["target model"]["model_utility"]
    mu_floor = MU_FRACTION * target_mu if target_mu is not None else None
    wanted = None if not args.only else {s.strip() for s in args.only.split(",")}
    results, skipped = {}, []
    lrs = [float(x) for x in args.lrs.split(",") if x.strip()]
    for label, fields in METHODS + (ORACLE_METHODS if args.oracle else []) + (CROSS_METHODS if args.cross else []):
        key = label.lower().replace(" ", "")
        if wanted and key not in wanted:
            continue
        if fields["selector"] not in SELECTORS:
            skipped.append(f"{label} (selector {fields['selector']!r} not registered)")
            continue
        sweep = []
        for lr in lrs:
            cfg = RunConfig(model=args.model, data=args.data, seed=args.seed, save_checkpoints=False, lr=lr, **fields)
            if args.epochs:
                cfg.epochs = args.epochs
            if args.batch_size:
                cfg.batch_size = args.batch_size
            t = time.perf_counter()
            res = unlearn(cfg, store)
            took = time.perf_counter() - t
            if res.status != "finished":
                skipped.append(f"{label} at lr {lr} ({res.status}: {res.error})")
                continue
            s = {"lr": lr, "run_id": res.run_id, "seconds": round(took, 1), **summarise(res.history, mu_floor),
                 "history": res.history}
            sweep.append(s)
            k = s["best_at_mu"]
            print(f"{label} lr {lr:g}: best FQ {_f(s['best']['forget_quality'])} (epoch {s['best']['epoch']}, "
                  f"MU {_f(s['best']['model_utility'])}); at MU floor {_f(k and k['forget_quality'])}; "
                  f"final FQ {_f(s['final']['forget_quality'])} MU {_f(s['final']['model_utility'])}  [{took:.0f} s]",
                  flush=True)
        if sweep:
            rank = lambda s: ((s["best_at_mu"] or {}).get("forget_quality") or 0,  # noqa: E731
                              (s["best_at_mu"] or {}).get("model_utility") or 0)
            chosen = max(sweep, key=rank)
            results[label] = {**chosen, "sweep": sweep}

    epochs = args.epochs or defaults.epochs
    batch = args.batch_size or defaults.batch_size
    out = [f"{args.model} on {bench.name}: every method gets the same budget: {epochs} epochs, batch {batch}, "
           f"seed {args.seed}, one run per lr in {{{args.lrs}}}, its other hyper-parameters at their defaults; "
           f"the lr kept per method is the one whose run reaches the highest FQ at MU ≥ the floor. "
           f"Evaluation after every epoch (retain subset {retain_size}, greedy answers ≤ "
           f"{defaults.eval_max_new_tokens} tokens). MU floor = {MU_FRACTION} × target MU = {_f(mu_floor)}. "
           f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
           f"{(time.perf_counter() - started) / 60:.0f} min in all.", "",
           "| method | lr | FQ (best epoch) | MU (best epoch) | best epoch | FQ (final) | MU (final) | "
           f"best FQ with MU ≥ {_f(mu_floor)} |", "|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        out.append(f"| {name} | – | {_f(r['forget_quality'])} | {_f(r['model_utility'])} | – | – | – | – |")
    for label, s in results.items():
        b, f, k = s["best"], s["final"], s["best_at_mu"]
        kept = "none" if k is None else f"{_f(k['forget_quality'])} (epoch {k['epoch']}, MU {_f(k['model_utility'])})"
        out.append(f"| {label} | {s['lr']:g} | {_f(b['forget_quality'])} | {_f(b['model_utility'])} | {b['epoch']} | "
                   f"{_f(f['forget_quality'])} | {_f(f['model_utility'])} | {kept} |")
    out += [f"skipped: {s}" for s in skipped]
    base = [s["best_at_mu"]["forget_quality"] for lbl, s in results.items() if lbl in BASELINES and s["best_at_mu"]]
    token = [(s["best_at_mu"]["forget_quality"], lbl) for lbl, s in results.items()
             if lbl not in BASELINES and "oracle" not in lbl and s["best_at_mu"]]
    verdict = None
    if token:
        best_token, best_label = max(token)
        best_base = max(base) if base else None
        ratio = best_token / best_base if best_base else None
        verdict = {"best_token_method": best_label, "best_token_fq": best_token, "best_baseline_fq": best_base,
                   "ratio": ratio, "target_met": ratio is not None and ratio >= 10}
        out += ["", f"At MU ≥ {_f(mu_floor)}: best token-level method {best_label}, FQ {_f(best_token)}, vs best "
                f"baseline FQ {_f(best_base)}" + ("" if ratio is None else
                                                   f" (×{ratio:.3g}; target ≥ 10×: {'met' if ratio >= 10 else 'NOT met'})")]
    out += ["", "Every run (lr sweep): FQ / MU at the best-FQ epoch and at the final epoch.", "",
            "| method | lr | best FQ (epoch, MU) | final FQ, MU | best FQ with MU ≥ floor | seconds |",
            "|---|---|---|---|---|---|"]
    for label, s in results.items():
        for r in s["sweep"]:
            b, f, k = r["best"], r["final"], r["best_at_mu"]
            kept = "none" if k is None else f"{_f(k['forget_quality'])} (epoch {k['epoch']})"
            out.append(f"| {label} | {r['lr']:g} | {_f(b['forget_quality'])} ({b['epoch']}, {_f(b['model_utility'])}) | "
                       f"{_f(f['forget_quality'])}, {_f(f['model_utility'])} | {kept} | {r['seconds']:.0f} |")
    text = "\n".join(out)
    print("\n" + text)
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(f"# Results table\n\n`python benchmarks/results_table.py {' '.join(sys.argv[1:])}`"
                                       f"\n\n{text}\n")
    Path(args.json).write_text(json.dumps({"data": bench.name, "model": args.model, "mu_floor": mu_floor,
                                           "models": rows, "methods": results, "skipped": skipped,
                                           "verdict": verdict}, indent=2, default=str))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
