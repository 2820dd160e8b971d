"""`score`: one selector's per-token scores and default mask on the forget samples."""
from __future__ import annotations

import warnings

from ..param_check import check_device, check_positive_int
from ..params import parse_selector_params
from . import UserError, check_output, write_json
from .checks import check_scorer_params

NAME = "score"
HELP = "per-token scores and default mask of one selector on the forget samples (* = target)"


def add_arguments(p) -> None:
    p.add_argument("--selector", required=True, help="all, oracle, wga, satimp, entropy, tokenunlearn, tif, dto, atwu")
    p.add_argument("--model", default="demo", help="model name or local HF directory (default: demo)")
    p.add_argument("--data", default="demo", help="data name or TOFU directory (default: demo)")
    p.add_argument("--param", action="append", metavar="KEY=VALUE", help="selector parameter (repeatable), e.g. ratio=0.2")
    p.add_argument("--limit", type=int, default=5, help="samples to print (default 5; the JSON file gets all)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--json", default=None, help="write every sample's tokens, scores and mask to this JSON file")
    p.add_argument("--allow-cut", action="store_true",
                   help="score answers longer than the model's context as the model sees them (cut, each one "
                        "noted with its tokens kept / total) instead of refusing")


def sample_rows(name: str, model, tokenizer, samples, params: dict, batch_size: int) -> list[dict]:
    """Per sample: its uid, question, answer tokens (text), scores and mask over the answer tokens."""
    from ..explore.fit import sample_fits  # deferred: torch
    from ..selectors import select  # deferred: torch
    from ..tokens import encode_samples, iter_batches  # deferred: torch

    rows = []
    for chunk in iter_batches(samples, batch_size):
        fits = sample_fits(tokenizer, chunk)
        with warnings.catch_warnings():  # a cut is noted per sample below (`cut`), not as a warning
            warnings.simplefilter("ignore", UserWarning)
            batch = encode_samples(tokenizer, chunk)
        out = select(name, model, tokenizer, chunk, batch=batch, **params)
        for i, s in enumerate(chunk):
            keep = batch.answer_mask[i]
            offs = batch.offsets[i][keep].tolist()
            rows.append({"uid": s.uid, "question": s.question, "answer": s.answer,
                         "tokens": [s.answer[a:b] for a, b in offs],
                         "scores": [round(float(x), 6) for x in out.scores[i][keep.to(out.scores.device)]],
                         "mask": [bool(x) for x in out.mask[i][keep.to(out.mask.device)]],
                         "cut": ({"kept": fits[i].kept, "total": fits[i].total, "context": fits[i].context}
                                 if fits[i].cut else None)})
    return rows


def run(args) -> int:
    from ..models import load_model  # deferred: torch
    from ..resolve import load_data, model_path  # deferred: torch
    from ..selectors import get_selector  # deferred: torch

    get_selector(args.selector)
    if args.limit < 0:
        raise UserError("--limit must be 0 or more")
    check_positive_int(args.batch_size, "--batch-size")
    check_device(args.device)
    check_output(args.json, "--json")
    params = parse_selector_params(args.param, args.selector)

    check_scorer_params(params)
    bench = load_data(args.data)
    model, tok = load_model(model_path(args.model), args.device)
    from ..context import check_fits  # deferred: torch

    if not args.allow_cut:
        try:
            check_fits(tok, bench.forget, "forget samples")
        except ValueError as err:
            raise UserError(f"{err}\n(or pass --allow-cut to score them as the model sees them, cut and noted)") \
                from None
    rows = sample_rows(args.selector, model, tok, bench.forget, params, args.batch_size)
    n_cut = sum(r["cut"] is not None for r in rows)
    print(f"selector {args.selector} on {bench.name} ({len(rows)} forget samples), model {args.model}")
    if n_cut:
        print(f"✂ {n_cut} of {len(rows)} answers do not fit the model's context and are cut (scored as the model "
              f"sees them; each is noted below and in the JSON's `cut`)")
    for r in rows[:args.limit]:
        print(f"\nQ: {r['question']}")
        print(" ".join(f"{t.strip() or repr(t)}{'*' if m else ''}:{x:.3g}" for t, x, m in
                       zip(r["tokens"], r["scores"], r["mask"])) + (" ✂ cut here" if r["cut"] else ""))
        if r["cut"]:
            c = r["cut"]
            print(f"✂ answer cut: {c['kept']} of {c['total']} answer tokens fit the model's context of "
                  f"{c['context']}")
    write_json(args.json, {"selector": args.selector, "params": params, "model": args.model, "data": bench.name,
                           "samples": rows})
    return 0
