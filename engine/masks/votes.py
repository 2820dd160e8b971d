"""The selectors' default masks per sample over label positions: the review queue's voters and
the benchmark's predictions (needs a model; everything else in `engine.masks` is pure)."""
from __future__ import annotations

from ..selectors import SelectorUnavailable, select
from ..tokens import encode_samples, iter_batches, label_rows


def selector_label_masks(model, tokenizer, samples, selectors: list[str], params: dict[str, dict] | None = None,
                         batch_size: int = 32, max_length: int | None = None) -> tuple[dict[str, list[list[bool]]], dict[str, str]]:
    """({selector: per-sample default masks over label positions}, {selector: why it could not run}).
    max_length: as `engine.tokens.encode` (default: the model's context; longer only for selectors
    that run no model, e.g. `lexical` and `all`)."""
    masks: dict[str, list[list[bool]]] = {}
    unavailable: dict[str, str] = {}
    for name in selectors:
        rows: list[list[bool]] = []
        try:
            for chunk in iter_batches(list(samples), batch_size):
                batch = encode_samples(tokenizer, chunk, max_length)
                out = select(name, model, tokenizer, chunk, batch=batch, **(params or {}).get(name, {}))
                rows += [r.tolist() for r in label_rows(out.mask.cpu(), batch)]
        except SelectorUnavailable as err:
            unavailable[name] = str(err)
            continue
        masks[name] = rows
    return masks, unavailable
