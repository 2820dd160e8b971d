"""One optimiser step: the epoch's batch plan, the loss's inputs from one forward, the backward
(optionally with the forget gradient orthogonalised), then the token weights' own update."""
from __future__ import annotations

import contextlib
import math
import random

import torch

from ..losses import PREFERRED_INPUTS, RETAIN_INPUTS
from ..tokens import (Batch, encode_samples, forward, forward_logits, gather_rows, kl_ref, label_ids, label_logit,
                      label_logits, per_token_nll)
from .preferred import preferred_batch
from .state import State

FORGET_REFERENCE = ("ref_nll", "ref_logit", "kl", "ref_logits")  # from one reference forward on the forget batch

Micro = tuple[list[int], Batch, "Batch | None"]  # (forget indices, forget batch, retain batch or None)


def lr_at(step: int, peak: float, warmup: int) -> float:
    """Linear warm-up to `peak` over `warmup` steps, then constant (a pure function of the step)."""
    return peak * min(1.0, (step + 1) / warmup) if warmup > 0 else peak


def plan_epoch(state: State, epoch: int) -> list[list[Micro]]:
    """The epoch's steps, each a list of `grad_accum` micro-batches (forget, retain when the loss
    has a retain term). Seeded by (seed, epoch); under several processes each takes every
    world-th micro-batch, so a step sees grad_accum · world forget batches in all."""
    cfg = state.config
    rng = random.Random(cfg.seed * 1000 + epoch)
    order = list(range(len(state.forget)))
    rng.shuffle(order)
    chunks = [order[i:i + cfg.batch_size] for i in range(0, len(order), cfg.batch_size)]
    want_retain = state.spec.needs_retain(state.loss_kwargs)
    r_order = list(range(len(state.retain)))
    rng.shuffle(r_order)
    world = state.world
    rank = state.accelerator.process_index if state.accelerator else 0
    per_step = cfg.grad_accum * world
    steps = []
    for s in range(math.ceil(len(chunks) / per_step)):
        group = [chunks[(s * per_step + j) % len(chunks)] for j in range(per_step)]
        micro = []
        for k, idx in enumerate(group[rank::world]):
            retain = None
            if want_retain:
                start = ((s * per_step + k * world + rank) * cfg.batch_size) % len(r_order)
                r_idx = [r_order[(start + j) % len(r_order)] for j in range(cfg.batch_size)]
                retain = encode_samples(state.tokenizer, [state.retain[j] for j in r_idx])
            micro.append((idx, encode_samples(state.tokenizer, [state.forget[j] for j in idx]), retain))
        steps.append(micro)
    return steps


def _reference_output(state: State, batch: Batch, **kwargs):
    """The frozen reference's output on `batch` (no gradients): the copy, or the LoRA model with
    its adapter off. kwargs go to the model (e.g. output_hidden_states)."""
    with torch.no_grad():
        if state.reference is not None:
            return forward(state.reference, batch, **kwargs)
        with state.base_model().disable_adapter():
            return forward(state.model, batch, **kwargs)


def _reference_logits(state: State, batch: Batch) -> torch.Tensor:
    """Logits (B, T, V) of the frozen reference (`_reference_output`)."""
    return _reference_output(state, batch).logits


def loss_inputs(state: State, indices: list[int], batch: Batch, retain: Batch | None) -> dict:
    """The tensors `state.spec` asks for, from one forward on the forget (and retain) batch.

    Always: nll, weights, answer_mask (B, T). When asked (by the loss's parameter names):
    logit; logits (B, T, V) and labels (B, T) (`tokens.label_logits`, `tokens.label_ids`);
    hidden_states (the same forward with output_hidden_states); ref_nll/ref_logit/pref_ref_nll
    (gathered from the cache) or kl/ref_logits (one reference forward); pref_nll/pref_mask
    (B, T_w) (one forward on the preferred batch, `preferred.preferred_batch`); retain_nll,
    retain_hidden_states, ref_retain_hidden_states, retain_mask (B', T') (one retain forward,
    and one reference forward on it for the last).
    """
    need = set(state.spec.inputs)
    kwargs = {**state.weights.forward_kwargs, **({"output_hidden_states": True} if "hidden_states" in need else {})}
    out = forward(state.model, batch, **kwargs)
    logits = out.logits  # (B, T, V)
    nll = per_token_nll(logits, batch)  # (B, T)
    state.weights.observe(batch, out, nll)
    inputs = {"nll": nll, "answer_mask": batch.answer_mask, "weights": state.weights.for_batch(indices, batch)}
    if "label_mask" in need:  # e.g. TPO's preservation term with the closing EOS
        inputs["label_mask"] = batch.label_mask
    if "logit" in need:
        inputs["logit"] = label_logit(logits, batch)
    if "logits" in need:
        inputs["logits"] = label_logits(logits, batch)  # (B, T, V)
    if "labels" in need:
        inputs["labels"] = label_ids(batch)
    if "hidden_states" in need:
        inputs["hidden_states"] = out.hidden_states  # embeddings + one (B, T, H) per block
    pref = None
    if need & set(PREFERRED_INPUTS):
        pref = preferred_batch(state.tokenizer, state.preferred, indices).to(state.device)
        inputs["pref_nll"] = per_token_nll(forward_logits(state.model, pref), pref)  # (B, T_w)
        inputs["pref_mask"] = pref.label_mask
    if state.reference_rows is not None:
        for k, rows in state.reference_rows.items():
            inputs[k] = gather_rows(rows, indices, pref if k.startswith("pref_") else batch)  # (B, T)
    elif need & set(FORGET_REFERENCE):
        ref_logits = _reference_logits(state, batch)  # (B, T, V)
        if "ref_nll" in need:
            inputs["ref_nll"] = per_token_nll(ref_logits, batch)
        if "ref_logit" in need:
            inputs["ref_logit"] = label_logit(ref_logits, batch)
        if "kl" in need:
            inputs["kl"] = kl_ref(ref_logits, logits, batch)
        if "ref_logits" in need:
            inputs["ref_logits"] = label_logits(ref_logits, batch)  # (B, T, V)
        del ref_logits
    del out, logits  # autograd keeps what it needs (the log-softmax); the logits go before the retain forward
    if retain is not None and need & set(RETAIN_INPUTS):
        if "retain_nll" in need:
            inputs["retain_nll"] = per_token_nll(forward_logits(state.model, retain), retain)  # (B', T')
        if "retain_hidden_states" in need:
            inputs["retain_hidden_states"] = forward(state.model, retain, output_hidden_states=True).hidden_states
        if "ref_retain_hidden_states" in need:
            ref_out = _reference_output(state, retain, output_hidden_states=True)
            inputs["ref_retain_hidden_states"] = ref_out.hidden_states
        inputs["retain_mask"] = retain.label_mask
    return {k: v for k, v in inputs.items() if k in need}


def orthogonal_backward(state: State, inputs: dict, scale: float) -> None:
    """Add scale · (g_f⊥ + g_p) to .grad, with g_f⊥ = g_f − (⟨g_f, g_p⟩ / ‖g_p‖²)·g_p.

    g_f: gradient of the loss with its preservation side off (`preserve_params` at 0);
    g_p: gradient with the forget side off (gamma = 0). The projection is always applied, not
    only on conflict [choice], so a forget step leaves the preservation loss unchanged to
    first order.
    """
    kw = state.loss_kwargs
    f_loss, _ = state.spec(**inputs, **{**kw, **{k: 0.0 for k in state.spec.preserve_params}})
    p_loss, _ = state.spec(**inputs, **{**kw, "gamma": 0.0})
    params = state.trainable
    g_f = torch.autograd.grad(f_loss, params, retain_graph=True, allow_unused=True)
    g_p = torch.autograd.grad(p_loss, params, allow_unused=True)
    g_f = [torch.zeros_like(p) if g is None else g for g, p in zip(g_f, params)]
    g_p = [torch.zeros_like(p) if g is None else g for g, p in zip(g_p, params)]
    dot = sum((a.float() * b.float()).sum() for a, b in zip(g_f, g_p))
    norm = sum((b.float() ** 2).sum() for b in g_p)
    coef = dot / norm if norm > 0 else torch.zeros(())
    for p, a, b in zip(params, g_f, g_p):
        g = (a - coef.to(a.dtype) * b + b) * scale
        p.grad = g if p.grad is None else p.grad + g


def _rng_state(device: str):
    return torch.get_rng_state(), (torch.cuda.get_rng_state(device) if device.startswith("cuda") else None)


def _set_rng_state(saved, device: str) -> None:
    torch.set_rng_state(saved[0])
    if saved[1] is not None:
        torch.cuda.set_rng_state(saved[1], device)


def separate_retain_backward(state: State, indices: list[int], batch: Batch, retain: Batch, scale: float):
    """Backpropagate scale · L in two graphs that never coexist: first through the forget-side
    inputs (the retain NLL taken without a graph), then, with the forget graph freed, through the
    retain NLL (the forget-side inputs detached). By the chain rule
    ∂L/∂θ = Σ_x ∂L/∂x · ∂x/∂θ over the loss's inputs x, so the two backward passes add up to
    the joint one's gradient (tests/test_training_memory.py); the retain forward runs twice (once
    without a graph) and with the same random state, so dropout masks match. Returns (loss, stats)."""
    with autocast(state):
        inputs = loss_inputs(state, indices, batch, None)  # forget side, with its graph
    after_forget = _rng_state(state.device)
    with torch.no_grad(), autocast(state):
        r_nll = per_token_nll(forward_logits(state.model, retain), retain)  # (B', T')
    need = set(state.spec.inputs)
    retain_side = {k: v for k, v in (("retain_nll", r_nll), ("retain_mask", retain.label_mask)) if k in need}
    with autocast(state):
        loss, stats = state.spec(**inputs, **retain_side, **state.loss_kwargs)
    _backward(state, loss * scale)
    detached = {k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
    del inputs
    _set_rng_state(after_forget, state.device)
    with autocast(state):
        retain_side["retain_nll"] = per_token_nll(forward_logits(state.model, retain), retain)  # (B', T'), graph
        retain_loss, _ = state.spec(**detached, **retain_side, **state.loss_kwargs)
    _backward(state, retain_loss * scale)
    return loss.detach(), stats


def autocast(state: State):
    """The forward's precision context: bf16 autocast over fp32 master weights on a bf16 GPU
    (`engine.models.device.precision_for`), nothing otherwise. Backward runs outside it."""
    return state.precision.context() if state.precision else contextlib.nullcontext()


def _backward(state: State, loss: torch.Tensor) -> None:
    if state.accelerator is not None:
        state.accelerator.backward(loss)
    else:
        loss.backward()


def step(state: State, micro_batches: list[Micro]) -> dict:
    """One optimiser step over `grad_accum` micro-batches; returns the mean loss and stats (floats).

    Then the token weights take their own update (`WeightSource.after_step`; learned weights
    such as ATWU's scorer step here, fixed ones do nothing).
    """
    cfg = state.config
    state.model.train()
    for group in state.optimizer.param_groups:
        group["lr"] = cfg.lr_at(state.step, len(state.forget), state.world)  # warm-up, then the schedule
    totals: dict = {}
    scale = 1.0 / len(micro_batches)
    for indices, batch, retain in micro_batches:
        batch = batch.to(state.device)
        retain = retain.to(state.device) if retain is not None else None
        if retain is not None and state.memory.get("separate_retain_backward") and not cfg.orthogonalize \
                and "retain_nll" in state.spec.inputs \
                and set(state.spec.inputs) & set(RETAIN_INPUTS) <= {"retain_nll", "retain_mask"}:
            # memory is tight: two graphs, one at a time (a retain NLL term only)
            loss, stats = separate_retain_backward(state, indices, batch, retain, scale)
        else:
            with autocast(state):
                inputs = loss_inputs(state, indices, batch, retain)
                loss, stats = state.spec(**inputs, **state.loss_kwargs)
            if cfg.orthogonalize:
                orthogonal_backward(state, inputs, scale)
            else:
                _backward(state, loss * scale)
        for k, v in {"loss": loss.detach(), **stats}.items():
            totals[k] = totals.get(k, 0.0) + v * scale  # tensors: one device sync at the end
    if cfg.max_grad_norm:
        torch.nn.utils.clip_grad_norm_(state.trainable, cfg.max_grad_norm)
    state.optimizer.step()
    state.optimizer.zero_grad(set_to_none=True)
    state.step += 1
    totals.update(state.weights.after_step(state.step))
    out = {k: float(v) for k, v in totals.items()}
    if state.spec.after_step is not None:  # hyper-parameters that move during the run (PDU's dual variable)
        state.loss_kwargs = {**state.loss_kwargs, **state.spec.after_step(state.loss_kwargs, _mean_over_processes(
            state, out), math.ceil(state.step / steps_per_epoch(state)))}
    return out


def steps_per_epoch(state: State) -> int:
    """Optimiser steps in one epoch (`plan_epoch`'s length)."""
    cfg = state.config
    return math.ceil(math.ceil(len(state.forget) / cfg.batch_size) / (cfg.grad_accum * state.world))


def _mean_over_processes(state: State, stats: dict) -> dict:
    """The stats averaged across processes under accelerate (so every process takes the same
    hyper-parameter update), unchanged in a single process."""
    if state.accelerator is None:
        return stats
    keys = sorted(stats)
    t = torch.tensor([stats[k] for k in keys], device=state.device)
    return dict(zip(keys, state.accelerator.reduce(t, reduction="mean").tolist()))
