"""The model work behind the membership-inference and memorisation metrics of an evaluation.

Members are the forget split's answers, non-members the matching holdout split's (authors no
model was trained on), as open-unlearning's TOFU_MIA data (`forgetN` against `holdoutN`). Every
score but the gradient norm comes from the evaluation's own pass (`passes.run(..., stats=...)`:
per-token NLL plus `TokenStats`), so they cost the holdout answers' forward passes and nothing
else; the gradient norm needs one backward pass per answer (`grad_norm_scores`). The retain
model's per-answer losses (the reference attack) and its own AUCs (privleak's reference) are
computed once per retain model and data and cached on disk, like its truth ratios
(`full.reference_mia`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..data import Sample
from ..tokens import encode_samples, eval_mode, forward_logits, per_token_nll
from . import mia, passes
from .memorization import exact_memorization, extraction_strength

ATTACKS = ("mia_loss", "mia_zlib", "mia_min_k", "mia_min_k_plus_plus")  # from the pass alone
PRIVLEAK_ATTACK = "mia_min_k"  # open-unlearning configs/eval/tofu_metrics/privleak.yaml
MIA_METRICS = (*ATTACKS, "mia_gradnorm", "mia_reference", "privleak")
MEMORISATION_METRICS = ("extraction_strength", "exact_memorization")


def pairs(samples: list[Sample]) -> list[tuple[str, str]]:
    """The (question, answer) pairs the pass scores, with token statistics, for these metrics."""
    return [(s.question, s.answer) for s in samples]


def attack_scores(outputs: passes.Outputs, samples: list[Sample]) -> dict[str, list[float]]:
    """Per sample, the score of each attack in ATTACKS (engine.eval.mia) from one pass's outputs."""
    out: dict[str, list[float]] = {a: [] for a in ATTACKS}
    for pair in pairs(samples):
        nll, st = outputs.nll[pair], outputs.stats[pair]
        lp = -nll[:-1]  # token-wise log-probabilities: the closing EOS left out
        out["mia_loss"].append(mia.loss_score(nll))
        out["mia_zlib"].append(mia.zlib_score(nll, pair[1]))
        out["mia_min_k"].append(mia.min_k_score(lp))
        out["mia_min_k_plus_plus"].append(mia.min_k_plus_plus_score(lp, st.mu[:-1], st.var[:-1]))
    return out


def memorisation(outputs: passes.Outputs, forget: list[Sample]) -> dict[str, float | None]:
    """Mean extraction strength and exact memorisation over the forget answers (EOS left out)."""
    hits = [outputs.stats[pair].hit[:-1] for pair in pairs(forget)]
    em = [v for v in (exact_memorization(h) for h in hits) if v is not None]
    es = [extraction_strength(h) for h in hits]
    return {"extraction_strength": sum(es) / len(es) if es else None,
            "exact_memorization": sum(em) / len(em) if em else None}


@dataclass
class RetainMIA:
    """The retain model on the forget and holdout answers: mean NLL per answer (the reference
    attack subtracts it) and its own AUC per attack (privleak compares against it)."""

    forget_nll: list[float]
    holdout_nll: list[float]
    auc: dict[str, float]


def privacy_metrics(outputs: passes.Outputs, forget: list[Sample], holdout: list[Sample],
                    retain: RetainMIA | None = None,
                    grad_norms: tuple[list[float], list[float]] | None = None) -> tuple[dict, list[str]]:
    """(metrics, notes): the AUC of each attack (forget = members, holdout = non-members), the
    reference attack's and privleak when the retain model's numbers are given, the gradient
    norm's when its per-answer scores are; None (and a note) for what cannot be computed."""
    m: dict[str, float | None] = dict.fromkeys(MIA_METRICS)
    notes: list[str] = []
    if not forget or not holdout:
        notes.append("no holdout split: membership-inference AUCs and privleak are unavailable")
        return m, notes
    f, h = attack_scores(outputs, forget), attack_scores(outputs, holdout)
    for a in ATTACKS:
        m[a] = mia.auc(f[a], h[a])
    if grad_norms is not None:
        m["mia_gradnorm"] = mia.auc(*grad_norms)
    if retain is None:
        notes.append("no retain model given: the reference-model AUC and privleak are unavailable")
        return m, notes
    if len(retain.forget_nll) != len(forget) or len(retain.holdout_nll) != len(holdout):
        raise ValueError("the retain model's MIA numbers are for other forget/holdout samples")
    mean = [mia.loss_score(outputs.nll[p]) for p in pairs(forget) + pairs(holdout)]
    ref = retain.forget_nll + retain.holdout_nll
    diff = [a - b for a, b in zip(mean, ref)]  # mia.reference_score, from the cached retain means
    m["mia_reference"] = mia.auc(diff[:len(forget)], diff[len(forget):])
    m["privleak"] = mia.privleak(m[PRIVLEAK_ATTACK], retain.auc[PRIVLEAK_ATTACK])
    return m, notes


def grad_norm_scores(model, tokenizer, samples: list[Sample], p: float = 2.0) -> list[float]:
    """Per answer, `mia.gradnorm_score`: one forward and backward pass each (batch 1, as
    open-unlearning's mia_gradnorm.yaml), gradients by `torch.autograd.grad` (the parameters'
    .grad stay untouched), over the trainable parameters (all when none is, e.g. a loaded model).

    [choice] In eval mode: open-unlearning switches to train mode, which only differs where the
    model has dropout (TOFU's Llama and the built-in models have none at evaluation)."""
    params = [q for q in model.parameters() if q.requires_grad]
    frozen = [] if params else list(model.parameters())
    for q in frozen:
        q.requires_grad_(True)
    params = params or frozen
    device = next(model.parameters()).device
    out = []
    try:
        with eval_mode(model), torch.enable_grad():
            for s in samples:
                batch = encode_samples(tokenizer, [s]).to(device)
                nll = per_token_nll(forward_logits(model, batch), batch)[0][batch.label_mask[0].bool()]
                loss = nll[:-1].mean()  # −mean token log-probability, the closing EOS left out
                grads = torch.autograd.grad(loss, params, allow_unused=True)
                out.append(mia.gradnorm_score([g.detach().norm(p=p) for g in grads if g is not None]))
    finally:
        for q in frozen:
            q.requires_grad_(False)
    return out


def retain_mia(model, tokenizer, forget: list[Sample], holdout: list[Sample], batch_size: int = 64) -> RetainMIA:
    """`RetainMIA` of a (retain) model: one pass over the forget and holdout answers."""
    out = passes.run(model, tokenizer, [], [], batch_size=batch_size, stats=pairs(forget) + pairs(holdout))
    m, _ = privacy_metrics(out, forget, holdout)
    return RetainMIA([mia.loss_score(out.nll[p]) for p in pairs(forget)],
                     [mia.loss_score(out.nll[p]) for p in pairs(holdout)],
                     {a: m[a] for a in ATTACKS})
