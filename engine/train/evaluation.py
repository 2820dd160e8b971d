"""The per-epoch evaluation of a run: TOFU metrics (FQ, MU and its components) plus the
token-level extras: probability drop since step 0 on target vs non-target (and fact vs
non-fact) answer tokens."""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass

import numpy as np
import torch

from .. import paths
from ..atomic import read_json_or_none, write_text_atomic
from ..eval import passes
from ..eval.full import EvalReport, evaluate_and_score, reference_mia, reference_truth_ratios
from ..eval.privacy import RetainMIA
from ..eval.registry import MetricInput, compute_hooks
from ..eval.token_level import token_level_metrics
from ..fingerprint import content_hash, weights_fingerprint
from ..masks.spans import label_offsets
from ..memory_plan import ModelShape, budget_of, plan_evaluation
from ..models.loading import model_context
from ..resolve import model_path, retain_model_for
from ..tokens import PLAIN_TEMPLATE, encode_samples, fact_mask, iter_batches, label_rows
from .state import State

log = logging.getLogger(__name__)



def forget_token_probs(model, tokenizer, samples, batch_size: int = 64) -> list[torch.Tensor]:
    """Per sample, p(y_t) = exp(−ℓ_t) at each label position of its answer (1-D, CPU), from the
    same pass `evaluate_and_score` makes (`passes.run`)."""
    pairs = [(s.question, s.answer) for s in samples]
    nll = passes.run(model, tokenizer, [], pairs, batch_size=batch_size).nll
    return [torch.exp(-nll[pair]) for pair in pairs]


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
    step0_report: EvalReport | None = None  # the target model's evaluation, when it came from the cache
    step0_key: str | None = None  # its cache key (None: the model has no safetensors to fingerprint)
    reference_mia: RetainMIA | None = None  # the retain model's MIA numbers (None: no retain model or holdout)


def eval_batch_size(state: State) -> int:
    """RunConfig.eval_batch_size, or `memory_plan.plan_evaluation`'s choice beside the run's
    resident gradients and AdamW states (logged)."""
    if state.config.eval_batch_size is not None:
        return state.config.eval_batch_size

    model = state.base_model()
    shape = ModelShape.from_model(model)
    b = next(model.parameters()).element_size()
    seq = model_context(model) or 2048
    seq = min(seq, 512)  # TOFU answers fit well within 512 tokens [choice]
    plan = plan_evaluation(shape, seq, budget_of(state.device), b, resident=3 * shape.trainable * b)
    for note in plan.notes:
        log.info("evaluation: %s", note)
    return plan.settings["eval_batch"]


def step0_cache_key(state: State, reference_tr: np.ndarray | None, ref_mia: RetainMIA | None = None) -> str | None:
    """Cache key of the target model's step-0 evaluation: its weights fingerprint, the data (every
    forget and evaluation sample), the prompt format and the evaluation settings (retain subset,
    generation length, the retain model's truth ratios). None when the weights have no
    fingerprint (no safetensors file)."""
    weights = weights_fingerprint(model_path(state.config.model))
    if weights is None:
        return None
    bench, cfg = state.bench, state.config
    data = [json.dumps(s.to_json(), sort_keys=True) for s in state.forget]
    for split in ("forget", "retain", "real_authors", "world_facts", "holdout"):
        data += [split] + [json.dumps(s.to_json(), sort_keys=True) for s in bench.eval_split(split)]
    fmt = getattr(state.tokenizer, "chat_template", None) or PLAIN_TEMPLATE
    settings = json.dumps({"protocol": bench.protocol, "retain_eval_size": cfg.retain_eval_size,
                           "eval_max_new_tokens": cfg.eval_max_new_tokens,
                           "reference_tr": None if reference_tr is None else np.asarray(reference_tr).tolist(),
                           "reference_mia": None if ref_mia is None else asdict(ref_mia),
                           **({} if cfg.eval_gradnorm else {"gradnorm": False})})
    return content_hash("step0-eval-v2", weights, fmt, settings, *data, length=24)


def _cache_file(key: str):
    return paths.cache_dir() / f"step0_eval_{key}.json"


def _load_step0(key: str | None) -> tuple[EvalReport, list[torch.Tensor]] | None:
    cached = read_json_or_none(_cache_file(key)) if key else None
    if not isinstance(cached, dict) or "report" not in cached or "p0" not in cached:
        return None
    try:
        return EvalReport(**cached["report"]), [torch.tensor(r, dtype=torch.float32) for r in cached["p0"]]
    except TypeError:  # written by another version: rebuilt
        return None


def eval_context(state: State) -> EvalContext:
    """The run's step-0 comparison points; the target model's evaluation and p0 come from the
    cache (`step0_cache_key`) when an earlier run of the same model, data and settings made them."""
    retain = state.config.retain_model or retain_model_for(state.config.model, state.config.data)
    dtype = next(state.base_model().parameters()).dtype  # the TRs in the evaluated weights' precision
    ref_tr = reference_truth_ratios(model_path(retain), state.bench, state.device, dtype) if retain else None
    ref_mia = reference_mia(model_path(retain), state.bench, state.device) if retain else None
    key = step0_cache_key(state, ref_tr, ref_mia)
    cached = _load_step0(key)
    if cached is not None:
        report, p0 = cached
        log.info("step-0 evaluation taken from the cache (%s)", key)
    else:
        report = None
        p0 = forget_token_probs(state.base_model(), state.tokenizer, state.forget, eval_batch_size(state))
    has_spans = any(s.spans for s in state.forget)
    answer_rows, spans = [], []
    for chunk in iter_batches(state.forget, 64):
        batch = encode_samples(state.tokenizer, chunk)
        answer_rows += label_rows(batch.answer_mask, batch)
        if has_spans:
            spans += label_rows(fact_mask(batch, chunk), batch)
    return EvalContext(ref_tr, p0, answer_rows, spans if has_spans else None, report, key, ref_mia)


def evaluate_state(state: State, ctx: EvalContext, step0: bool = False, progress=None, final: bool = False,
                   rouge_rows: int | None = None) -> dict:
    """FQ, MU + components (forget_probability among them), memorisation and MIA metrics
    (`EvalReport.extra`), token probability drops vs step 0, the fraction of answer tokens that are
    targets, every registered metric hook; a flat dict (plus `notes` when some number is
    unavailable). progress(done, total): questions whose model work is done (engine.eval.passes.run).

    [choice] The gradient-norm AUC (one backward pass per forget and holdout answer) is computed at
    step 0 and when `final` (the run's last evaluation) only; other epochs record None.

    step0: the model is still the target model: its report comes from `ctx.step0_report` when
    cached, else it is computed and written to the cache (the drops are 0 by definition).
    rouge_rows: ROUGE on a seeded subsample of each split (`full.rouge_subsample`, seed = the
    run's); the dict then says `subsampled: True` and `rouge_rows`. Step 0 is always full."""
    model = state.base_model()
    batch_size = eval_batch_size(state)
    if step0 and ctx.step0_report is not None:
        report, p = ctx.step0_report, ctx.p0
    else:
        report, nll = evaluate_and_score(model, state.tokenizer, state.bench, ctx.reference_tr,
                                         retain_size=state.config.retain_eval_size,
                                         max_new_tokens=state.config.eval_max_new_tokens, batch_size=batch_size,
                                         progress=progress, also_score=[] if step0 else state.forget,
                                         retain_mia=ctx.reference_mia, hooks=False,
                                         gradnorm=(step0 or final) and state.config.eval_gradnorm,
                                         rouge_rows=None if step0 else rouge_rows, rouge_seed=state.config.seed)
        p = ctx.p0 if step0 else [torch.exp(-row) for row in nll]  # the forget answers scored in the same pass
        if step0 and ctx.step0_key is not None:
            write_text_atomic(_cache_file(ctx.step0_key),
                              json.dumps({"report": report.to_dict(), "p0": [r.tolist() for r in ctx.p0]}))
            ctx.step0_report = report
    targets = state.weights.targets()  # fixed masks, or learned weights' current ones
    non_targets = [a & ~t for a, t in zip(ctx.answer_rows, targets)]
    m = {**report.values(),
         "target_prob_drop": _mean_drop(ctx.p0, p, targets),
         "nontarget_prob_drop": _mean_drop(ctx.p0, p, non_targets),
         "target_fraction": float(torch.cat(targets).float().sum() / torch.cat(ctx.answer_rows).float().sum())}
    if ctx.spans is not None:
        m["fact_prob_drop"] = _mean_drop(ctx.p0, p, ctx.spans)
        m["nonfact_prob_drop"] = _mean_drop(ctx.p0, p, [a & ~s for a, s in zip(ctx.answer_rows, ctx.spans)])
    m["forget_rows"] = len(state.bench.eval_split("forget"))  # FQ's n (its KS p-value depends on it)
    offsets = None if ctx.spans is not None else label_offsets(state.tokenizer, state.forget)
    m.update(token_level_metrics(state.forget, report.forget_generations, ctx.p0, p, ctx.answer_rows, targets,
                                 ctx.spans, offsets))  # issue 20: leak, answered, kept words, retention
    m.update(compute_hooks(MetricInput(model, state.tokenizer, state.bench, m, state)))  # with the run's State
    if report.notes:
        m["notes"] = list(report.notes)
    m["subsampled"] = getattr(report, "rouge_rows", None) is not None
    if m["subsampled"]:
        m["rouge_rows"] = report.rouge_rows
        m["eval_new_tokens"] = report.new_tokens  # the greedy answers' cap on this subsampled point
    return m
