"""A full TOFU evaluation of one model on one benchmark, and the retain model's cached truth ratios."""
from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .. import paths
from ..atomic import read_json_or_none, write_text_atomic
from ..data import Benchmark, Sample
from ..fingerprint import content_hash, weights_fingerprint
from ..models import load_model, load_tokenizer
from ..prompts import format_of
from . import metrics, passes, privacy
from .registry import MetricInput, compute_hooks

EVAL_RETAIN_SIZE = 200


def rouge_subsample(samples: list[Sample], size: int | None, seed: int = 0) -> list[Sample]:
    """The rows whose greedy answers a subsampled evaluation generates: `size` rows drawn without
    replacement by random.Random(seed), in their split order; the same rows every call (every
    epoch) for the same samples, size and seed. size None, or at least len(samples): every row."""
    if size is None or size >= len(samples):
        return samples

    keep = sorted(random.Random(seed).sample(range(len(samples)), size))
    return [samples[i] for i in keep]


def answer_token_cap(tokenizer, samples: list[Sample]) -> int:
    """The data's answer length in tokens: the longest reference answer of `samples` (`encode`'s
    tokens of the answer) + 1 for its closing EOS; 1 for no samples. A greedy answer cut there
    still has room for every reference token (ROUGE-L recall = LCS / reference length)."""
    if not samples:
        return 1
    ids = tokenizer([s.answer for s in samples], add_special_tokens=False)["input_ids"]
    return max(len(i) for i in ids) + 1


def eval_subset(samples: list[Sample], size: int) -> list[Sample]:
    """An evenly spaced, deterministic subset (TOFU also evaluates utility on a retain subset)."""
    if size <= 0 or len(samples) <= size:
        return samples
    step = len(samples) / size
    return [samples[int(i * step)] for i in range(size)]


@dataclass
class EvalReport:
    """Forget quality, model utility and their components; notes say what could not be computed."""

    forget_quality: float | None
    model_utility: float | None
    components: dict[str, float | None]
    forget_truth_ratios: list[float] | None = None
    notes: list[str] = field(default_factory=list)
    extra: dict[str, float | None] = field(default_factory=dict)  # memorisation, MIA, registered hooks
    forget_generations: dict[str, str] | None = None  # question → greedy answer (engine.eval.token_level)
    rouge_rows: int | None = None  # ROUGE on this many seeded rows per split (`rouge_subsample`); None: all
    new_tokens: int | None = None  # the greedy answers' length cap this evaluation used

    def to_dict(self) -> dict:
        return asdict(self)

    def values(self) -> dict[str, float | None]:
        """Every metric as one flat dict: FQ, MU, its components, then `extra`."""
        return {"forget_quality": self.forget_quality, "model_utility": self.model_utility, **self.components,
                **self.extra}


def eval_splits(bench: Benchmark, retain_size: int = EVAL_RETAIN_SIZE) -> list[tuple[str, str, list[Sample]]]:
    """(key, kind, samples) of the four evaluated splits: forget, retain (protocol 'tofu' fixes the
    sizes; 'all' takes an evenly spaced subset of `retain_size`) and the two real-world sets."""
    retain = bench.eval_split("retain")
    retain = eval_subset(retain, retain_size) if bench.protocol == "all" else retain
    return [("forget", "forget", bench.eval_split("forget")), ("retain", "retain", retain),
            ("real_authors", "real_world", bench.eval_split("real_authors")),
            ("world_facts", "real_world", bench.eval_split("world_facts"))]


def evaluate(model, tokenizer, bench: Benchmark, reference_tr: np.ndarray | None = None,
             retain_size: int = EVAL_RETAIN_SIZE, max_new_tokens: int = 64, batch_size: int = 64,
             progress: Callable[[int, int], None] | None = None,
             retain_mia: privacy.RetainMIA | None = None, gradnorm: bool = True) -> EvalReport:
    """Score `model` on the forget split, a retain subset and the two real-world sets (SPEC §4),
    plus memorisation and membership inference (`evaluate_and_score`).

    progress(done, total): questions whose model work is done, and in all."""
    return evaluate_and_score(model, tokenizer, bench, reference_tr, retain_size, max_new_tokens, batch_size,
                              progress, retain_mia=retain_mia, gradnorm=gradnorm)[0]


def evaluate_and_score(model, tokenizer, bench: Benchmark, reference_tr: np.ndarray | None = None,
                       retain_size: int = EVAL_RETAIN_SIZE, max_new_tokens: int = 64, batch_size: int = 64,
                       progress: Callable[[int, int], None] | None = None,
                       also_score: list[Sample] = (), retain_mia: privacy.RetainMIA | None = None,
                       gradnorm: bool = True, hooks: bool = True, rouge_rows: int | None = None,
                       rouge_seed: int = 0) -> tuple[EvalReport, list[torch.Tensor]]:
    """`evaluate`, plus the per-token NLL (1-D, over label positions) of each of `also_score`'s
    answers. The model work is one `passes.run`: every question's prompt runs once, for its
    greedy answer and for every text scored behind it (answers, paraphrases, perturbed answers,
    `also_score`'s answers); the holdout answers get a pass of their own (so that the other
    numbers keep every digit they had before them). The forget and holdout answers also get their
    token statistics there (`engine.eval.privacy`: extraction strength, exact memorisation, the
    MIA AUCs, privleak against `retain_mia`). gradnorm: also the gradient-norm AUC (one backward
    pass per forget and holdout answer). hooks: then every registered metric hook
    (`registry.compute_hooks`; a run's evaluation calls them itself, with its State).

    rouge_rows: generate greedy answers (the ROUGE-L components) for only `rouge_subsample(split,
    rouge_rows, rouge_seed)` of each split; probabilities and truth ratios (forward passes only,
    so FQ is exact) stay on every row, and every greedy answer stops at `answer_token_cap` (the
    longest reference answer of the evaluated splits + EOS) when that is below max_new_tokens
    (`EvalReport.new_tokens` says which). None: every row, max_new_tokens (the full protocol)."""
    splits = eval_splits(bench, retain_size)
    holdout = bench.eval_split("holdout")
    generated = {key: rouge_subsample(samples, rouge_rows, rouge_seed) for key, _, samples in splits}
    questions = [s.question for key, _, _ in splits for s in generated[key]]
    pairs = [p for _, kind, samples in splits for p in metrics.split_pairs(samples, kind)]
    pairs += [(s.question, s.answer) for s in also_score]
    sub = rouge_rows if rouge_rows is not None and any(len(generated[k]) < len(v) for k, _, v in splits) else None
    if sub is not None:  # a per-epoch point: answers no longer than the data's
        max_new_tokens = min(max_new_tokens, answer_token_cap(tokenizer, [s for _, _, v in splits for s in v]))
    outputs = passes.run(model, tokenizer, questions, pairs, max_new_tokens, batch_size, progress,
                         stats=privacy.pairs(splits[0][2]))
    if holdout:  # a pass of its own: the batches above, and so every digit of their numbers, stay as they were
        held = passes.run(model, tokenizer, [], [], batch_size=batch_size, stats=privacy.pairs(holdout))
        outputs.nll.update(held.nll)
        outputs.stats.update(held.stats)
    comps: dict[str, float | None] = {}
    notes: list[str] = []
    for key, kind, samples in splits[1:]:
        if not samples:
            notes.append(f"no {key} split: model utility is unavailable")
            comps.update({f"{key}_probability": None, f"{key}_rouge_l": None, f"{key}_truth_ratio": None})
            continue
        s = _score_split(outputs, samples, kind, generated[key])
        if s.truth_ratio_summary is None:
            notes.append(f"{key} has no perturbed answers: its truth ratio is unavailable")
        comps.update({f"{key}_probability": s.probability, f"{key}_rouge_l": s.rouge_l,
                      f"{key}_truth_ratio": s.truth_ratio_summary})
    forget_samples = splits[0][2]
    forget = _score_split(outputs, forget_samples, "forget", generated["forget"]) if forget_samples else None
    numbers = (None, None, None) if forget is None else (forget.probability, forget.rouge_l, forget.truth_ratio_summary)
    comps.update(zip(("forget_probability", "forget_rouge_l", "forget_truth_ratio"), numbers))
    fq = None
    if forget is None or forget.truth_ratios is None:
        notes.append("the forget split has no paraphrased/perturbed answers: forget quality is unavailable")
    elif reference_tr is None:
        notes.append("no retain model given: forget quality is unavailable")
    else:
        fq = metrics.forget_quality(np.array(forget.truth_ratios), reference_tr)
    extra = privacy.memorisation(outputs, forget_samples) if forget_samples else \
        dict.fromkeys(privacy.MEMORISATION_METRICS)
    norms = None
    if gradnorm and forget_samples and holdout:
        norms = (privacy.grad_norm_scores(model, tokenizer, forget_samples),
                 privacy.grad_norm_scores(model, tokenizer, holdout))
    mia_values, mia_notes = privacy.privacy_metrics(outputs, forget_samples, holdout, retain_mia, norms)
    extra.update(mia_values)
    notes += mia_notes
    report = EvalReport(fq, metrics.model_utility(comps), comps, None if forget is None else forget.truth_ratios, notes,
                        rouge_rows=sub, new_tokens=max_new_tokens, extra=extra,
                        forget_generations={s.question: outputs.generations[s.question]
                                            for s in forget_samples if s.question in outputs.generations})
    if hooks:
        report.extra.update(compute_hooks(MetricInput(model, tokenizer, bench, report.values())))
    return report, [outputs.nll[(s.question, s.answer)] for s in also_score]


def _score_split(outputs: passes.Outputs, samples: list[Sample], kind: str, generated: list[Sample]):
    """`metrics.score_split`, with ROUGE-L over the `generated` rows only when they are a subsample
    (the other rows' answers were not generated)."""
    if len(generated) == len(samples):
        return metrics.score_split(outputs, samples, kind)
    answers = {s.question: outputs.generations.get(s.question, "") for s in samples}
    scores = metrics.score_split(passes.Outputs(answers, outputs.nll), samples, kind)
    rouge = float(metrics.rouge_l_recall([answers[s.question] for s in generated],
                                         [s.answer for s in generated]).mean()) if generated else float("nan")
    return replace(scores, rouge_l=rouge, generations=[answers[s.question] for s in generated])


def _fingerprint(model_dir: Path, samples: list[Sample], prompt_format: str = "") -> str:
    """Cache key of a retain model's truth ratios: its weights, the prompt format and the samples."""
    return content_hash(weights_fingerprint(model_dir) or str(model_dir), prompt_format,
                        *(json.dumps(s.to_json(), sort_keys=True) for s in samples), length=20)


def prompt_format(model_dir: Path) -> str:
    """The key of the prompt format a model's answers are scored under (engine.prompts: template or
    chat template, system prompt, date, joint tokenisation)."""
    tok = load_tokenizer(model_dir)
    return format_of(tok).key(tok)


def reference_truth_ratios(retain_model_dir: str | Path, bench: Benchmark, device: str = "auto",
                           dtype: torch.dtype | None = None) -> np.ndarray | None:
    """The retain model's per-question forget TR values, computed once and cached on disk.

    dtype: the weights' dtype to compute them in, the same as the evaluated model's (a run evaluates
    its fp32 master weights; bf16 TRs against fp32 ones would shift FQ by precision alone); None:
    `load_model`'s default for the device. The cache key records it."""
    retain_model_dir = Path(retain_model_dir)
    forget = bench.eval_split("forget")
    key = _fingerprint(retain_model_dir, forget, prompt_format(retain_model_dir) + (f"|{dtype}" if dtype else ""))
    cache = paths.cache_dir() / f"reference_tr_{key}.json"
    cached = read_json_or_none(cache)  # a truncated or garbage file is ignored and rebuilt
    if isinstance(cached, list):
        return np.array(cached)
    model, tok = load_model(retain_model_dir, device, dtype=dtype)
    tr = metrics.truth_ratios(model, tok, forget)
    if tr is None:
        return None
    write_text_atomic(cache, json.dumps(tr.tolist()))
    return tr


def reference_mia(retain_model_dir: str | Path, bench: Benchmark, device: str = "auto") -> privacy.RetainMIA | None:
    """The retain model's `privacy.RetainMIA` on the evaluated forget and holdout splits, computed
    once and cached on disk (keyed by its weights, prompt format and the samples), like
    `reference_truth_ratios`; None when the data has no holdout split."""
    forget, holdout = bench.eval_split("forget"), bench.eval_split("holdout")
    if not forget or not holdout:
        return None
    retain_model_dir = Path(retain_model_dir)
    key = content_hash("reference-mia-v1", _fingerprint(retain_model_dir, forget, prompt_format(retain_model_dir)),
                       *(json.dumps(s.to_json(), sort_keys=True) for s in holdout), length=20)
    cache = paths.cache_dir() / f"reference_mia_{key}.json"
    cached = read_json_or_none(cache)  # a truncated or garbage file is ignored and rebuilt
    if isinstance(cached, dict):
        try:
            return privacy.RetainMIA(**cached)
        except TypeError:  # written by another version: rebuilt
            pass
    model, tok = load_model(retain_model_dir, device)
    ref = privacy.retain_mia(model, tok, forget, holdout)
    write_text_atomic(cache, json.dumps(asdict(ref)))
    return ref
