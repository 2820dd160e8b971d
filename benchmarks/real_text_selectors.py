"""Selector accuracy on real text: word- and token-level P/R/F1 of each selector's default mask
against the hand-marked spans of real TOFU forget answers (forget_spans_dev.json).

`lexical` and `all` need no model. The model-based selectors run on the built-in target model and
its tokenizer as a stand-in: that model never saw these answers, so their scores here are a smoke
check, not a measurement. Prints a markdown table. About a minute on 1 CPU thread.

    python benchmarks/real_text_selectors.py [--data FILE] [--selectors a,b] [--limit N]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

# benchmarks/selectors.py shadows the stdlib `selectors` module: replace this folder on the path
sys.path[0] = str(Path(__file__).resolve().parent.parent)

DEFAULT_DATA = Path("/work/shared/data/tofu_sample/forget_spans_dev.json")
MODEL_FREE = ("lexical", "all")
FULL_TEXT = 10**6  # no cut: model-free selectors see every answer token
MODEL_BASED = ("wga", "satimp", "entropy", "tokenunlearn", "tif", "dto", "atwu")


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def main(argv: list[str] | None = None) -> int:
    import torch
    from transformers.utils import logging as hf_logging

    from engine.data import load_file
    from engine.masks import label_offsets, mask_accuracy
    from engine.masks.votes import selector_label_masks
    from engine.models import load_model
    from engine.resolve import model_path

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="JSON lines with question, answer, spans")
    ap.add_argument("--selectors", default=",".join(MODEL_FREE + MODEL_BASED))
    ap.add_argument("--limit", type=int, default=None, help="only the first N samples")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    hf_logging.set_verbosity_error()  # whole answers for the model-free rows exceed the context on purpose

    samples = load_file(args.data)[:args.limit]
    names = [n.strip() for n in args.selectors.split(",") if n.strip()]
    model, tok = load_model(model_path("demo"), "cpu")
    offsets = label_offsets(tok, samples)  # cut to the model's context, for the model-based selectors
    full = label_offsets(tok, samples, max_length=FULL_TEXT)  # whole answers, for the model-free ones
    answers = [s.answer for s in samples]
    truth = [list(s.spans) for s in samples]
    n_tokens = sum(sum(a >= 0 for a, _ in o) for o in offsets)
    n_full = sum(sum(a >= 0 for a, _ in o) for o in full)
    cut = sum(len(o) < len(f) for o, f in zip(offsets, full))
    print(f"# Selector accuracy on real text: {args.data}\n")
    print(f"{len(samples)} answers, {n_full} answer tokens of the built-in tokenizer. Model-free rows score whole "
          f"answers. Model-based rows use the built-in target model, which never saw these answers: their scores "
          f"are a smoke check only, not meaningful; they see {n_tokens} tokens ({cut} answers cut to the model's "
          f"context of {tok.model_max_length} tokens; words past the cut are not counted).\n")
    print("| selector | needs model | word P | word R | word F1 | token P | token R | token F1 | seconds |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in names:
        t0 = time.perf_counter()
        free = name in MODEL_FREE
        masks, unavailable = selector_label_masks(model, tok, samples, [name], max_length=FULL_TEXT if free else None)
        seconds = time.perf_counter() - t0
        model_note = "no" if free else "yes (stand-in)"
        if name in unavailable:
            print(f"| `{name}` | {model_note} | unavailable: {unavailable[name][:80]} | | | | | | |")
            continue
        acc = mask_accuracy(answers, full if free else offsets, masks[name], truth)
        w, t = acc.word, acc.token
        print(f"| `{name}` | {model_note} | {_fmt(w.precision)} | {_fmt(w.recall)} | {_fmt(w.f1)} | "
              f"{_fmt(t.precision)} | {_fmt(t.recall)} | {_fmt(t.f1)} | {seconds:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
