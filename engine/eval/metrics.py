"""TOFU metrics (SPEC §4): answer probability, truth ratio, forget quality, ROUGE-L, model utility.

Pure formulas take numbers; `score_split` takes what one `passes.run` (all model work of an
evaluation, under `torch.no_grad()` in eval mode, in batches) produced; `mean_answer_nll`,
`greedy_generate` and `truth_ratios` run the model themselves.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.stats import ks_2samp

from ..data import Sample
from . import passes


# ---------------------------------------------------------------- pure formulas

def answer_probability(mean_nll: np.ndarray) -> np.ndarray:
    """P̃(a|q) = exp(−mean NLL over the answer's label tokens)."""
    return np.exp(-np.asarray(mean_nll, dtype=np.float64))


def truth_ratio(para_nll: np.ndarray, perturbed_nll: np.ndarray) -> np.ndarray:
    """TR = exp(ℓ̄(paraphrase) − mean_j ℓ̄(perturbed_j)); inputs (N,) and (N, J) mean NLLs."""
    return np.exp(np.asarray(para_nll, np.float64) - np.asarray(perturbed_nll, np.float64).mean(axis=1))


def forget_tr_summary(tr: np.ndarray) -> float:
    """Forget-set truth-ratio summary: mean min(TR, 1/TR)."""
    tr = np.asarray(tr, np.float64)
    return float(np.mean(np.minimum(tr, 1.0 / tr)))


def retain_tr_summary(tr: np.ndarray) -> float:
    """Retain / real-world truth-ratio summary: mean max(0, 1 − TR)."""
    return float(np.mean(np.maximum(0.0, 1.0 - np.asarray(tr, np.float64))))


def forget_quality(tr: np.ndarray, retain_model_tr: np.ndarray) -> float:
    """FQ = p-value of the two-sample KS test between TR values of the model and the retain model."""
    return float(ks_2samp(np.asarray(tr), np.asarray(retain_model_tr)).pvalue)


def normalised_probability(answer_nll: np.ndarray, perturbed_nll: np.ndarray) -> float:
    """Real-world sets: mean of P̃(a) / (P̃(a) + Σ_j P̃(perturbed_j)); inputs (N,), (N, J)."""
    pa = answer_probability(answer_nll)
    pp = answer_probability(perturbed_nll).sum(axis=1)
    return float(np.mean(pa / (pa + pp)))


def harmonic_mean(values: list[float]) -> float:
    """Harmonic mean; any value ≤ 0 makes it 0 (model utility's rule)."""
    if any(v <= 0 for v in values):
        return 0.0
    return len(values) / sum(1.0 / v for v in values)


@functools.lru_cache(maxsize=1)
def _rouge_scorer():
    from rouge_score import rouge_scorer  # deferred: rouge_score (pulls in nltk; only for generations)

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


@functools.lru_cache(maxsize=1 << 16)
def _rouge_tokens(text: str) -> tuple[str, ...]:
    """rouge-score's tokens of `text` (lower-cased, Porter-stemmed): what `RougeScorer.score` makes
    of each text, kept across calls (the references, and most answers, are the same every epoch)."""
    return tuple(_rouge_scorer()._tokenizer.tokenize(text))


def rouge_l_recall(predictions: list[str], references: list[str]) -> np.ndarray:
    """ROUGE-L recall of each prediction against its reference (rouge-score, stemmer on):
    `RougeScorer.score(ref, pred)['rougeL'].recall`, its LCS on memoised tokens (`_rouge_tokens`)."""
    from rouge_score.rouge_scorer import _score_lcs  # deferred: rouge_score

    return np.array([_score_lcs(list(_rouge_tokens(ref)), list(_rouge_tokens(pred))).recall
                     for pred, ref in zip(predictions, references)])


# ---------------------------------------------------------------- batched model work (engine.eval.passes)

def mean_answer_nll(model, tokenizer, questions: list[str], answers: list[str], batch_size: int = 64) -> np.ndarray:
    """Mean NLL over each answer's label tokens (answer + EOS), (N,), in the input order; each
    distinct prompt runs once (`passes.run`)."""
    out = passes.run(model, tokenizer, [], list(zip(questions, answers)), batch_size=batch_size)
    return np.array([mean_nll(out.nll[pair]) for pair in zip(questions, answers)])


def mean_nll(row: torch.Tensor) -> float:
    """ℓ̄: the mean of one text's per-token NLLs over its label positions, in float64."""
    return float(row.double().mean())


def greedy_generate(model, tokenizer, questions: list[str], max_new_tokens: int = 64,
                    batch_size: int = 32) -> list[str]:
    """Greedy answers to each question (`passes.greedy_decode`: KV cache, left-padded batches of
    prompts sorted by length, a row stops at its EOS), in the input order; the same text HF
    `generate(do_sample=False)` gives."""
    out = passes.run(model, tokenizer, questions, [], max_new_tokens, batch_size)
    return [out.generations[q] for q in questions]


def _alternatives(samples: list[Sample], use_answer: bool) -> list[list[str]] | None:
    """Per sample, the texts its truth ratio compares: paraphrase (or the answer when
    `use_answer`) then the first J perturbed answers, J the fewest any sample has; None when some
    sample lacks perturbed answers (or a paraphrase)."""
    if not samples or any(not s.perturbed_answers for s in samples):
        return None
    if not use_answer and any(s.paraphrased_answer is None for s in samples):
        return None
    j = min(len(s.perturbed_answers) for s in samples)
    return [[s.answer if use_answer else s.paraphrased_answer, *s.perturbed_answers[:j]] for s in samples]


def split_pairs(samples: list[Sample], kind: str) -> list[tuple[str, str]]:
    """Every (question, text) pair `score_split` needs the NLL of: answers and alternatives."""
    alts = _alternatives(samples, kind == "real_world") or [[] for _ in samples]
    return [(s.question, t) for s, texts in zip(samples, alts) for t in (s.answer, *texts)]


def _alternative_nll(samples: list[Sample], use_answer: bool, nll: dict) -> np.ndarray | None:
    """(N, 1 + J) mean NLLs of `_alternatives` from per-token NLL rows `nll[(question, text)]`."""
    alts = _alternatives(samples, use_answer)
    if alts is None:
        return None
    return np.array([[mean_nll(nll[(s.question, t)]) for t in texts] for s, texts in zip(samples, alts)])


def truth_ratios(model, tokenizer, samples: list[Sample], use_answer: bool = False,
                 batch_size: int = 64) -> np.ndarray | None:
    """Per-question TR, or None when some sample lacks perturbed answers (or a paraphrase)."""
    alts = _alternatives(samples, use_answer)
    if alts is None:
        return None
    pairs = [(s.question, t) for s, texts in zip(samples, alts) for t in texts]
    nll = _alternative_nll(samples, use_answer, passes.run(model, tokenizer, [], pairs, batch_size=batch_size).nll)
    return truth_ratio(nll[:, 0], nll[:, 1:])


@dataclass
class SplitScores:
    """Per-split numbers; `None` where the data cannot give them."""

    probability: float
    rouge_l: float
    truth_ratio_summary: float | None
    truth_ratios: list[float] | None = None
    generations: list[str] = field(default_factory=list)


def score_split(outputs: passes.Outputs, samples: list[Sample], kind: str) -> SplitScores:
    """Probability, ROUGE-L and truth-ratio summary of one split, from a `passes.run` that answered
    its questions and scored its `split_pairs`.

    kind: 'forget' (min(TR,1/TR)), 'retain' (max(0,1−TR)) or 'real_world' (max(0,1−TR) with the
    answer in place of the paraphrase, and the probability normalised against perturbed answers).
    """
    gens = [outputs.generations[s.question] for s in samples]
    rouge = float(rouge_l_recall(gens, [s.answer for s in samples]).mean())
    nll = _alternative_nll(samples, kind == "real_world", outputs.nll)  # (N, 1 + J)
    tr = None if nll is None else truth_ratio(nll[:, 0], nll[:, 1:])
    if kind == "real_world" and nll is not None:  # the same (answer, perturbed) NLLs as its TR
        prob = normalised_probability(nll[:, 0], nll[:, 1:])
    else:
        prob = float(answer_probability([mean_nll(outputs.nll[(s.question, s.answer)]) for s in samples]).mean())
    if tr is None:
        summary = None
    else:
        summary = forget_tr_summary(tr) if kind == "forget" else retain_tr_summary(tr)
    return SplitScores(prob, rouge, summary, None if tr is None else tr.tolist(), gens)


def model_utility(components: dict[str, float | None]) -> float | None:
    """Harmonic mean of the nine retain / real-authors / world-facts numbers; None if any missing."""
    keys = [f"{split}_{m}" for split in ("retain", "real_authors", "world_facts")
            for m in ("probability", "rouge_l", "truth_ratio")]
    values = [components.get(k) for k in keys]
    if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in values):
        return None
    return harmonic_mean([float(v) for v in values])
