"""The selector contract: a batch of forget samples in, per-label-position scores and a mask out."""
from __future__ import annotations

import contextlib
from contextvars import ContextVar
from dataclasses import dataclass, field

import torch

from ..data import Sample
from ..tokens import Batch, eval_mode, forward_logits


class SelectorUnavailable(ValueError):
    """The selector cannot run here yet (missing data, a scorer not fitted, …); the message says why
    and what to do."""


@dataclass
class SelectorOutput:
    """scores: (B, T) float, 0 off label positions. mask: (B, T) bool, default forget targets;
    always inside `batch.answer_mask` (never padding, prompt or the closing EOS)."""

    scores: torch.Tensor
    mask: torch.Tensor
    name: str
    params: dict = field(default_factory=dict)


@dataclass
class SelectorInput:
    """What every selector may look at: the model, its tokenizer, the samples and their batch."""

    model: torch.nn.Module
    tokenizer: object
    samples: list[Sample]
    batch: Batch


def top_fraction_mask(scores: torch.Tensor, allowed: torch.Tensor, ratio: float) -> torch.Tensor:
    """Per row, the ceil(ratio · n_allowed) highest-scoring allowed positions (at least 1). Batched.

    scores, allowed: (B, T). Ties are broken by position (earlier first).
    """
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"ratio must be in (0, 1], got {ratio}")
    n = allowed.sum(1)  # (B,)
    k = torch.ceil(n.float() * ratio).long().clamp(min=1) * (n > 0)  # (B,)
    masked = scores.float().masked_fill(~allowed, float("-inf"))
    order = masked.argsort(dim=1, descending=True, stable=True)  # (B, T)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(order.shape[1], device=order.device).expand_as(order))
    return (rank < k.unsqueeze(1)) & allowed


def top_k_mask(scores: torch.Tensor, allowed: torch.Tensor, k: int) -> torch.Tensor:
    """Per row, the k highest-scoring allowed positions (all of them when fewer). Batched."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    masked = scores.float().masked_fill(~allowed, float("-inf"))
    order = masked.argsort(dim=1, descending=True, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(order.shape[1], device=order.device).expand_as(order))
    return (rank < k) & allowed


def default_mask(scores: torch.Tensor, allowed: torch.Tensor, k: int | None = None, ratio: float = 0.3) -> torch.Tensor:
    """The default target mask of a scoring selector: top-k per row when k is given, else the
    top `ratio` fraction of each row's answer tokens [choice: r = 0.3, as TokenUnlearn and DTO]."""
    return top_k_mask(scores, allowed, k) if k is not None else top_fraction_mask(scores, allowed, ratio)


_SHARED: ContextVar[list | None] = ContextVar("shared_logits", default=None)


@contextlib.contextmanager
def shared_forward():
    """Inside: `logits_of` computes the logits of one (model, input_ids, attention_mask) once and hands
    the same tensor to every later call with equal inputs (Explore scores one chunk with every
    selector: wga, satimp, entropy and tokenunlearn's first pass then share one forward). Per thread
    (a ContextVar); the logits are dropped on exit. Callers must not modify the logits in place."""
    token = _SHARED.set([])
    try:
        yield
    finally:
        _SHARED.reset(token)


@torch.no_grad()
def logits_of(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
    """Logits (B, T, V) of one batched forward, without gradients, model in eval mode (shared
    between selectors inside `shared_forward`)."""
    memo = _SHARED.get()
    if memo is not None:
        for m, ids, att, logits in memo:
            if m is model and ids.shape == batch.input_ids.shape and torch.equal(ids, batch.input_ids) \
                    and torch.equal(att, batch.attention_mask):
                return logits
    with eval_mode(model):
        logits = forward_logits(model, batch)
    if memo is not None:
        memo.append((model, batch.input_ids.clone(), batch.attention_mask.clone(), logits))
    return logits
