"""Does a sample's answer fit the model's context, and if not, how much of it is kept?

`engine.tokens.encode` cuts an answer that does not fit after its prompt and the closing EOS
(`kept = context − prompt − 1` answer tokens); `engine.context` refuses such samples before a run.
Explore and `score --allow-cut` show them instead, marked: this module says how many tokens each
sample has and how many the model sees.

    fits = sample_fits(tokenizer, samples)
    fits[3].cut, fits[3].kept, fits[3].total, fits[3].context   # e.g. True, 97, 140, 128
"""
from __future__ import annotations

from dataclasses import dataclass

from ..context import context_length
from ..tokens import split_tokens


@dataclass(frozen=True)
class Fit:
    """One sample against the context: prompt and answer token counts, and the answer tokens kept."""

    prompt: int  # prompt tokens (the model's prompt format)
    total: int  # answer tokens before any cut
    kept: int  # answer tokens the model sees: min(total, context − prompt − 1)
    context: int | None  # the model's context (None: unknown, nothing is cut)

    @property
    def cut(self) -> bool:
        return self.kept < self.total

    def note(self) -> str:
        """'answer cut: 97 of 140 answer tokens fit (prompt 30 + EOS, context 128)', or '' when it fits."""
        if not self.cut:
            return ""
        return (f"answer cut: {self.kept} of {self.total} answer tokens fit "
                f"(prompt {self.prompt} + answer + EOS > context {self.context})")


def fit_of(prompt: int, total: int, context: int | None) -> Fit:
    """The Fit of one sample from its token counts: kept = min(total, max(0, context − prompt − 1))."""
    kept = total if context is None else min(total, max(0, context - prompt - 1))
    return Fit(prompt, total, kept, context)


def sample_fits(tokenizer, samples) -> list[Fit]:
    """One Fit per sample, counted as `engine.tokens.encode` tokenises them ([] for no samples)."""
    samples = list(samples)
    if not samples:
        return []
    context = context_length(tokenizer)
    prompts, answers, _ = split_tokens(tokenizer, [s.question for s in samples], [s.answer for s in samples])
    return [fit_of(len(p), len(a), context) for p, a in zip(prompts, answers)]
