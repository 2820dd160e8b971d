"""The per-epoch evaluation of a run: TOFU metrics (FQ, MU and its components) plus the
token-level extras: probability drop since step 0 on target vs non-target (and fact vs
non-fact) answer tokens."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..tokens import encode_samples, fact_mask, iter_batches, label_rows, per_token_nll
from .state import State


@torch.no_grad()
def forget_token_probs(model, tokenizer, samples, batch_size: int = 64) -> list[torch.Tensor]:
    """Per sample, p(y_t) at each label position (1-D, CPU)."""
    device = next(model.parameters()).device
    was = model.training
    model.eval()
    out: list[torch.Tensor] = []
    for chunk in iter_batches(list(samples), batch_size):
        batch = encode_samples(tokenizer, chunk).to(device)
        nll = per_token_nll(model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits, batch)
        out += label_rows(torch.exp(-nll), batch)
    model.train(was)
    return out


def _mean_drop(p0: list[torch.Tensor], p: list[torch.Tensor], sel: list[torch.Tensor]) -> float | None:
    """Mean of p0 − p over the selected label positions of all samples; None when none are."""
    a, b, m = torch.cat(p0), torch.cat(p), torch.cat(sel).bool()
    return float((a - b)[m].mean()) if m.any() else None


def _current_targets(state: State) -> list[torch.Tensor]:
    """Target masks over label positions: fixed weights' masks, or the live ATWU scorer's g > threshold."""
    if state.scorer is None:
        return state.weights.targets
    from ..selectors.atwu import last_hidden

    model = state.base_model()
    was = model.training
    model.eval()
    rows = []
    for chunk in iter_batches(state.forget, 64):
        batch = encode_samples(state.tokenizer, chunk).to(state.device)
        with torch.no_grad():
            g = state.scorer(last_hidden(model, batch))  # (B, T)
        rows += label_rows((g > state.scorer_params["threshold"]) & batch.answer_mask, batch)
    model.train(was)
    return rows


@dataclass
class EvalContext:
    """What every evaluation of a run compares against, computed once at step 0."""

    reference_tr: np.ndarray | None  # the retain model's forget truth ratios (None: FQ unavailable)
    p0: list[torch.Tensor]  # step-0 label-token probabilities per forget sample
    answer_rows: list[torch.Tensor]  # answer-token masks over label positions per forget sample
    spans: list[torch.Tensor] | None  # ground-truth fact-span masks, when the data has spans


def eval_context(state: State) -> EvalContext:
    from ..evaluate import reference_truth_ratios
    from ..resolve import model_path, retain_model_for

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


def evaluate_state(state: State, ctx: EvalContext) -> dict:
    """FQ, MU + components (forget_probability among them), token probability drops vs step 0,
    the fraction of answer tokens that are targets; a flat dict (plus `notes` when some
    number is unavailable)."""
    from ..evaluate import evaluate

    model = state.base_model()
    report = evaluate(model, state.tokenizer, state.bench, ctx.reference_tr,
                      retain_size=state.config.retain_eval_size, max_new_tokens=state.config.eval_max_new_tokens)
    p = forget_token_probs(model, state.tokenizer, state.forget)
    targets = _current_targets(state)
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
