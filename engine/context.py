"""Does every sample fit in the model's context? Checked before work starts, so no answer is cut
silently and no prompt overflows the position embeddings (a question-by-question report)."""
from __future__ import annotations

from .tokens import split_tokens


def context_length(tokenizer) -> int | None:
    """The context `engine.tokens.encode` uses: the tokenizer's model_max_length, which
    `load_model` sets from the model config (n_positions / max_position_embeddings); None when
    neither says (a huge transformers placeholder counts as unknown)."""
    n = getattr(tokenizer, "model_max_length", None)
    return n if isinstance(n, int) and 0 < n < 10**9 else None


def overflows(tokenizer, samples, context: int | None = None) -> list[str]:
    """One line per sample whose prompt + answer + EOS exceeds `context` tokens, naming the sample
    and the token counts ([] when all fit or the context is unknown). Tokens are counted as
    `engine.tokens.encode` makes them (apart, or jointly under a joint prompt format)."""
    context = context or context_length(tokenizer)
    samples = list(samples)
    if context is None or not samples:  # (a fast tokenizer cannot encode an empty batch)
        return []
    prompts, answers, _ = split_tokens(tokenizer, [s.question for s in samples], [s.answer for s in samples])
    out = []
    for s, p, a in zip(samples, prompts, answers):
        if len(p) + len(a) + 1 > context:
            name = s.uid or repr(s.question[:40])
            out.append(f"{name}: prompt {len(p)} + answer {len(a)} + EOS = {len(p) + len(a) + 1} tokens "
                       f"> context {context}")
    return out


def check_fits(tokenizer, samples, what: str = "samples", context: int | None = None) -> None:
    """ValueError listing the samples that do not fit (the first five, and how many in all)."""
    bad = overflows(tokenizer, samples, context)
    if bad:
        more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
        raise ValueError(f"{len(bad)} of the {what} do not fit in the model's context; shorten them or use a "
                         f"model with a longer context:\n  " + "\n  ".join(bad[:5]) + more)
