"""The real-text selector table: token- and word-level P/R/F1/AUROC of every selector's default
mask (`lexical` and `all` included) against the hand-marked spans of 120 real TOFU forget answers
(forget_spans_dev.json), on a model fine-tuned on those answers, with that model's memorisation.

The model: `python -m engine finetune --base tiny --staged` on a TOFU layout of the 120 dev
answers (forget10.json) + retain_sample.json (retain90.json) + the two utility sets (see README,
"Selector accuracy on real text"). Its memorisation is read from the finetune command's
memorisation.json beside the model when that report is on the same forget set, else measured
here (greedy answers, ROUGE-L recall, exact matches, teacher-forced top-1).
Prints a markdown table (selector-report's rows, `engine.eval.selector_report`).

    python benchmarks/real_text_table.py --model DIR [--data DIR/forget_spans_dev] [--ratios 0.1,0.3]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

# benchmarks/selectors.py shadows the stdlib `selectors` module: replace this folder on the path
sys.path[0] = str(Path(__file__).resolve().parent.parent)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "tofu_sample"


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def memorisation_of(model_dir: Path, model, tok, samples, max_new_tokens: int, measure: bool) -> dict:
    """The finetune report's target_on_forget when it covers these samples, else measured here."""
    report = model_dir.parent / "memorisation.json"
    if report.is_file():
        d = json.loads(report.read_text())
        target = d.get("target_on_forget")
        if target and target.get("samples") == len(samples):
            info = json.loads((model_dir / "finetune.json").read_text()) if (model_dir / "finetune.json").is_file() else {}
            return {**target, "source": str(report), "epochs": info.get("epochs"), "settings": d.get("settings")}
    from engine.eval.memorisation import memorisation, teacher_forced_top1

    if not measure:
        return {"samples": len(samples), "top1": teacher_forced_top1(model, tok, samples), "source": "measured here"}
    return {**memorisation(model, tok, samples, max_new_tokens).to_dict(), "source": "measured here"}


def markdown(rows) -> str:
    lines = ["| selector | token P | token R | token F1 | token AUROC | word P | word R | word F1 | word AUROC |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r.span_type != "all":
            continue
        name = f"`{r.selector}`" + (f" top {r.ratio:g}" if r.ratio is not None else "")
        if r.note:
            lines.append(f"| {name} (unavailable: {r.note.split(':')[0]}) |" + " - |" * 8)
            continue
        lines.append(f"| {name} | {_fmt(r.precision)} | {_fmt(r.recall)} | {_fmt(r.f1)} | {_fmt(r.auroc)} | "
                     f"{_fmt(r.word_precision)} | {_fmt(r.word_recall)} | {_fmt(r.word_f1)} | {_fmt(r.word_auroc)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import torch
    from transformers.utils import logging as hf_logging

    from engine.cli.selector_report import param_values, parse_ratios
    from engine.eval.selector_report import selector_report, variants_from_params
    from engine.models import load_model
    from engine.resolve import load_data
    from engine.selectors import SELECTORS

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="the fine-tuned model directory (finetune's OUT/target)")
    ap.add_argument("--data", default=str(SHARED / "forget_spans_dev"), help="a forget split with spans")
    ap.add_argument("--selectors", default=",".join(SELECTORS))
    ap.add_argument("--param", action="append", metavar="SELECTOR.KEY=VALUE", help="as selector-report's")
    ap.add_argument("--ratios", default=None, help="keep-ratio sweep, as selector-report's")
    ap.add_argument("--max-new-tokens", type=int, default=120, help="greedy answer length of the memorisation")
    ap.add_argument("--no-generation", action="store_true", help="memorisation: teacher-forced top-1 only")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: robust on a shared CPU)")
    ap.add_argument("--json", default=None, help="also write the rows and the memorisation here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    hf_logging.set_verbosity_error()

    started = time.perf_counter()
    model_dir = Path(args.model).expanduser()
    bench = load_data(args.data)
    samples = bench.forget
    model, tok = load_model(model_dir, "cpu")
    mem = memorisation_of(model_dir, model, tok, samples, args.max_new_tokens, not args.no_generation)
    names = [n.strip() for n in args.selectors.split(",") if n.strip()]
    rows = selector_report(model, tok, samples, variants=variants_from_params(names, param_values(args.param)),
                           ratios=parse_ratios(args.ratios))
    main_row = next(r for r in rows if r.span_type == "all" and not r.note)
    print(f"# Selector accuracy on real text: {bench.name}\n")
    print(f"{len(samples)} real TOFU forget answers, {main_row.tokens} answer tokens ({main_row.positives} in "
          f"spans, base rate {_fmt(main_row.base_rate)}), {main_row.words} words ({main_row.word_positives} in "
          f"spans). Model: {model_dir}.")
    line = f"Memorisation of the forget answers: teacher-forced top-1 {_fmt(mem.get('top1'))}"
    if "rouge_l_recall" in mem:
        line += (f", greedy ROUGE-L recall {_fmt(mem['rouge_l_recall'])}, exact answers "
                 f"{mem['exact_matches']}/{mem['samples']}")
    print(line + (f" (epochs {mem['epochs']}; {mem['source']})" if mem.get("epochs") else f" ({mem['source']})"))
    print()
    print(markdown(rows))
    print(f"\n({time.perf_counter() - started:.0f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps({"data": bench.name, "model": str(model_dir), "memorisation": mem,
                                               "rows": [r.to_dict() for r in rows]}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
