"""The metrics where token-level and sequence-level unlearning differ (issue 20, item 2): whether the
facts are still said, whether the model still answers, whether it still says everything but the
facts, and how the probability of non-target vs target answer tokens moved since step 0.

All are computed from what the per-epoch evaluation already has: the greedy answers to the forget
questions (`EvalReport.forget_generations`, made in the evaluation's one pass; nothing is generated
twice) and the per-token probabilities of the forget answers before (step 0) and now.

"Facts" are the data's ground-truth spans when it has them, else the targets of the mask in use
(as character spans, `spans.label_mask_to_spans`); the dict holds `nonfact_retention` exactly when
spans were used.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ..masks.leak_check import leak_rows, summarise, target_texts
from ..masks.spans import as_char_span

REPEAT_SHARE = 0.5  # one word over more than half of an answer's words: degenerate
REPEAT_MIN_WORDS = 4  # ... when the answer has at least this many words (a one-word answer is not a loop)


def is_degenerate(text: str) -> bool:
    """True for an answer that says nothing: empty after stripping; no alphanumeric character
    (only punctuation / symbols); or, with ≥ REPEAT_MIN_WORDS whitespace-separated words, one word
    (case-folded, punctuation stripped) making up more than REPEAT_SHARE (50 %) of them (a loop such as
    "the the the the")."""
    text = text.strip()
    if not text or not any(c.isalnum() for c in text):
        return True
    words = [re.sub(r"\W+", "", w.casefold()) for w in text.split()]
    words = [w for w in words if w]
    if len(words) >= REPEAT_MIN_WORDS:
        return Counter(words).most_common(1)[0][1] > REPEAT_SHARE * len(words)
    return False


def answered_rate(generations: Sequence[str]) -> float | None:
    """Fraction of greedy answers that are not degenerate (`is_degenerate`); None without answers."""
    return sum(not is_degenerate(g) for g in generations) / len(generations) if generations else None


def fact_leak_rate(questions: Sequence[str], answers: Sequence[str], generations: Sequence[str],
                   spans: Sequence[Sequence[Any]]) -> float | None:
    """The leak check's headline rate (`engine.masks.leak_check`): leaked facts / facts, a fact
    leaking when its normalised text occurs as whole words in the normalised greedy answer."""
    targets = [target_texts(a, sp) for a, sp in zip(answers, spans)]
    return summarise(leak_rows(questions, generations, targets)).leak_rate


def kept_text(answer: str, spans: Sequence[Any]) -> str:
    """The answer with every span's characters removed, whitespace collapsed."""
    keep = [True] * len(answer)
    for sp in map(as_char_span, spans):
        for k in range(max(0, sp.start), min(len(answer), sp.end)):
            keep[k] = False
    return " ".join("".join(c if k else " " for c, k in zip(answer, keep)).split())


def kept_words_recall(answers: Sequence[str], generations: Sequence[str], spans: Sequence[Sequence[Any]]) -> float | None:
    """Mean ROUGE-L recall (rouge-score, stemmer on) of each greedy answer against its answer with
    the fact spans removed (`kept_text`): does it still say everything but the facts? Samples whose
    kept text is empty are left out; None when all are."""
    from .metrics import rouge_l_recall  # deferred: torch

    pairs = [(g, kept_text(a, sp)) for a, g, sp in zip(answers, generations, spans)]
    pairs = [(g, r) for g, r in pairs if any(c.isalnum() for c in r)]
    if not pairs:
        return None
    return float(rouge_l_recall([g for g, _ in pairs], [r for _, r in pairs]).mean())


def retention(p0: Sequence[torch.Tensor], p: Sequence[torch.Tensor], select: Sequence[torch.Tensor]) -> float | None:
    """mean p_now / mean p_step0 over the selected label positions of all samples (ratio of the
    two means); None when none is selected or the step-0 mean is 0."""
    m = torch.cat([s.bool() for s in select]) if select else torch.zeros(0, dtype=torch.bool)
    if not m.any():
        return None
    before = float(torch.cat(list(p0))[m].double().mean())
    return None if before <= 0 else float(torch.cat(list(p))[m].double().mean()) / before


def removal(p0, p, select) -> float | None:
    """1 − `retention`: the share of the selected tokens' mean probability gone since step 0."""
    r = retention(p0, p, select)
    return None if r is None else 1.0 - r


def token_level_metrics(samples: Sequence, generations: Mapping[str, str] | None, p0: Sequence[torch.Tensor],
                        p: Sequence[torch.Tensor], answer_rows: Sequence[torch.Tensor],
                        targets: Sequence[torch.Tensor], fact_rows: Sequence[torch.Tensor] | None,
                        offsets: Sequence | None = None) -> dict:
    """The metrics of the module docstring for one evaluation, as a flat dict.

    samples: the forget samples (question, answer, spans); generations: question → greedy answer
    (the evaluation's; samples whose question it lacks are left out of the generation metrics);
    p0, p, answer_rows, targets, fact_rows: per sample over label positions (1-D); offsets: label
    offsets per sample, needed to turn the mask in use into spans when the data has no spans.

    nontarget_retention / target_removal against the mask in use; nonfact_retention / fact_removal
    against the ground-truth spans (only when the data has them).
    """
    non_targets = [a & ~t for a, t in zip(answer_rows, targets)]
    m: dict = {"nontarget_retention": retention(p0, p, non_targets), "target_removal": removal(p0, p, targets)}
    if fact_rows is not None:
        m["nonfact_retention"] = retention(p0, p, [a & ~f for a, f in zip(answer_rows, fact_rows)])
        m["fact_removal"] = removal(p0, p, fact_rows)
    if not generations:
        return m
    has_spans = any(s.spans for s in samples)
    if has_spans:
        facts = [list(s.spans) for s in samples]
    elif offsets is not None:
        from ..masks.spans import label_mask_to_spans  # deferred: torch

        facts = [label_mask_to_spans(o, t.tolist(), s.answer) for s, o, t in zip(samples, offsets, targets)]
    else:
        facts = None
    rows = [(s, f) for s, f in zip(samples, facts or [None] * len(samples)) if s.question in generations]
    gens = [generations[s.question] for s, _ in rows]
    m["answered_rate"] = answered_rate(gens)
    if facts is not None and rows:
        qs, ans, sp = [s.question for s, _ in rows], [s.answer for s, _ in rows], [f for _, f in rows]
        m["fact_leak_rate"] = fact_leak_rate(qs, ans, gens, sp)
        m["kept_words_recall"] = kept_words_recall(ans, gens, sp)
    return m
