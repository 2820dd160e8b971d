"""How well each selector finds the ground-truth fact spans: precision, recall, F1 of its default
mask and AUROC of its scores, overall and per span type (built-in benchmark, or any data with spans).

Units are answer tokens (label positions without the closing EOS) of the forget samples; a token
is a positive when it overlaps a fact span (SPEC §1 offset rule).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from scipy.stats import rankdata

from ..data import Sample
from ..selectors import SELECTORS, NoSpansError, SelectorUnavailable, select
from ..tokens import encode_samples, fact_mask, iter_batches


def auroc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """Area under the ROC curve = P(score of a random positive > a random negative), ties count ½
    (Mann–Whitney U from average ranks). None when either class is empty."""
    labels = labels.astype(bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = rankdata(scores)  # average ranks for ties
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def precision_recall_f1(pred: np.ndarray, truth: np.ndarray) -> tuple[float | None, float | None, float | None]:
    """Token-level precision TP/(TP+FP), recall TP/(TP+FN) and their harmonic mean F1."""
    pred, truth = pred.astype(bool), truth.astype(bool)
    tp = int((pred & truth).sum())
    precision = tp / int(pred.sum()) if pred.any() else None
    recall = tp / int(truth.sum()) if truth.any() else None
    if precision is None or recall is None:
        return precision, recall, None
    f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return precision, recall, f1


@dataclass
class ReportRow:
    """One selector × span type ('all' = every fact token). Type rows: recall and AUROC against
    non-fact tokens; precision/F1 only on the 'all' row."""

    selector: str
    span_type: str
    tokens: int
    positives: int
    base_rate: float | None = None
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    auroc: float | None = None
    note: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def _token_truth(tokenizer, samples: list[Sample], batch_size: int) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Flat answer-token arrays: fact (bool) and the span type of each fact token ('' otherwise)."""
    types = sorted({sp.type for s in samples for sp in s.spans})
    fact, type_idx = [], []
    for chunk in iter_batches(samples, batch_size):
        batch = encode_samples(tokenizer, chunk)
        ans = batch.answer_mask
        code = torch.full(ans.shape, -1, dtype=torch.long)
        for j, t in enumerate(types):  # later types never overwrite an earlier one
            m = fact_mask(batch, chunk, t)
            code = torch.where(m & (code < 0), torch.full_like(code, j), code)
        fact.append((code >= 0)[ans].numpy())
        type_idx.append(code[ans].numpy())
    return np.concatenate(fact), types, np.concatenate(type_idx)


def selector_outputs(name: str, model, tokenizer, samples: list[Sample], params: dict | None = None,
                     batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Flat (scores, mask) over the answer tokens of all samples, scored in batches."""
    scores, masks = [], []
    for chunk in iter_batches(samples, batch_size):
        batch = encode_samples(tokenizer, chunk)
        out = select(name, model, tokenizer, chunk, batch=batch, **(params or {}))
        ans = batch.answer_mask.to(out.mask.device)
        scores.append(out.scores[ans].float().cpu().numpy())
        masks.append(out.mask[ans].cpu().numpy())
    return np.concatenate(scores), np.concatenate(masks)


def selector_report(model, tokenizer, samples: list[Sample], selectors: list[str] | None = None,
                    params: dict[str, dict] | None = None, batch_size: int = 32) -> list[ReportRow]:
    """Rows for every selector (registry order) × ('all' + each span type), best F1 first per type.

    Raises NoSpansError when the samples carry no spans: accuracy is then unavailable. A selector
    that cannot run (e.g. `atwu` before a scorer is fitted) gets one row with its message.
    """
    if not any(s.spans for s in samples):
        raise NoSpansError("these samples carry no ground-truth spans: selector accuracy is unavailable "
                           "(the built-in benchmark, `--data demo`, has them)")
    fact, types, type_idx = _token_truth(tokenizer, samples, batch_size)
    rows: list[ReportRow] = []
    for name in selectors or list(SELECTORS):
        try:
            scores, mask = selector_outputs(name, model, tokenizer, samples, (params or {}).get(name), batch_size)
        except SelectorUnavailable as err:
            rows.append(ReportRow(name, "all", len(fact), int(fact.sum()), note=str(err)))
            continue
        p, r, f1 = precision_recall_f1(mask, fact)
        rows.append(ReportRow(name, "all", len(fact), int(fact.sum()), float(fact.mean()), p, r, f1,
                              auroc(scores, fact)))
        for j, t in enumerate(types):
            is_t = type_idx == j
            keep = is_t | ~fact  # this type's tokens against the non-fact tokens
            rows.append(ReportRow(name, t, int(keep.sum()), int(is_t.sum()), None, None,
                                  float(mask[is_t].mean()) if is_t.any() else None, None,
                                  auroc(scores[keep], is_t[keep])))
    return rows


def rank_by_f1(rows: list[ReportRow]) -> list[str]:
    """Selector names ordered by F1 on the 'all' rows (unavailable ones last)."""
    main = [r for r in rows if r.span_type == "all"]
    return [r.selector for r in sorted(main, key=lambda r: -1.0 if r.f1 is None else r.f1, reverse=True)]


__all__ = ["ReportRow", "auroc", "precision_recall_f1", "rank_by_f1", "selector_outputs", "selector_report"]
