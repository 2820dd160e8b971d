"""`eval`: forget quality, model utility and their components for one model on one benchmark."""
from __future__ import annotations

from .. import paths
from ..data.tofu_layout import PROTOCOL_SETTINGS
from ..eval.registry import METRICS
from ..param_check import check_device, check_positive_int
from ..prompts import generation_length
from ..store import Store
from . import check_output, write_json

NAME = "eval"
HELP = ("evaluate a model: forget quality (vs a retain model), model utility and components, extraction "
        "strength, exact memorisation, membership-inference AUCs and privleak")


def add_arguments(p) -> None:
    p.add_argument("--model", required=True, help="model name or local HF directory")
    p.add_argument("--data", default="demo", help="data name or TOFU directory (default: demo)")
    p.add_argument("--retain-model", default=None,
                   help="retain model for forget quality, the reference-model MIA and privleak (default: the "
                        "pairing remembered in the store, else demo-retain for demo data)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--max-new-tokens", type=int, default=None,
                   help="greedy generation length (default: 64 on built-in data, TOFU's 200 otherwise)")
    p.add_argument("--protocol", default=None, choices=["tofu", "open-unlearning", "all"],
                   help="evaluation protocol (default: open-unlearning on TOFU's files, else all; see unlearn --help)")
    p.add_argument("--json", default=None, help="also write the report to this JSON file")


def format_report(report, protocol: str | None = None, n: int | None = None) -> str:
    """FQ (with the protocol and n it was computed on) and MU, then every other metric of the report
    (registered ones by label, in the registry's order; unregistered ones last, by name), then the notes."""
    fq = "unavailable" if report.forget_quality is None else f"{report.forget_quality:.4g}"
    fq += f" ({protocol}, n = {n})" if protocol else ""
    mu = "unavailable" if report.model_utility is None else f"{report.model_utility:.4f}"
    lines = [f"forget quality  {fq}", f"model utility   {mu}"]
    values = {k: v for k, v in report.values().items() if k not in ("forget_quality", "model_utility")}
    order = [k for k in METRICS if k in values] + [k for k in values if k not in METRICS]
    for key in order:
        value = values[key]
        name = f"{key} ({METRICS[key].label})" if key in METRICS else key
        lines.append(f"  {name:<46} {'n/a' if value is None else f'{value:.4g}'}")
    lines += [f"note: {n}" for n in report.notes]
    return "\n".join(lines)


def paired_store():
    """The workbench's store when it exists (its remembered retain-model pairings), else None;
    `eval` creates no store."""
    path = paths.store_path()
    return Store(path, create=False) if path.is_file() else None


def run(args) -> int:
    from ..eval.full import evaluate, reference_mia, reference_truth_ratios  # deferred: torch
    from ..models import load_model  # deferred: torch
    from ..resolve import load_data, model_path, retain_model_for  # deferred: torch

    args.max_new_tokens = generation_length(args.data) if args.max_new_tokens is None else args.max_new_tokens
    check_positive_int(args.max_new_tokens, "--max-new-tokens")
    check_device(args.device)
    check_output(args.json, "--json")

    bench = load_data(args.data, protocol=getattr(args, "protocol", None))
    batch = PROTOCOL_SETTINGS.get(bench.protocol, {}).get("eval_batch_size", 64)
    n = len(bench.eval_split("forget"))
    model, tok = load_model(model_path(args.model), args.device)
    from ..context import check_fits  # deferred: torch

    for split in ("forget", "retain", "real_authors", "world_facts"):
        check_fits(tok, bench.split(split), f"{split} samples")
    retain = args.retain_model or retain_model_for(args.model, args.data, paired_store())
    ref = reference_truth_ratios(model_path(retain), bench, args.device) if retain else None
    ref_mia = reference_mia(model_path(retain), bench, args.device) if retain else None
    report = evaluate(model, tok, bench, ref, max_new_tokens=args.max_new_tokens, batch_size=batch, retain_mia=ref_mia)
    print(f"model {args.model} on {bench.name}" + (f" (retain model {retain})" if retain else ""))
    print(format_report(report, bench.protocol, n))
    write_json(args.json, {"model": args.model, "data": bench.name, "retain_model": retain, "protocol": bench.protocol,
                           "forget_rows": n, **report.to_dict()})
    return 0
