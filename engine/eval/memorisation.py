"""How well a fine-tuned model memorised a split: greedy answers vs the true answers.

ROUGE-L recall of the greedy answer (metrics.rouge_l_recall), exact matches (whitespace-
stripped equality), and teacher-forced top-1: the share of answer tokens (not the EOS) whose
argmax prediction equals the token (tokens.greedy_hit), pooled over the split.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..tokens import encode_samples, eval_mode, forward_logits, greedy_hit, iter_batches
from .metrics import greedy_generate, rouge_l_recall


@dataclass
class Memorisation:
    samples: int
    rouge_l_recall: float
    exact_matches: int
    top1: float

    def to_dict(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        return (f"ROUGE-L recall {self.rouge_l_recall:.3f}, exact {self.exact_matches}/{self.samples}, "
                f"teacher-forced top-1 {self.top1:.3f}")


@torch.no_grad()
def teacher_forced_top1(model, tokenizer, samples, batch_size: int = 32) -> float:
    """Σ hits / Σ answer tokens over the split (answer tokens exclude the closing EOS)."""
    device = next(model.parameters()).device
    hits = total = 0
    with eval_mode(model):
        for chunk in iter_batches(list(samples), batch_size):
            batch = encode_samples(tokenizer, chunk, max_length=10**9).to(device)
            logits = forward_logits(model, batch)
            hits += int((greedy_hit(logits, batch) & batch.answer_mask).sum())
            total += int(batch.answer_mask.sum())
    return hits / max(total, 1)


def memorisation(model, tokenizer, samples, max_new_tokens: int = 200) -> Memorisation:
    """The memorisation report of `model` on `samples` (greedy generation, no sampling)."""
    answers = greedy_generate(model, tokenizer, [s.question for s in samples], max_new_tokens)
    rouge = rouge_l_recall(answers, [s.answer for s in samples])
    exact = sum(a.strip() == s.answer.strip() for a, s in zip(answers, samples))
    return Memorisation(len(samples), float(np.mean(rouge)), exact, teacher_forced_top1(model, tokenizer, samples))
