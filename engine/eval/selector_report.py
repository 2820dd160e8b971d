"""How well each selector finds the ground-truth fact spans: precision, recall, F1 of its mask and
AUROC of its scores, token level and word level, overall and per span type (the built-in
benchmark, or any data with spans, e.g. forget_spans_dev.json).

Token level: the units are answer tokens (label positions without the closing EOS) of the forget
samples; a token is a positive when it overlaps a fact span (SPEC §1 offset rule).
Word level: the units are the answer's words (`engine.masks.spans.word_spans`, as the `lexical`
selector reads them) that at least one token covers; a word is a positive when it overlaps a span,
predicted when any of its tokens is marked (`engine.masks.accuracy`), and scored by the highest
score of its tokens (word AUROC).
Type rows: recall and AUROC of that type's units against the units of no span (precision/F1 only
on the 'all' row). Spans with no type (None or "") count on the 'all' row only; when every span
has one and the same type, the type row would repeat 'all' and is left out.

Several parameter sets per selector (`SelectorVariant`): each is its own row, labelled
`name[key=value,…]`. A keep-ratio sweep (`ratios`) replaces each selector's own mask by the top
ceil(r · n) of its scores per sample (n = answer tokens; at least 1; ties: earlier token first),
one row per r; AUROC does not depend on r.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.stats import rankdata

from ..data import Sample
from ..masks.accuracy import Counts, mask_accuracy
from ..masks.spans import CharSpan, is_answer_token, label_mask_to_spans, label_offsets, overlaps, word_spans
from ..selectors import SELECTORS, NoSpansError, SelectorUnavailable, select
from ..tokens import encode_samples, iter_batches, label_rows


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
    """Precision TP/(TP+FP), recall TP/(TP+FN) and their harmonic mean F1 (`Counts`, the one home)."""
    c = Counts.of_arrays(pred, truth)
    return c.precision, c.recall, c.f1


@dataclass(frozen=True)
class SelectorVariant:
    """One row's selector: a registered name, its parameters, and the row label."""

    selector: str
    params: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        if not self.params:
            return self.selector
        return f"{self.selector}[{','.join(f'{k}={v}' for k, v in self.params.items())}]"


def variants_from_params(selectors: list[str], param_values: dict[str, dict[str, list]]) -> list[SelectorVariant]:
    """One variant per selector and per combination of its parameters' values (the cartesian
    product over keys, values in the order given); a selector without parameters gets one.

    param_values: {selector: {key: [value, …]}} (e.g. `--param tif.predictor=…` repeated)."""
    out = []
    for name in selectors:
        keys = list(param_values.get(name, {}))
        combos = itertools.product(*(param_values[name][k] for k in keys)) if keys else [()]
        out += [SelectorVariant(name, dict(zip(keys, combo))) for combo in combos]
    return out


@dataclass
class ReportRow:
    """One selector variant × span type ('all' = every fact unit) × keep ratio (None: the
    selector's own mask). Token columns, then the same at word level."""

    selector: str
    span_type: str
    tokens: int
    positives: int
    base_rate: float | None = None
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    auroc: float | None = None
    words: int = 0
    word_positives: int = 0
    word_precision: float | None = None
    word_recall: float | None = None
    word_f1: float | None = None
    word_auroc: float | None = None
    ratio: float | None = None
    note: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Truth:
    """Per sample: label offsets, and per answer token / word the set of span types it overlaps."""

    offsets: list[list[tuple[int, int]]]
    token_types: list[list[set]]  # per label position ({} for the EOS)
    words: list[list[tuple[int, int]]]  # words some token covers
    word_types: list[list[set]]
    types: list[str]


def _span_type(sp) -> str | None:
    return sp.type or None


def ground_truth(tokenizer, samples: list[Sample]) -> Truth:
    """Token and word truth of `samples` (see the module docstring for the units)."""
    offsets = label_offsets(tokenizer, samples)
    typed = sorted({_span_type(sp) for s in samples for sp in s.spans} - {None})
    types = typed if len(typed) > 1 or any(_span_type(sp) is None for s in samples for sp in s.spans) else []
    token_types, words, word_types = [], [], []
    for s, offs in zip(samples, offsets):
        spans = [CharSpan(sp.start, sp.end, _span_type(sp)) for sp in s.spans]
        token_types.append([{sp.type for sp in spans if overlaps(o, sp.start, sp.end)} for o in offs])
        ws = [(a, b) for a, b in word_spans(s.answer) if any(overlaps(o, a, b) for o in offs)]
        words.append(ws)
        word_types.append([{sp.type for sp in spans if sp.start < b and sp.end > a} for a, b in ws])
    return Truth(offsets, token_types, words, word_types, types)


def selector_rows(name: str, model, tokenizer, samples: list[Sample], params: dict | None = None,
                  batch_size: int = 32) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per sample, (scores, mask) over its label positions, scored in batches."""
    scores, masks = [], []
    for chunk in iter_batches(samples, batch_size):
        batch = encode_samples(tokenizer, chunk)
        out = select(name, model, tokenizer, chunk, batch=batch, **(params or {}))
        batch = batch.to(out.mask.device)
        scores += [r.float().cpu().numpy() for r in label_rows(out.scores, batch)]
        masks += [r.cpu().numpy().astype(bool) for r in label_rows(out.mask, batch)]
    return scores, masks


def selector_outputs(name: str, model, tokenizer, samples: list[Sample], params: dict | None = None,
                     batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Flat (scores, mask) over the answer tokens of all samples, scored in batches."""
    offsets = label_offsets(tokenizer, samples)
    scores, masks = selector_rows(name, model, tokenizer, samples, params, batch_size)
    keep = [np.array([is_answer_token(o) for o in offs], dtype=bool) for offs in offsets]
    return (np.concatenate([s[k] for s, k in zip(scores, keep)]),
            np.concatenate([m[k] for m, k in zip(masks, keep)]))


def top_ratio_masks(scores: list[np.ndarray], offsets, ratio: float) -> list[np.ndarray]:
    """Per sample, the ceil(ratio · n) highest-scoring answer tokens (n = its answer tokens, at
    least 1 when n > 0; ties: the earlier token first)."""
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"keep ratio must be in (0, 1], got {ratio}")
    out = []
    for s, offs in zip(scores, offsets):
        answer = np.array([is_answer_token(o) for o in offs], dtype=bool)
        n = int(answer.sum())
        k = max(1, math.ceil(n * ratio - 1e-9)) if n else 0
        order = sorted(np.flatnonzero(answer), key=lambda j: (-float(s[j]), j))
        mask = np.zeros(len(offs), dtype=bool)
        mask[order[:k]] = True
        out.append(mask)
    return out


def word_scores(scores: np.ndarray, offsets, words) -> np.ndarray:
    """Per word, the highest score of the tokens overlapping it."""
    return np.array([max(float(s) for o, s in zip(offsets, scores) if overlaps(o, a, b)) for a, b in words])


def _flat_tokens(truth: Truth, per_sample: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([np.asarray(v)[[is_answer_token(o) for o in offs]]
                           for v, offs in zip(per_sample, truth.offsets)] or [np.zeros(0)])


def _rows_for(label: str, truth: Truth, samples: list[Sample], scores, masks, ratio) -> list[ReportRow]:
    tok_types = [t for offs, types in zip(truth.offsets, truth.token_types)
                 for o, t in zip(offs, types) if is_answer_token(o)]
    fact = np.array([bool(t) for t in tok_types], dtype=bool)
    s_flat, m_flat = _flat_tokens(truth, scores).astype(float), _flat_tokens(truth, masks).astype(bool)
    w_types = [t for types in truth.word_types for t in types]
    w_fact = np.array([bool(t) for t in w_types], dtype=bool)
    w_scores = np.concatenate([word_scores(s, o, w) for s, o, w in zip(scores, truth.offsets, truth.words)]
                              or [np.zeros(0)])
    acc = mask_accuracy([s.answer for s in samples], truth.offsets, [m.tolist() for m in masks],
                        [[CharSpan(sp.start, sp.end, _span_type(sp)) for sp in s.spans] for s in samples])
    w_pred = np.array([any(m and overlaps(o, a, b) for o, m in zip(offs, mask)) for offs, mask, ws
                       in zip(truth.offsets, masks, truth.words) for a, b in ws], dtype=bool)
    p, r, f1 = precision_recall_f1(m_flat, fact)
    rows = [ReportRow(label, "all", len(fact), int(fact.sum()), float(fact.mean()) if len(fact) else None,
                      p, r, f1, auroc(s_flat, fact), len(w_fact), int(w_fact.sum()), acc.word.precision,
                      acc.word.recall, acc.word.f1, auroc(w_scores, w_fact), ratio)]
    for t in truth.types:
        is_t = np.array([t in ty for ty in tok_types], dtype=bool)
        keep = is_t | ~fact
        w_is_t = np.array([t in ty for ty in w_types], dtype=bool)
        w_keep = w_is_t | ~w_fact
        rows.append(ReportRow(label, t, int(keep.sum()), int(is_t.sum()), None, None,
                              float(m_flat[is_t].mean()) if is_t.any() else None, None,
                              auroc(s_flat[keep], is_t[keep]), int(w_keep.sum()), int(w_is_t.sum()), None,
                              float(w_pred[w_is_t].mean()) if w_is_t.any() else None, None,
                              auroc(w_scores[w_keep], w_is_t[w_keep]), ratio))
    return rows


def per_sample_records(label: str, truth: Truth, samples: list[Sample], scores, masks,
                       ratio: float | None = None) -> list[dict]:
    """One JSON-serialisable record per sample: its text, spans, the mask as character spans,
    per-token offsets/scores/mask (label positions, EOS included), and token/word TP, FP, FN."""
    out = []
    for i, s in enumerate(samples):
        acc = mask_accuracy([s.answer], [truth.offsets[i]], [masks[i].tolist()],
                            [[CharSpan(sp.start, sp.end, _span_type(sp)) for sp in s.spans]])
        out.append({"selector": label, "ratio": ratio, "index": i, "uid": s.uid, "question": s.question,
                    "answer": s.answer,
                    "spans": [{"start": sp.start, "end": sp.end, "type": _span_type(sp)} for sp in s.spans],
                    "mask_spans": [{"start": c.start, "end": c.end, "text": s.answer[c.start:c.end]}
                                   for c in label_mask_to_spans(truth.offsets[i], masks[i].tolist(), s.answer)],
                    "offsets": [list(o) for o in truth.offsets[i]],
                    "scores": [round(float(x), 6) for x in scores[i]],
                    "mask": [int(x) for x in masks[i]],
                    "token": acc.token.to_dict(), "word": acc.word.to_dict()})
    return out


def selector_report(model, tokenizer, samples: list[Sample], selectors: list[str] | None = None,
                    params: dict[str, dict] | None = None, batch_size: int = 32,
                    variants: list[SelectorVariant] | None = None, ratios: list[float] | None = None,
                    per_sample: list | None = None) -> list[ReportRow]:
    """Rows for every selector variant (registry order unless `variants` is given) × ('all' +
    each span type), first with each selector's own mask, then per keep ratio in `ratios`.

    params: {selector: {key: value}} for the default variants. per_sample: a list that receives
    `per_sample_records` for every variant (and ratio). Raises NoSpansError when the samples carry
    no spans. A selector that cannot run (e.g. `atwu` before a scorer is fitted) gets one row
    with its message.
    """
    if not any(s.spans for s in samples):
        raise NoSpansError("these samples carry no ground-truth spans: selector accuracy is unavailable "
                           "(the built-in benchmark, `--data demo`, has them)")
    samples = list(samples)
    if variants is None:
        variants = [SelectorVariant(n, dict((params or {}).get(n, {}))) for n in selectors or list(SELECTORS)]
    truth = ground_truth(tokenizer, samples)
    rows: list[ReportRow] = []
    for v in variants:
        try:
            scores, masks = selector_rows(v.selector, model, tokenizer, samples, v.params, batch_size)
        except SelectorUnavailable as err:
            units = [t for offs, ty in zip(truth.offsets, truth.token_types) for o, t in zip(offs, ty)
                     if is_answer_token(o)]
            rows.append(ReportRow(v.label, "all", len(units), sum(map(bool, units)), note=str(err)))
            continue
        for ratio in [None, *(ratios or [])]:
            chosen = masks if ratio is None else top_ratio_masks(scores, truth.offsets, ratio)
            rows += _rows_for(v.label, truth, samples, scores, chosen, ratio)
            if per_sample is not None:
                per_sample += per_sample_records(v.label, truth, samples, scores, chosen, ratio)
    return rows


def rank_by_f1(rows: list[ReportRow]) -> list[str]:
    """Selector labels ordered by token F1 on the 'all' rows of their own masks (unavailable last)."""
    main = [r for r in rows if r.span_type == "all" and r.ratio is None]
    return [r.selector for r in sorted(main, key=lambda r: -1.0 if r.f1 is None else r.f1, reverse=True)]


__all__ = ["ReportRow", "SelectorVariant", "Truth", "auroc", "ground_truth", "per_sample_records",
           "precision_recall_f1", "rank_by_f1", "selector_outputs", "selector_report", "selector_rows",
           "top_ratio_masks", "variants_from_params", "word_scores"]
