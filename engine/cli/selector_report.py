"""`selector-report`: precision, recall, F1 and AUROC of every selector against the fact spans."""
from __future__ import annotations

import csv

from . import check_output, parse_params, write_json

NAME = "selector-report"
HELP = ("selector accuracy against ground-truth fact spans (precision, recall, F1, AUROC per span type); it "
        "computes no forget quality, so it takes no --retain-model (FQ: eval, unlearn and runs take one)")


def add_arguments(p) -> None:
    p.add_argument("--model", default="demo", help="model name or local HF directory (default: demo)")
    p.add_argument("--data", default="demo", help="data with spans (default: demo = built-in forget10)")
    p.add_argument("--selectors", default=None, help="comma-separated selectors (default: all registered)")
    p.add_argument("--param", action="append", metavar="SELECTOR.KEY=VALUE",
                   help="selector parameter (repeatable), e.g. dto.ratio=0.2")
    p.add_argument("--by-type", action="store_true", help="also print the per-span-type rows")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--json", default=None, help="write the rows to this JSON file")
    p.add_argument("--csv", default=None, help="write the rows to this CSV file")


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def format_rows(rows, by_type: bool = False) -> str:
    head = f"{'selector':<13} {'span type':<11} {'tokens':>6} {'facts':>5} {'precision':>9} {'recall':>6} {'F1':>6} {'AUROC':>6}"
    lines = [head, "-" * len(head)]
    for r in rows:
        if r.span_type != "all" and not by_type:
            continue
        if r.note:
            lines.append(f"{r.selector:<13} unavailable: {r.note}")
            continue
        lines.append(f"{r.selector:<13} {r.span_type:<11} {r.tokens:>6} {r.positives:>5} {_fmt(r.precision):>9} "
                     f"{_fmt(r.recall):>6} {_fmt(r.f1):>6} {_fmt(r.auroc):>6}")
    return "\n".join(lines)


def run(args) -> int:
    from ..models import load_model
    from ..resolve import load_data, model_path
    from ..eval.selector_report import selector_report
    from ..selectors import get_selector

    names = [n.strip() for n in args.selectors.split(",") if n.strip()] if args.selectors else None
    for n in names or []:
        get_selector(n)
    params: dict[str, dict] = {}
    for key, value in parse_params(args.param).items():
        sel, _, name = key.partition(".")
        if not name:
            raise ValueError(f"--param expects SELECTOR.KEY=VALUE, got {key!r}")
        params.setdefault(sel, {})[name] = value
    from ..param_check import check_device, check_selector_params

    params = {sel: check_selector_params(sel, p) for sel, p in params.items()}
    check_device(args.device)
    check_output(args.json, "--json")
    check_output(args.csv, "--csv")
    bench = load_data(args.data)
    model, tok = load_model(model_path(args.model), args.device)
    rows = selector_report(model, tok, bench.forget, names, params)
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
    return 0
