"""TOFU metrics (SPEC §4): answer probability, truth ratio, forget quality, ROUGE-L, model utility.

Pure formulas take numbers; the batched model functions take a model, a tokenizer and
Samples. All model work runs under `torch.no_grad()` in eval mode, in batches.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.stats import ks_2samp

from ..data import Sample
from ..tokens import encode, eval_mode, forward_logits, iter_batches, per_token_nll, prompt_ids


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


def rouge_l_recall(predictions: list[str], references: list[str]) -> np.ndarray:
    """ROUGE-L recall of each prediction against its reference (rouge-score, stemmer on)."""
    from rouge_score import rouge_scorer  # heavy (pulls in nltk) and only needed for generations

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return np.array([scorer.score(ref, pred)["rougeL"].recall for pred, ref in zip(predictions, references)])


# ---------------------------------------------------------------- batched model work

@torch.no_grad()
def mean_answer_nll(model, tokenizer, questions: list[str], answers: list[str], batch_size: int = 64) -> np.ndarray:
    """Mean NLL over each answer's label tokens (answer + EOS), (N,). Batched, no grad; rows are
    batched in order of length (less padding) and returned in the input order."""
    device = next(model.parameters()).device
    out = torch.zeros(len(questions), dtype=torch.float64)
    order = sorted(range(len(questions)), key=lambda i: len(questions[i]) + len(answers[i]))  # less padding
    with eval_mode(model):
        for idx in iter_batches(order, batch_size):
            batch = encode(tokenizer, [questions[i] for i in idx], [answers[i] for i in idx]).to(device)
            nll = per_token_nll(forward_logits(model, batch), batch)
            out[idx] = (nll.sum(1) / batch.label_mask.sum(1).clamp(min=1)).double().cpu()
    return out.numpy()


@torch.no_grad()
def greedy_generate(model, tokenizer, questions: list[str], max_new_tokens: int = 64,
                    batch_size: int = 32) -> list[str]:
    """Greedy answers to each question: left-padded batches (so every row's last prompt token sits at
    the same position and new tokens append to the right), the KV cache on (`use_cache=True`, one
    token's forward per new token), stopping when every row has produced EOS."""
    device = next(model.parameters()).device
    with eval_mode(model):
        eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
        outputs: list[str] = []
        for chunk in iter_batches(questions, batch_size):
            ids = prompt_ids(tokenizer, chunk)
            width = max(len(r) for r in ids)
            input_ids = torch.tensor([[pad] * (width - len(r)) + r for r in ids], device=device)
            attention = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in ids], device=device)
            room = getattr(model.config, "n_positions", None) or getattr(model.config, "max_position_embeddings", 10**6)
            new = max(1, min(max_new_tokens, room - width))
            gen = model.generate(input_ids=input_ids, attention_mask=attention, max_new_tokens=new,
                                 do_sample=False, eos_token_id=eos, pad_token_id=pad, use_cache=True)
            for row in gen[:, width:].tolist():
                if eos in row:
                    row = row[:row.index(eos)]
                outputs.append(tokenizer.decode(row, skip_special_tokens=True).strip())
    return outputs


def _flat_alternatives(samples: list[Sample], use_answer_as_paraphrase: bool):
    """(questions, texts) of every paraphrase (or answer) and perturbed answer, flattened."""
    qs, texts = [], []
    for s in samples:
        para = s.answer if use_answer_as_paraphrase or s.paraphrased_answer is None else s.paraphrased_answer
        for t in (para, *s.perturbed_answers):
            qs.append(s.question)
            texts.append(t)
    return qs, texts


def _alternative_nll(model, tokenizer, samples: list[Sample], use_answer: bool,
                     batch_size: int) -> np.ndarray | None:
    """(N, 1 + J) mean NLLs of the paraphrase (or answer) and the first J perturbed answers, or None
    when some sample lacks perturbed answers (or a paraphrase)."""
    if not samples or any(not s.perturbed_answers for s in samples):
        return None
    if not use_answer and any(s.paraphrased_answer is None for s in samples):
        return None
    j = min(len(s.perturbed_answers) for s in samples)
    trimmed = [Sample(s.question, s.answer, s.paraphrased_answer, s.perturbed_answers[:j]) for s in samples]
    qs, texts = _flat_alternatives(trimmed, use_answer)
    return mean_answer_nll(model, tokenizer, qs, texts, batch_size).reshape(len(samples), j + 1)


def truth_ratios(model, tokenizer, samples: list[Sample], use_answer: bool = False,
                 batch_size: int = 64) -> np.ndarray | None:
    """Per-question TR, or None when some sample lacks perturbed answers (or a paraphrase)."""
    nll = _alternative_nll(model, tokenizer, samples, use_answer, batch_size)
    return None if nll is None else truth_ratio(nll[:, 0], nll[:, 1:])


@dataclass
class SplitScores:
    """Per-split numbers; `None` where the data cannot give them."""

    probability: float
    rouge_l: float
    truth_ratio_summary: float | None
    truth_ratios: list[float] | None = None
    generations: list[str] = field(default_factory=list)


def score_split(model, tokenizer, samples: list[Sample], kind: str, max_new_tokens: int = 64,
                batch_size: int = 64) -> SplitScores:
    """Probability, ROUGE-L and truth-ratio summary of one split.

    kind: 'forget' (min(TR,1/TR)), 'retain' (max(0,1−TR)) or 'real_world' (max(0,1−TR) with the
    answer in place of the paraphrase, and the probability normalised against perturbed answers).
    """
    answers = [s.answer for s in samples]
    questions = [s.question for s in samples]
    gens = greedy_generate(model, tokenizer, questions, max_new_tokens, batch_size)
    rouge = float(rouge_l_recall(gens, answers).mean())
    nll = _alternative_nll(model, tokenizer, samples, kind == "real_world", batch_size)  # (N, 1 + J)
    tr = None if nll is None else truth_ratio(nll[:, 0], nll[:, 1:])
    if kind == "real_world" and nll is not None:  # the same (answer, perturbed) NLLs as its TR
        prob = normalised_probability(nll[:, 0], nll[:, 1:])
    else:
        prob = float(answer_probability(mean_answer_nll(model, tokenizer, questions, answers, batch_size)).mean())
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
