"""`leak-check`: does a model (the target, or a run's checkpoint) still say the forget targets?

Greedy answers to every forget question, and whether each target span's text occurs in them
(exact and normalised match), per sample and as one leak rate (see `engine.eval.leak_check`).
Targets: the data's ground-truth spans (default), a span file (`--spans`), or a stored mask set
(`--mask-set`, its token masks turned into character spans); `--rules FILE` applies phrase rules
on top of whichever of these is chosen.
"""
from __future__ import annotations

import csv
from pathlib import Path

from .. import paths
from ..fingerprint import tokenizer_fingerprint
from ..masks.interop import match_records, record_spans
from ..param_check import check_positive_int
from ..prompts import generation_length
from ..store import Store
from . import UserError, check_output, write_json

NAME = "leak-check"
HELP = "greedy answers to the forget questions: how many target spans a model still says (leak rate)"


def add_arguments(p) -> None:
    p.add_argument("--model", default=None, help="model to check: demo (target), a checkpoint or HF directory "
                                                 "(default: the run's best checkpoint with --run, else demo)")
    p.add_argument("--run", dest="run_id", type=int, default=None, metavar="ID", help="check this run's checkpoint")
    p.add_argument("--checkpoint", choices=("best", "final"), default="best", help="with --run (default: best)")
    p.add_argument("--data", default=None, help="forget data (default: the run's or mask set's data, else demo)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--spans", default=None, metavar="FILE",
                     help='span file: JSON lines {"question", "answer", "spans": [{"start", "end"}]}')
    src.add_argument("--mask-set", default=None, metavar="NAME", help="a stored mask set's targets")
    p.add_argument("--rules", default=None, metavar="FILE", help="phrase rules (JSON lines) applied on top")
    p.add_argument("--store", default=None, help="SQLite store (default: the workbench's)")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N forget samples")
    p.add_argument("--max-new-tokens", type=int, default=None,
                   help="greedy answer length (default: the data's, 64 built-in, TOFU's 200 otherwise)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--json", default=None, help="write the report to this JSON file")
    p.add_argument("--csv", default=None, help="write the per-sample rows to this CSV file")


def _mask_set_spans(ms, samples) -> tuple[list, object]:
    """Character spans of a stored mask set's per-sample masks (checked against tokenizer and text)."""
    from ..masks import label_mask_to_spans, label_offsets  # deferred: numpy
    from ..models import load_tokenizer  # deferred: torch
    from ..resolve import model_path  # deferred: torch

    tok = load_tokenizer(model_path(ms.model))
    if tokenizer_fingerprint(tok) != ms.tokenizer_fingerprint:
        raise UserError(f"mask set {ms.name!r} was made for another tokenizer than {ms.model}'s")
    masks = ms.masks_for(samples, tok)  # the one text + tokenizer check (ValueError names the sample)
    return [label_mask_to_spans(offs, m, s.answer) if s.uid in ms.masks else []
            for s, offs, m in zip(samples, label_offsets(tok, samples), masks)], tok


def target_spans(args, samples, store, model_spec: str) -> tuple[list, str]:
    """Per-sample target spans and a description of where they came from."""
    from ..masks import (
        apply_rules,
        label_mask_to_spans,
        label_offsets,
        load_rules,
        read_span_file,
        spans_to_label_mask,
    )  # deferred: numpy

    tok = None
    if args.spans:
        matched = match_records(samples, read_span_file(args.spans), args.spans)
        spans = [[] if r is None else record_spans(r) for r in matched]
        source = f"spans from {args.spans}"
    elif args.mask_set:
        spans, tok = _mask_set_spans(store.get_mask_set(args.mask_set), samples)
        source = f"mask set {args.mask_set}"
    else:
        if not any(s.spans for s in samples):
            raise UserError("these forget samples carry no ground-truth spans: pass --spans FILE or --mask-set NAME")
        spans = [list(s.spans) for s in samples]
        source = "ground-truth spans"
    if args.rules:
        rules = load_rules(args.rules)
        if tok is None:
            from ..models import load_tokenizer  # deferred: torch
            from ..resolve import model_path  # deferred: torch

            tok = load_tokenizer(model_path(model_spec))
        offsets = label_offsets(tok, samples)
        base = [spans_to_label_mask(o, sp) for o, sp in zip(offsets, spans)]
        masks = apply_rules(samples, offsets, base, rules)
        spans = [label_mask_to_spans(o, m, s.answer) for o, m, s in zip(offsets, masks, samples)]
        source += f" + {len(rules)} rules from {args.rules}"
    return spans, source


def _run_defaults(args, store) -> tuple[str, str | None, str | None]:
    """(model, data, mask set) from --run ID when given, else from the flags."""
    if args.run_id is None:
        return args.model or "demo", args.data, args.mask_set
    run = store.get_run(args.run_id)
    checkpoints, config = run.checkpoints, run.config
    if args.model is None:
        if args.checkpoint not in checkpoints:
            raise UserError(f"run {args.run_id} has no {args.checkpoint} checkpoint (it has: {', '.join(checkpoints) or 'none'})")
        model = checkpoints[args.checkpoint].path
    else:
        model = args.model
    mask_set = args.mask_set or (None if args.spans else config.mask_set)
    return model, args.data or config.data, mask_set


def format_table(report, limit: int = 20) -> str:
    lines = ["| # | targets | leaked (exact) | leaked (normalised) | generation |", "|---|---|---|---|---|"]
    for r in report.rows[:limit]:
        gen = r.generation.replace("|", "/").replace("\n", " ")
        lines.append(f"| {r.index} | {len(r.targets)} | {sum(r.exact)} | {r.leaked} | {gen[:70]} |")
    if len(report.rows) > limit:
        lines.append(f"| … | {len(report.rows) - limit} more rows in --json/--csv | | | |")
    return "\n".join(lines)


def _rate(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def run(args) -> int:
    from ..eval.leak_check import leak_check  # deferred: torch
    from ..models import load_model  # deferred: torch
    from ..resolve import load_data, model_path  # deferred: torch

    check_output(args.json, "--json")
    check_output(args.csv, "--csv")
    store = Store(Path(args.store) if args.store else paths.store_path())
    model_spec, data_spec, mask_set = _run_defaults(args, store)
    args.mask_set = mask_set
    if mask_set and data_spec is None:
        data_spec = store.get_mask_set(mask_set).data
    bench = load_data(data_spec or "demo")
    samples = bench.forget[:args.limit] if args.limit else bench.forget
    spans, source = target_spans(args, samples, store, model_spec)
    model, tok = load_model(model_path(model_spec), args.device)

    tokens = args.max_new_tokens if args.max_new_tokens is not None else generation_length(data_spec or "demo")
    check_positive_int(tokens, "--max-new-tokens")
    report = leak_check(model, tok, samples, spans, max_new_tokens=tokens)
    print(f"leak check of {model_spec} on {bench.name} ({len(samples)} forget questions), targets: {source}")
    print(format_table(report))
    print(f"leak rate {_rate(report.leak_rate)} (normalised match), exact {_rate(report.exact_leak_rate)}, "
          f"samples leaking {_rate(report.sample_leak_rate)}; "
          f"{sum(len(r.targets) for r in report.rows)} targets in {sum(bool(r.targets) for r in report.rows)} samples")
    write_json(args.json, {"model": model_spec, "data": bench.name, "targets": source, **report.to_dict()})
    if args.csv:
        with open(args.csv, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=["index", "question", "generation", "n_targets", "n_leaked_exact",
                                               "n_leaked", "targets", "exact", "normalised"])
            w.writeheader()
            for r in report.rows:
                d = r.to_dict()
                d.update(targets=" | ".join(r.targets), exact=" | ".join(map(str, r.exact)),
                         normalised=" | ".join(map(str, r.normalised)))
                w.writerow(d)
        print(f"wrote {args.csv}")
    return 0
