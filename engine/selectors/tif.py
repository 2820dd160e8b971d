"""`tif`: TIF's targeted-information identifier, unwanted words (1) vs general words (0)."""
from __future__ import annotations

import re
from functools import lru_cache

import torch

from ..models import load_model
from ..resolve import model_path
from ..tokens import Batch, greedy_hit, relocate, with_prompt
from .base import SelectorInput, SelectorOutput, logits_of

WORD = re.compile(r"\w+(?:['’\-]\w+)*")


def word_ids(batch: Batch) -> torch.Tensor:
    """(B, T) long: the index of the answer word (regex `\\w+(?:['’-]\\w+)*`) each token overlaps,
    by offsets (a < e and b > s); -1 for prompt, padding, EOS and punctuation-only tokens."""
    B, T = batch.input_ids.shape
    out = torch.full((B, T), -1, dtype=torch.long)
    for i, answer in enumerate(batch.answers):
        words = [(m.start(), m.end()) for m in WORD.finditer(answer)]
        if not words:
            continue
        s, e = torch.tensor(words).T  # (W,)
        a, b = batch.offsets[i, :, 0], batch.offsets[i, :, 1]  # (T,)
        overlap = (a[:, None] >= 0) & (a[:, None] < e[None]) & (b[:, None] > s[None])  # (T, W)
        first = overlap.float().argmax(1)
        out[i] = torch.where(overlap.any(1), first, torch.full_like(first, -1))
    return out


def words_missed(miss: torch.Tensor, words: torch.Tensor) -> torch.Tensor:
    """(B, T) bool: the token's word has at least one token in `miss` (one scatter, batched)."""
    B, T = words.shape
    n_words = int(words.max()) + 1 if words.numel() and words.max() >= 0 else 1
    flat = (torch.arange(B, device=words.device)[:, None] * n_words + words.clamp(min=0))  # (B, T)
    valid = words >= 0
    per_word = torch.zeros(B * n_words, device=words.device)
    per_word.scatter_reduce_(0, flat[valid], miss[valid].float(), reduce="amax")
    return (per_word[flat] > 0) & valid


@lru_cache(maxsize=2)
def _predictor(spec: str, device: str):
    """A predictor model by name or directory (e.g. `demo-retain`), loaded once per process."""
    return load_model(model_path(spec), device)


def select_tif(inp: SelectorInput, with_question: bool = False, predictor: str | None = None) -> SelectorOutput:
    """score_t = 1 for tokens of unwanted words, 0 for general words; mask = the same.

    [choice] With no masked LM offline, the target model is the predictor: a word is *general*
    when the model predicts all its tokens greedily from the left context of the answer without
    the question (prompt of the empty question), *unwanted* otherwise. with_question=True keeps
    the question in the context instead. predictor: another model with the same tokenizer that
    never saw the forget facts (the paper's external LLM; e.g. a base model) instead of the
    target model. Words map to tokens by offsets. One batched forward.
    """
    b = inp.batch
    model = inp.model
    if predictor:
        model, tok = _predictor(predictor, str(b.input_ids.device))
        if tok.get_vocab() != inp.tokenizer.get_vocab():
            raise ValueError(f"tif predictor {predictor!r} has another tokenizer than the model being unlearned")
    ctx = b if with_question else with_prompt(inp.tokenizer, b, "")
    hit = greedy_hit(logits_of(model, ctx), ctx)
    if ctx is not b:
        hit = relocate(hit, ctx, b)
    words = word_ids(b).to(hit.device)
    unwanted = words_missed(~hit & b.answer_mask, words) & b.answer_mask
    return SelectorOutput(unwanted.float(), unwanted, "tif", {"with_question": with_question, "predictor": predictor})
