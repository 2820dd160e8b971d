"""The per-epoch evaluation of a run: TOFU metrics (FQ, MU and its components) plus the
token-level extras: probability drop since step 0 on target vs non-target (and fact vs
non-fact) answer tokens."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..resolve import model_path, retain_model_for
from ..tokens import encode_samples, fact_mask, iter_batches, label_rows, per_token_nll, per_token_rows
from .full import evaluate, reference_truth_ratios

if TYPE_CHECKING:  # engine.train imports this module; State is only an annotation here
    from ..train.state import State


def _token_prob(logits: torch.Tensor, batch) -> torch.Tensor:
    """p(y_t) = exp(−ℓ_t) at each label position, (B, T)."""
    return torch.exp(-per_token_nll(logits, batch))


def forget_token_probs(model, tokenizer, samples, batch_size: int = 64) -> list[torch.Tensor]:
    """Per sample, p(y_t) at each label position (1-D, CPU)."""
    return per_token_rows(model, tokenizer, samples, {"p": _token_prob}, batch_size)["p"]


def _mean_drop(p0: list[torch.Tensor], p: list[torch.Tensor], sel: list[torch.Tensor]) -> float | None:
    """Mean of p0 − p over the selected label positions of all samples; None when none are."""
    a, b, m = torch.cat(p0), torch.cat(p), torch.cat(sel).bool()
    return float((a - b)[m].mean()) if m.any() else None


@dataclass
class EvalContext:
    """What every evaluation of a run compares against, computed once at step 0."""

    reference_tr: np.ndarray | None  # the retain model's forget truth ratios (None: FQ unavailable)
    p0: list[torch.Tensor]  # step-0 label-token probabilities per forget sample
    answer_rows: list[torch.Tensor]  # answer-token masks over label positions per forget sample
    spans: list[torch.Tensor] | None  # ground-truth fact-span masks, when the data has spans


def eval_context(state: State) -> EvalContext:
    retain = state.config.retain_model or retain_model_for(state.config.model, state.config.data)
    ref_tr = reference_truth_ratios(model_path(retain), state.bench, state.device) if retain else None
    p0 = forget_token_probs(state.base_model(), state.tokenizer, state.forget)
    has_spans = any(s.spans for s in state.forget)
    answer_rows, spans = [], []
    for chunk in iter_batches(state.forget, 64):
        batch = encode_samples(state.tokenizer, chunk)
        answer_rows += label_rows(batch.answer_mask, batch)
        if has_spans:
            spans += label_rows(fact_mask(batch, chunk), batch)
    return EvalContext(ref_tr, p0, answer_rows, spans if has_spans else None)


def evaluate_state(state: State, ctx: EvalContext, progress=None) -> dict:
    """FQ, MU + components (forget_probability among them), token probability drops vs step 0,
    the fraction of answer tokens that are targets; a flat dict (plus `notes` when some
    number is unavailable). progress(done, total): questions scored (engine.eval.full.evaluate)."""
    model = state.base_model()
    report = evaluate(model, state.tokenizer, state.bench, ctx.reference_tr,
                      retain_size=state.config.retain_eval_size, max_new_tokens=state.config.eval_max_new_tokens,
                      progress=progress)
    p = forget_token_probs(model, state.tokenizer, state.forget)
    targets = state.weights.targets()  # fixed masks, or learned weights' current ones
    non_targets = [a & ~t for a, t in zip(ctx.answer_rows, targets)]
    m = {"forget_quality": report.forget_quality, "model_utility": report.model_utility, **report.components,
         "target_prob_drop": _mean_drop(ctx.p0, p, targets),
         "nontarget_prob_drop": _mean_drop(ctx.p0, p, non_targets),
         "target_fraction": float(torch.cat(targets).float().sum() / torch.cat(ctx.answer_rows).float().sum())}
    if ctx.spans is not None:
        m["fact_prob_drop"] = _mean_drop(ctx.p0, p, ctx.spans)
        m["nonfact_prob_drop"] = _mean_drop(ctx.p0, p, [a & ~s for a, s in zip(ctx.answer_rows, ctx.spans)])
    if report.notes:
        m["notes"] = list(report.notes)
    return m
