"""`eval`: forget quality, model utility and their components for one model on one benchmark."""
from __future__ import annotations

from . import check_output, write_json

NAME = "eval"
HELP = "evaluate a model: forget quality (vs a retain model), model utility and components"


def add_arguments(p) -> None:
    p.add_argument("--model", required=True, help="model name or local HF directory")
    p.add_argument("--data", default="demo", help="data name or TOFU directory (default: demo)")
    p.add_argument("--retain-model", default=None,
                   help="retain model for forget quality (default: demo-retain for demo data)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--max-new-tokens", type=int, default=None,
                   help="greedy generation length (default: 64 on built-in data, TOFU's 200 otherwise)")
    p.add_argument("--protocol", default=None, choices=["tofu", "open-unlearning", "all"],
                   help="evaluation protocol (default: open-unlearning on TOFU's files, else all; see unlearn --help)")
    p.add_argument("--json", default=None, help="also write the report to this JSON file")


def format_report(report, protocol: str | None = None, n: int | None = None) -> str:
    fq = "unavailable" if report.forget_quality is None else f"{report.forget_quality:.4g}"
    fq += f" ({protocol}, n = {n})" if protocol else ""
    mu = "unavailable" if report.model_utility is None else f"{report.model_utility:.4f}"
    lines = [f"forget quality  {fq}", f"model utility   {mu}"]
    for key, value in report.components.items():
        lines.append(f"  {key:<26} {'n/a' if value is None else f'{value:.4f}'}")
    lines += [f"note: {n}" for n in report.notes]
    return "\n".join(lines)


def run(args) -> int:
    from ..eval.full import evaluate, reference_truth_ratios
    from ..models import load_model
    from ..resolve import load_data, model_path, retain_model_for

    from ..param_check import check_device, check_positive_int

    from ..prompts import generation_length

    args.max_new_tokens = generation_length(args.data) if args.max_new_tokens is None else args.max_new_tokens
    check_positive_int(args.max_new_tokens, "--max-new-tokens")
    check_device(args.device)
    check_output(args.json, "--json")
    from ..data.tofu_layout import PROTOCOL_SETTINGS

    bench = load_data(args.data, protocol=getattr(args, "protocol", None))
    batch = PROTOCOL_SETTINGS.get(bench.protocol, {}).get("eval_batch_size", 64)
    n = len(bench.eval_split("forget"))
    model, tok = load_model(model_path(args.model), args.device)
    from ..context import check_fits

    for split in ("forget", "retain", "real_authors", "world_facts"):
        check_fits(tok, bench.split(split), f"{split} samples")
    retain = args.retain_model or retain_model_for(args.model, args.data)
    ref = reference_truth_ratios(model_path(retain), bench, args.device) if retain else None
    report = evaluate(model, tok, bench, ref, max_new_tokens=args.max_new_tokens, batch_size=batch)
    print(f"model {args.model} on {bench.name}" + (f" (retain model {retain})" if retain else ""))
    print(format_report(report, bench.protocol, n))
    write_json(args.json, {"model": args.model, "data": bench.name, "retain_model": retain, "protocol": bench.protocol,
                           "forget_rows": n, **report.to_dict()})
    return 0
