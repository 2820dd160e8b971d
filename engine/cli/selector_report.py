"""`selector-report`: precision, recall, F1 and AUROC of every selector against the fact spans,
token level and word level; several parameter sets per selector, a keep-ratio sweep and a
per-sample dump."""
from __future__ import annotations

import csv
import json

from ..param_check import check_device
from . import check_output, parse_params, write_json
from .checks import check_scorer_params

NAME = "selector-report"
HELP = ("selector accuracy against ground-truth fact spans (token- and word-level precision, recall, F1, "
        "AUROC per span type; parameter sets, keep-ratio sweep, per-sample dump); it computes no forget "
        "quality, so it takes no --retain-model (FQ: eval, unlearn and runs take one)")


def add_arguments(p) -> None:
    p.add_argument("--model", default="demo", help="model name or local HF directory (default: demo)")
    p.add_argument("--data", default="demo", help="data with spans (default: demo = built-in forget10)")
    p.add_argument("--selectors", default=None, help="comma-separated selectors (default: all registered)")
    p.add_argument("--param", action="append", metavar="SELECTOR.KEY=VALUE",
                   help="selector parameter (repeatable), e.g. dto.ratio=0.2; the same SELECTOR.KEY given "
                        "again with another value adds a row (tif[predictor=demo], tif[predictor=demo-retain]); "
                        "different keys of one selector combine")
    p.add_argument("--ratios", default=None, metavar="R1,R2,…",
                   help="keep-ratio sweep: also score each selector's top r of its scores per sample, e.g. "
                        "0.1,0.2,0.3,0.5")
    p.add_argument("--by-type", action="store_true", help="also print the per-span-type rows")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--batch-size", type=int, default=32, help="samples per selector batch (default 32)")
    p.add_argument("--json", default=None, help="write the rows to this JSON file")
    p.add_argument("--csv", default=None, help="write the rows to this CSV file")
    p.add_argument("--per-sample", default=None, metavar="FILE.jsonl",
                   help="write one JSON line per selector row × sample (mask spans, scores, token/word TP/FP/FN)")


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def format_rows(rows, by_type: bool = False) -> str:
    width = max([13] + [len(r.selector) + (6 if r.ratio is not None else 0) for r in rows])
    head = (f"{'selector':<{width}} {'span type':<11} {'tokens':>6} {'facts':>5} {'P':>6} {'R':>6} {'F1':>6} "
            f"{'AUROC':>6} │ {'words':>5} {'facts':>5} {'P':>6} {'R':>6} {'F1':>6} {'AUROC':>6}")
    lines = ["token level" + " " * (len(head.split("│")[0]) - 11) + "│ word level", head, "-" * len(head)]
    for r in rows:
        if r.span_type != "all" and not by_type:
            continue
        name = r.selector if r.ratio is None else f"{r.selector} @{r.ratio:g}"
        if r.note:
            lines.append(f"{name:<{width}} unavailable: {r.note}")
            continue
        lines.append(f"{name:<{width}} {r.span_type:<11} {r.tokens:>6} {r.positives:>5} {_fmt(r.precision):>6} "
                     f"{_fmt(r.recall):>6} {_fmt(r.f1):>6} {_fmt(r.auroc):>6} │ {r.words:>5} {r.word_positives:>5} "
                     f"{_fmt(r.word_precision):>6} {_fmt(r.word_recall):>6} {_fmt(r.word_f1):>6} "
                     f"{_fmt(r.word_auroc):>6}")
    return "\n".join(lines)


def param_values(items: list[str] | None) -> dict[str, dict[str, list]]:
    """['sel.key=value', …] -> {sel: {key: [values in order, repeats dropped]}}."""
    out: dict[str, dict[str, list]] = {}
    for item in items or []:
        ((key, value),) = parse_params([item]).items()
        sel, _, name = key.partition(".")
        if not sel or not name:
            raise ValueError(f"--param expects SELECTOR.KEY=VALUE, got {item!r}")
        values = out.setdefault(sel, {}).setdefault(name, [])
        if value not in values:
            values.append(value)
    return out


def parse_ratios(text: str | None) -> list[float]:
    """'0.1,0.2' -> [0.1, 0.2]; ValueError naming --ratios for anything outside (0, 1]."""
    if not text:
        return []
    out = []
    for part in text.split(","):
        try:
            r = float(part)
        except ValueError:
            raise ValueError(f"--ratios: {part.strip()!r} is not a number") from None
        if not 0.0 < r <= 1.0:
            raise ValueError(f"--ratios: {r:g} is outside (0, 1]")
        out.append(r)
    return out


def run(args) -> int:
    from ..eval.selector_report import selector_report, variants_from_params  # deferred: torch
    from ..models import load_model  # deferred: torch
    from ..resolve import load_data, model_path  # deferred: torch
    from ..selectors import SELECTORS, check_selector_params, get_selector  # deferred: torch

    names = [n.strip() for n in args.selectors.split(",") if n.strip()] if args.selectors else list(SELECTORS)
    for n in names:
        get_selector(n)
    values = param_values(args.param)
    for sel in values:
        get_selector(sel)
        if sel not in names:
            raise ValueError(f"--param {sel}.…: selector {sel!r} is not in --selectors")
    variants = variants_from_params(names, values)

    for v in variants:
        check_selector_params(v.selector, dict(v.params))
        check_scorer_params(dict(v.params), f"--param {v.selector}.")
    ratios = parse_ratios(args.ratios)
    check_device(args.device)
    for path, flag in ((args.json, "--json"), (args.csv, "--csv"), (args.per_sample, "--per-sample")):
        check_output(path, flag)
    bench = load_data(args.data)
    model, tok = load_model(model_path(args.model), args.device)
    dump: list | None = [] if args.per_sample else None
    rows = selector_report(model, tok, bench.forget, variants=variants, ratios=ratios,
                           batch_size=args.batch_size, per_sample=dump)
    base = next((r.base_rate for r in rows if r.base_rate is not None), None)
    print(f"selector accuracy on {bench.name} ({len(bench.forget)} forget samples), model {args.model}; "
          f"fact-token base rate {_fmt(base)}")
    print(format_rows(rows, args.by_type))
    write_json(args.json, {"model": args.model, "data": bench.name, "rows": [r.to_dict() for r in rows]})
    if args.csv:
        with open(args.csv, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0].to_dict()))
            w.writeheader()
            w.writerows(r.to_dict() for r in rows)
        print(f"wrote {args.csv}")
    if args.per_sample:
        with open(args.per_sample, "w", encoding="utf-8") as fh:
            for rec in dump:
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
        print(f"wrote {args.per_sample} ({len(dump)} lines)")
    return 0
