"""The proof, as a benchmark (issue 11, item 6): what a person's correction of the masks costs and buys.

1. Cost on the built-in benchmark (demo/forget10, its ground-truth fact spans): a simulated
   annotator (benchmarks/annotator.py) starts from each selector's default mask, visits samples
   in review-queue order and corrects them with the Edit tab's operations only (toggle, brush,
   whole word, phrase rule, accept) until token-level mask F1 ≥ 0.95; printed per starting
   selector, with and without phrase rules, in all and per forget sample.
2. The same on real text: the hand-marked spans of ../shared/data/tofu_sample/forget_spans_dev.json.
   `lexical` and `all` need no model and see whole answers; the model-based selectors run on the
   built-in target model, which never saw those answers (a stand-in: their masks are as good as
   any poor start, not a measurement), and mark nothing past its context (padded with False).
3. Payoff: the mask set the annotator reached on forget10 (from the starting selector that needed
   the fewest operations with rules) is stored in a temporary store as a mask set and trained
   with the results table's budget (benchmarks/results_table.py: 5 epochs, batch 8, one run per
   lr, the lr kept per method is the one whose run reaches the highest FQ at MU ≥ 0.9 × target
   MU): TPO + retain NLL (`tpo` with alpha = 1) and NPO with the corrected mask, NPO + `all` as
   the baseline, for each seed; prints per seed the best FQ at the MU floor and the ratio
   corrected / NPO + all, then the mean and the min–max of the ratio over seeds.
   The target MU is the step-0 evaluation of the runs (the target model, same retain subset).

    python benchmarks/annotation_cost.py [--part cost|train|all] [--seeds 0,1,2]
        [--lrs 3e-5,1e-4,3e-4,1e-3] [--epochs 5] [--goal 0.95] [--markdown FILE] [--cache FILE]

Finished runs are appended to --cache (JSON lines) and reused when the script is run again with
the same settings; the markdown is rewritten after every run, so a cut-short run leaves its
partial table.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

# the repo root replaces this script's folder on the path: benchmarks/selectors.py would shadow the stdlib module
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from benchmarks.annotator import Case, HonestOutcome, Outcome, simulate, simulate_honest  # noqa: E402

REAL_DATA = Path("/work/shared/data/tofu_sample/forget_spans_dev.json")
SELECTORS = ("all", "lexical", "entropy", "satimp", "dto", "tokenunlearn", "tif", "wga", "atwu")
MODEL_FREE = ("all", "lexical")
FULL_TEXT = 10**6  # no cut: model-free selectors see whole answers
TRAIN_METHODS = [  # (label, RunConfig fields; `mask_set` None: filled with the corrected set)
    ("TPO+RT + corrected", {"loss": "tpo", "loss_params": {"alpha": 1.0}, "selector": None, "mask_set": None}),
    ("NPO + corrected", {"loss": "npo", "selector": None, "mask_set": None}),
    ("NPO + all", {"loss": "npo", "selector": "all"}),
]
BASELINE = "NPO + all"
MASK_SET = "annotated"


def _f(x, digits: int = 3) -> str:
    if x is None:
        return "n/a"
    return f"{x:.2g}" if abs(x) < 1e-2 and x != 0 else f"{x:.{digits}f}"


# ------------------------------------------------------------------ part 1 and 2: the cost

def default_masks(model, tok, samples, names, full_offsets) -> tuple[dict, dict]:
    """{selector: per-sample masks over the whole answer's label positions}, {selector: why not}.
    Model-based selectors see the model's context; their masks are padded with False past it
    (the closing EOS stays last)."""
    from engine.masks.votes import selector_label_masks

    masks, unavailable = {}, {}
    for name in names:
        got, why = selector_label_masks(model, tok, samples, [name],
                                        max_length=FULL_TEXT if name in MODEL_FREE else None)
        unavailable.update(why)
        if name not in got:
            continue
        rows = []
        for m, full in zip(got[name], full_offsets):
            pad = len(full) - len(m)
            rows.append(list(m[:-1]) + [False] * pad + [False] if pad > 0 else list(m))
        masks[name] = rows
    return masks, unavailable


def honest_table(title: str, cases: list[Case], masks: dict) -> tuple[list[str], dict[str, HonestOutcome]]:
    """Markdown lines and {selector: HonestOutcome (with rules)} for every starting selector: the honest
    annotator (benchmarks/annotator.py `HonestAnnotator`) reviews every sample; the figure is
    (edits + accepts) / samples; F1 against operations spent after 25 / 50 / 75 / 100 % of the samples."""
    n = len(cases)
    lines = [f"### {title}: honest annotator", "",
             f"{n} forget samples, all reviewed in review-queue order. It sees the current masks, the text, and the "
             f"spans of the sample in front of it only; a phrase rule needs the phrase seen with the rule's value "
             f"in ≥ 2 reviewed samples and contrary in none. Figure = (edits + accepts) / samples.", "",
             "| start | start F1 | F1 reached | edits with rules (rule / brush / word / toggle) | (edits + accepts) "
             "/ sample | F1 at 25 / 50 / 75 % of samples (operations) | edits without rules | (edits + accepts) / "
             "sample, no rules | F1 reached, no rules |",
             "|---|---|---|---|---|---|---|---|---|"]
    outcomes = {}
    for name, base in masks.items():
        t0 = time.perf_counter()
        o = simulate_honest(cases, base, masks, use_rules=True)
        h = simulate_honest(cases, base, masks, use_rules=False)
        outcomes[name] = o
        pts = [o.curve[max(1, round(q * n))] for q in (0.25, 0.5, 0.75)]
        r = o.ops
        lines.append(f"| `{name}` | {o.start_f1:.3f} | {o.f1:.3f} | {o.edits} ({r['rule']} / {r['brush']} / "
                     f"{r['word']} / {r['toggle']}) | {o.per_sample(n):.2f} | "
                     + " / ".join(f"{f:.3f} ({k})" for k, f in pts)
                     + f" | {h.edits} | {h.per_sample(n):.2f} | {h.f1:.3f} |")
        print(lines[-1] + f"  [{time.perf_counter() - t0:.1f} s]", flush=True)
    best = min(outcomes, key=lambda k: outcomes[k].operations)
    o = outcomes[best]
    lines += ["", f"Fewest operations: from `{best}`, {o.edits} edits + {o.accepts} accepts = "
              f"{o.per_sample(n):.2f} per sample, F1 {o.start_f1:.3f} → {o.f1:.3f}. Its rules: "
              + (", ".join(f"{'+' if x.target else '−'}\"{x.phrase}\"" for x in o.rules[:12]) or "none")
              + (" …" if len(o.rules) > 12 else ""), ""]
    return lines, outcomes


def cost_table(title: str, cases: list[Case], masks: dict, goal: float) -> tuple[list[str], dict[str, dict]]:
    """Markdown lines and {selector: {"rules": Outcome, "hand": Outcome}} for every starting selector,
    by the ORACLE annotator (it peeks: rules judged on unseen samples, stops on global F1)."""
    n = len(cases)
    lines = [f"### {title}: oracle annotator (peeks; a lower bound, not the figure)", "",
             f"{n} forget samples, {sum(sum(t) for t in (c.truth for c in cases))} target tokens of "
             f"{sum(sum(a >= 0 for a, _ in c.offsets) for c in cases)}. Edits = toggle + brush + word + rule; "
             f"accepts counted apart (a sample reviewed and accepted). Goal: token F1 ≥ {goal}.", "",
             "| start | start F1 | edits with rules (rule / brush / word / toggle) | edits / sample | "
             "+ accepts / sample | samples reviewed | edits without rules (brush / word / toggle) | "
             "edits / sample | + accepts / sample | samples reviewed |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    outcomes = {}
    for name, base in masks.items():
        t0 = time.perf_counter()
        with_rules = simulate(cases, base, masks, use_rules=True, goal=goal)
        by_hand = simulate(cases, base, masks, use_rules=False, goal=goal)
        outcomes[name] = {"rules": with_rules, "hand": by_hand}
        r, h = with_rules.ops, by_hand.ops
        lines.append(
            f"| `{name}` | {with_rules.start_f1:.3f} | {with_rules.edits} ({r['rule']} / {r['brush']} / {r['word']} / "
            f"{r['toggle']}) | {with_rules.edits / n:.2f} | {(with_rules.edits + with_rules.accepts) / n:.2f} | "
            f"{len(with_rules.reviewed)} | {by_hand.edits} ({h['brush']} / {h['word']} / {h['toggle']}) | "
            f"{by_hand.edits / n:.2f} | {(by_hand.edits + by_hand.accepts) / n:.2f} | {len(by_hand.reviewed)} |")
        print(lines[-1] + f"  [{time.perf_counter() - t0:.1f} s]", flush=True)
    best = min(outcomes, key=lambda k: (outcomes[k]["rules"].edits, outcomes[k]["rules"].accepts))
    o = outcomes[best]["rules"]
    lines += ["", f"Fewest edits with rules: from `{best}`, {o.edits} edits ({o.edits / n:.2f} per sample; "
              f"{(o.edits + o.accepts) / n:.2f} with accepts), final F1 {o.f1:.3f}; target ≤ 1 per sample: "
              f"{'met' if o.edits / n <= 1 else 'NOT met'} (edits), "
              f"{'met' if (o.edits + o.accepts) / n <= 1 else 'NOT met'} (edits + accepts). Its rules: "
              + ", ".join(f"{'+' if x.target else '−'}\"{x.phrase}\"" for x in o.rules[:12])
              + (" …" if len(o.rules) > 12 else ""), ""]
    return lines, outcomes


def forget10_cost(model, tok, data: str, goal: float):
    from engine.masks import label_offsets
    from engine.resolve import load_data

    samples = load_data(data).forget
    offsets = label_offsets(tok, samples)
    masks, unavailable = default_masks(model, tok, samples, SELECTORS, offsets)
    cases = [Case(s.answer, o, list(s.spans)) for s, o in zip(samples, offsets)]
    honest, _ = honest_table(f"Built-in benchmark ({data}, ground-truth fact spans)", cases, masks)
    lines, outcomes = cost_table(f"Built-in benchmark ({data}, ground-truth fact spans)", cases, masks, goal)
    lines = honest + lines
    lines += [f"Unavailable: `{k}` ({v})" for k, v in unavailable.items()]
    return samples, offsets, lines, outcomes


def real_text_cost(model, tok, path: Path, goal: float):
    from engine.data import load_file
    from engine.masks import label_offsets

    samples = load_file(path)
    full = label_offsets(tok, samples, max_length=FULL_TEXT)
    masks, unavailable = default_masks(model, tok, samples, SELECTORS, full)
    cases = [Case(s.answer, o, list(s.spans)) for s, o in zip(samples, full)]
    honest, _ = honest_table(f"Real text ({path.name}, hand-marked spans)", cases, masks)
    lines, _ = cost_table(f"Real text ({path.name}, hand-marked spans)", cases, masks, goal)
    lines = honest + lines
    lines[2:2] = [f"Model-based starts use the built-in target model, which never saw these answers (a stand-in), "
                  f"and mark nothing past its context of {tok.model_max_length} tokens; `lexical` and `all` need "
                  f"no model and see whole answers.", ""]
    lines += [f"Unavailable: `{k}` ({v})" for k, v in unavailable.items()]
    return lines


# ------------------------------------------------------------------ part 3: the payoff

def store_mask_set(store, tok, samples, masks, model: str, data: str, source: str) -> None:
    from engine.fingerprint import text_hash, tokenizer_fingerprint

    store.create_mask_set(MASK_SET, model, data, tokenizer_fingerprint(tok), source_selector=source,
                          masks={s.uid: (text_hash(s.question, s.answer), [int(v) for v in m])
                                 for s, m in zip(samples, masks)})


def run_key(label: str, lr: float, seed: int, epochs: int, mask_digest: str) -> str:
    return json.dumps([label, lr, seed, epochs, mask_digest if "corrected" in label else None])


def pick(sweep: list[dict]) -> dict | None:
    """The results table's rule: the run with the highest FQ at MU ≥ floor (ties: higher MU)."""
    ok = [s for s in sweep if s.get("best_at_mu")]
    if not ok:
        return None
    return max(ok, key=lambda s: (s["best_at_mu"]["forget_quality"] or 0, s["best_at_mu"]["model_utility"] or 0))


def train_section(runs: dict, lrs, seeds, epochs: int, note: str) -> list[str]:
    """Markdown: per seed the chosen lr and best FQ at the floor per method, the ratios; then the summary."""
    from benchmarks.results_table import MU_FRACTION, summarise

    lines = ["## Payoff: training the corrected mask set", "", note, "",
             "| seed | method | lr kept | best FQ at MU ≥ floor (epoch, MU) | ratio to NPO + all |",
             "|---|---|---|---|---|"]
    ratios: dict[str, list[float]] = {lbl: [] for lbl, _ in TRAIN_METHODS if lbl != BASELINE}
    done = 0
    for seed in seeds:
        chosen = {}
        for label, _ in TRAIN_METHODS:
            sweep = []
            for lr in lrs:
                r = runs.get((label, lr, seed))
                if r is None:
                    continue
                floor = MU_FRACTION * r["history"][0]["model_utility"]
                sweep.append({"lr": lr, **summarise(r["history"], floor)})
                done += 1
            chosen[label] = (pick(sweep), len(sweep))
        base = chosen[BASELINE][0]
        base_fq = base and base["best_at_mu"]["forget_quality"]
        for label, _ in TRAIN_METHODS:
            c, n = chosen[label]
            if c is None:
                lines.append(f"| {seed} | {label} | – | {'none kept' if n else 'not run yet'} ({n}/{len(lrs)} lrs) | – |")
                continue
            k = c["best_at_mu"]
            ratio = None
            if label != BASELINE and base_fq and chosen[BASELINE][1] == len(lrs) and n == len(lrs):
                ratio = k["forget_quality"] / base_fq
                ratios[label].append(ratio)
            partial = "" if n == len(lrs) else f" ({n}/{len(lrs)} lrs so far)"
            lines.append(f"| {seed} | {label} | {c['lr']:g} | {_f(k['forget_quality'])} (epoch {k['epoch']}, MU "
                         f"{_f(k['model_utility'])}){partial} | {'–' if ratio is None else f'{ratio:.3g}×'} |")
    lines += ["", "Ratio to NPO + all over the seeds with every lr finished (target ≥ 10×). The ratios span orders "
              "of magnitude, so the geometric mean and the median are given beside the arithmetic mean, which one "
              "seed can dominate; the verdict counts seeds:", ""]
    for label, rs in ratios.items():
        if rs:
            geo = math.exp(statistics.mean(math.log(r) for r in rs)) if all(r > 0 for r in rs) else 0.0
            lines.append(f"- {label}: mean {statistics.mean(rs):.3g}×, geometric mean {geo:.3g}×, median "
                         f"{statistics.median(rs):.3g}×, min {min(rs):.3g}×, max {max(rs):.3g}× over {len(rs)} seed(s); "
                         f"≥ 10× in {sum(r >= 10 for r in rs)} of {len(rs)} seeds")
        else:
            lines.append(f"- {label}: no finished seed yet")
    lines += ["", f"{done} of {len(TRAIN_METHODS) * len(lrs) * len(seeds)} runs finished.", "",
              "Every run: best FQ with MU ≥ floor (epoch), final FQ / MU.", "",
              "| seed | method | lr | best FQ at floor (epoch) | final FQ, MU | seconds |", "|---|---|---|---|---|---|"]
    for seed in seeds:
        for label, _ in TRAIN_METHODS:
            for lr in lrs:
                r = runs.get((label, lr, seed))
                if r is None:
                    continue
                s = summarise(r["history"], MU_FRACTION * r["history"][0]["model_utility"])
                k, f = s["best_at_mu"], s["final"]
                kept = "none" if k is None else f"{_f(k['forget_quality'])} ({k['epoch']})"
                lines.append(f"| {seed} | {label} | {lr:g} | {kept} | "
                             f"{_f(f['forget_quality'])}, {_f(f['model_utility'])} | {r['seconds']:.0f} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("cost", "train", "all"), default="all")
    ap.add_argument("--data", default="demo/forget10")
    ap.add_argument("--model", default="demo")
    ap.add_argument("--real", default=str(REAL_DATA), help="JSON lines with question, answer, spans ('' to skip)")
    ap.add_argument("--goal", type=float, default=0.95, help="token-level mask F1 the annotator stops at")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--lrs", default="3e-5,1e-4,3e-4,1e-3", help="the results table's grid")
    ap.add_argument("--lr-note", default="", help="a sentence on why the grid differs from the results table's")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--markdown", default=None, help="write the tables here (rewritten after every run)")
    ap.add_argument("--cache", default=None, help="JSON lines of finished runs, reused on a rerun")
    args = ap.parse_args(argv)

    import hashlib

    import torch
    from transformers.utils import logging as hf_logging

    from engine.models import load_model
    from engine.resolve import model_path

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", message="the answer to .* it is cut")  # real answers past the context
    hf_logging.set_verbosity_error()  # whole real answers exceed the context on purpose for lexical / all
    started = time.perf_counter()
    head = ["# Annotation cost and payoff", "",
            f"`python benchmarks/annotation_cost.py {' '.join(sys.argv[1:] if argv is None else argv)}`", "",
            f"Simulated annotator: benchmarks/annotator.py (its docstring states the policy). "
            f"torch {torch.__version__}, 1 thread.", "", "## Cost: the honest annotator reviews every sample; the "
            f"oracle annotator stops at token F1 ≥ {args.goal}", ""]
    model, tok = load_model(model_path(args.model), "cpu")
    samples, offsets, lines, outcomes = forget10_cost(model, tok, args.data, args.goal)
    cost = head + lines
    if args.real and args.part in ("cost", "all"):
        cost += [""] + real_text_cost(model, tok, Path(args.real), args.goal)

    def write(extra: list[str]) -> None:
        text = "\n".join(cost + [""] + extra) + "\n"
        if args.markdown:
            Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
            Path(args.markdown).write_text(text)

    write([])
    print("\n".join(cost), flush=True)
    if args.part == "cost":
        return 0

    from engine.store import Store
    from engine.train import RunConfig, unlearn

    start = min(outcomes, key=lambda k: (outcomes[k]["rules"].edits, outcomes[k]["rules"].accepts))
    reached: Outcome = outcomes[start]["rules"]
    digest = hashlib.sha256(json.dumps(reached.masks).encode()).hexdigest()[:12]
    tmp = tempfile.TemporaryDirectory()
    store = Store(Path(tmp.name) / "store.sqlite")
    store_mask_set(store, tok, samples, reached.masks, args.model, args.data, f"{start}+annotated")
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    lrs = [float(x) for x in args.lrs.split(",") if x.strip()]
    note = (f"Mask set: the one the annotator reached from `{start}` with rules ({reached.edits} edits, "
            f"{len(reached.rules)} rules, token F1 {reached.f1:.3f}; sha256 {digest}). Budget: the results "
            f"table's, {args.epochs} epochs, batch 8, one run per lr in {{{args.lrs}}} per method and seed, the lr "
            f"kept is the one whose run reaches the highest FQ at MU ≥ 0.9 × target MU (ties: higher MU). "
            f"TPO+RT = `tpo` with alpha = 1 (retain NLL), as in the results table. {args.lr_note}").strip()
    runs: dict[tuple, dict] = {}
    cache = Path(args.cache) if args.cache else None
    if cache and cache.exists():
        keys = {run_key(lbl, lr, s, args.epochs, digest): (lbl, lr, s)
                for lbl, _ in TRAIN_METHODS for lr in lrs for s in seeds}
        for line in cache.read_text().splitlines():
            row = json.loads(line)
            if row["key"] in keys:
                runs[keys[row["key"]]] = row
        print(f"reused {len(runs)} cached runs from {cache}", flush=True)
    write(train_section(runs, lrs, seeds, args.epochs, note))
    for seed in seeds:
        for label, fields in TRAIN_METHODS:
            for lr in lrs:
                if (label, lr, seed) in runs:
                    continue
                fields = {**fields, **({"mask_set": MASK_SET} if "mask_set" in fields else {})}
                cfg = RunConfig(model=args.model, data=args.data, seed=seed, save_checkpoints=False, lr=lr,
                                epochs=args.epochs, **fields)
                t = time.perf_counter()
                res = unlearn(cfg, store)
                took = time.perf_counter() - t
                if res.status != "finished":
                    print(f"{label} lr {lr:g} seed {seed}: {res.status}: {res.error}", flush=True)
                    continue
                row = {"key": run_key(label, lr, seed, args.epochs, digest), "seconds": took, "history": res.history}
                runs[(label, lr, seed)] = row
                if cache:
                    with cache.open("a") as fh:
                        fh.write(json.dumps(row, default=str) + "\n")
                section = train_section(runs, lrs, seeds, args.epochs, note)
                write(section + ["", f"{(time.perf_counter() - started) / 60:.0f} min so far."])
                print(f"{label} lr {lr:g} seed {seed}: {took:.0f} s", flush=True)
    section = train_section(runs, lrs, seeds, args.epochs, note)
    trained = sum(r["seconds"] for r in runs.values()) / 60
    write(section + ["", f"Training: {trained:.0f} min (the runs' own seconds, cached ones included); this "
                         f"invocation: {(time.perf_counter() - started) / 60:.0f} min."])
    print("\n".join(section), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
