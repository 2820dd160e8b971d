"""`dto`: DTO's delta score, how much one gradient-ascent probe step on the sequence lowers each
token's log-probability; the top-r fraction are the targets."""
from __future__ import annotations

import warnings

import torch
from torch.func import functional_call, grad, vmap

from ..tokens import Batch, eval_mode, per_token_nll
from .base import SelectorInput, SelectorOutput, default_mask


def _row_batch(ids: torch.Tensor, labels: torch.Tensor) -> Batch:
    """A one-row Batch view for per_token_nll inside vmap (only ids and labels are read)."""
    return Batch(ids[None], torch.ones_like(ids)[None], labels[None], labels[None], None, [], [])


def _probe_vmap(model, ids, labels, answer, lr: float) -> torch.Tensor:
    """Δ (B, T) for a chunk: per-sample gradients and probe forwards, vectorised by torch.func.

    Right padding + causal attention: no label position attends to padding, so an all-ones mask
    (a constant outside vmap, which keeps transformers' mask checks off batched tensors) is exact.
    """
    params = {n: p.detach() for n, p in model.named_parameters()}
    buffers = dict(model.named_buffers())
    full = torch.ones((1, ids.shape[1]), dtype=torch.long, device=ids.device)  # unbatched: no data-dependent checks

    def logp(p, row_ids, row_labels):
        kwargs = {"input_ids": row_ids[None], "attention_mask": full}
        logits = functional_call(model, (p, buffers), args=(), kwargs=kwargs).logits
        return -per_token_nll(logits, _row_batch(row_ids, row_labels))[0]  # (T,)

    def seq_nll(p, row_ids, row_labels, row_answer):
        nll = -logp(p, row_ids, row_labels)
        return (nll * row_answer).sum() / row_answer.sum().clamp(min=1)

    with warnings.catch_warnings():  # "performance drop": sdpa has no batching rule on CPU yet
        warnings.filterwarnings("ignore", message="There is a performance drop")
        grads = vmap(grad(seq_nll), in_dims=(None, 0, 0, 0))(params, ids, labels, answer.float())
        probed = {n: params[n][None] + lr * grads[n] for n in params}  # θ' = θ + η ∇L_seq (ascent)
        before = vmap(logp, in_dims=(None, 0, 0))(params, ids, labels)
        after = vmap(logp, in_dims=(0, 0, 0))(probed, ids, labels)
    return before - after


def _probe_loop(model, ids, labels, answer, lr: float) -> torch.Tensor:
    """Δ (B, T), one sample at a time: step in place, score, restore the saved weights exactly."""
    params = [p for p in model.parameters() if p.requires_grad]
    saved = [p.detach().clone() for p in params]
    out = torch.zeros(ids.shape, device=ids.device)
    try:
        for i in range(ids.shape[0]):
            row = _row_batch(ids[i], labels[i])
            with torch.enable_grad():
                nll = per_token_nll(model(input_ids=row.input_ids, attention_mask=row.attention_mask).logits, row)[0]
                loss = (nll * answer[i]).sum() / answer[i].sum().clamp(min=1)
                grads = torch.autograd.grad(loss, params, allow_unused=True)
            with torch.no_grad():
                for p, g in zip(params, grads):
                    if g is not None:
                        p.add_(g, alpha=lr)
                after = -per_token_nll(model(input_ids=row.input_ids, attention_mask=row.attention_mask).logits,
                                       row)[0]
                out[i] = (-nll.detach()) - after
                for p, s in zip(params, saved):
                    p.copy_(s)
    finally:
        with torch.no_grad():
            for p, s in zip(params, saved):
                p.copy_(s)
    return out


def select_dto(inp: SelectorInput, ratio: float = 0.3, k: int | None = None, probe_lr: float = 1e-2,
               probe_batch: int = 8, mode: str = "auto") -> SelectorOutput:
    """Δ_t = log p_θ(y_t) − log p_θ'(y_t), θ' = θ + η·∇_θ mean_t ℓ_t: one gradient-ascent probe step
    (SGD, η = probe_lr) on that sequence alone [choice: exact probe step, not the first-order form];
    mask = top-r (suffix ratio r = 0.3) by Δ.

    The model's weights are never changed: mode 'vmap' computes per-sample gradients and probe
    forwards functionally (torch.func), `probe_batch` sequences at a time; mode 'loop' steps in
    place per sample and restores the saved weights bit for bit; 'auto' tries vmap, then loop.
    """
    if mode not in ("auto", "vmap", "loop"):
        raise ValueError(f"mode must be auto, vmap or loop, got {mode!r}")
    b, model = inp.batch, inp.model
    answer = b.answer_mask
    delta = torch.zeros(b.input_ids.shape, device=b.input_ids.device)
    used = mode
    with eval_mode(model):
        for s in range(0, b.input_ids.shape[0], probe_batch):
            sl = slice(s, s + probe_batch)
            args = (model, b.input_ids[sl], b.label_mask[sl], answer[sl], probe_lr)
            if used in ("auto", "vmap"):
                try:
                    delta[sl] = _probe_vmap(*args)
                    used = "vmap"
                    continue
                except Exception:  # a model torch.func cannot trace: fall back (or report)
                    if used == "vmap":
                        raise
                    used = "loop"
            delta[sl] = _probe_loop(*args)
    delta = delta.detach() * answer
    return SelectorOutput(delta, default_mask(delta, answer, k, ratio), "dto",
                          {"ratio": ratio, "k": k, "probe_lr": probe_lr, "mode": used})
