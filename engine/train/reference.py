"""The frozen reference model's side of a loss (NPO, TPO, DTO compare against it).

The reference is the target model before unlearning, and the forget samples are fixed, so the
per-token reference quantities NPO and TPO need (ref_nll, ref_logit) are computed once before
the first step and gathered per batch: no second model in memory, no reference forward per
step. A loss that needs the reference's whole next-token distribution (kl: DTO) keeps a live
frozen copy instead, or, with LoRA, runs the model with its adapter switched off.
"""
from __future__ import annotations

import torch

from ..losses import REFERENCE_INPUTS
from ..tokens import label_logit, per_token_nll, per_token_rows

CACHEABLE = ("ref_nll", "ref_logit", "pref_ref_nll")  # per-token scalars; `kl` needs whole distributions
_PER_TOKEN = {"ref_nll": per_token_nll, "ref_logit": label_logit}


def reference_inputs(inputs: tuple[str, ...]) -> set[str]:
    """The reference-model inputs among a loss's inputs."""
    return set(inputs) & set(REFERENCE_INPUTS)


def can_cache(inputs: tuple[str, ...]) -> bool:
    """True when every reference input of the loss is a per-token scalar (so it can be cached)."""
    need = reference_inputs(inputs)
    return bool(need) and need <= set(CACHEABLE)


@torch.no_grad()
def reference_rows(model, tokenizer, samples, keys: set[str], batch_size: int = 32,
                   preferred=None) -> dict[str, list[torch.Tensor]]:
    """{key: per-sample 1-D CPU tensors over label positions} for key in `keys` ⊆ CACHEABLE,
    from the (initial) model in eval mode; gather them per batch with `tokens.gather_rows`.
    pref_ref_nll is the NLL of the `preferred` samples (DPO's IDK answers, one per forget sample)."""
    fns = {k: _PER_TOKEN[k] for k in sorted(keys) if k in _PER_TOKEN}
    rows = per_token_rows(model, tokenizer, samples, fns, batch_size) if fns else {}
    if "pref_ref_nll" in keys:
        if preferred is None:
            raise ValueError("pref_ref_nll needs the preferred samples")
        rows.update(per_token_rows(model, tokenizer, preferred, {"pref_ref_nll": per_token_nll}, batch_size))
    return rows
