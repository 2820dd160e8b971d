"""`pdu`: PDU, primal-dual unlearning: flatten the logit margin on forget tokens under a retain-loss constraint."""
from __future__ import annotations

import math

import torch

from .common import retain_nll as retain_term, weighted_mean


def pdu_loss(logits: torch.Tensor, weights: torch.Tensor, retain_nll: torch.Tensor | None = None,
             retain_mask: torch.Tensor | None = None, *, retain_loss_eps: float = 0.3, gamma: float = 1.0,
             alpha: float = 100.0, primal_dual: bool = True, dual_step_size: float = 5.0,
             dual_warmup_epochs: int = 5) -> tuple[torch.Tensor, dict]:
    """L = γ · Σ_t w_t (max_v z_t,v − mean_v z_t,v)² / Σ_t w_t  +  λ · (mean retain NLL − ε)

    Entesari et al. 2025, "Constrained Entropic Unlearning: A Primal-Dual Framework for Large
    Language Models" (arXiv:2506.05314): the logit-margin flattening loss drives the forget
    tokens' distributions toward uniform; the retain NLL ≤ ε is a constraint whose dual variable
    λ (`alpha`) follows λ ← max(0, λ + η·(retain NLL − ε)) after every optimiser step once
    `dual_warmup_epochs` epochs are done (`pdu_dual_step`, called by the trainer), as
    open-unlearning's PDU trainer (src/trainer/unlearn/pdu.py, dual_update_upon="step").
    Defaults: the authors' TOFU settings (open-unlearning community/methods/PDU/run.sh: γ = 1,
    λ₀ = 100, ε = 0.3, η = 5, 5 warm-up epochs; configs/trainer/PDU.yaml leaves ε unset and has
    λ₀ = 1, η = 1): ε must sit above the target model's retain NLL. [choices] the margin is taken
    on the logits that predict each target token (open-unlearning takes the logits at the token's
    own position); the dual step uses the step's mean retain NLL over its micro-batches (there:
    each micro-batch's); only the per-step dual update. α = 0 switches the retain side off.

    logits: (B, T, V) the logits that predict each label position (`engine.tokens.label_logits`);
    weights: (B, T) hard mask or soft weights; retain_nll, retain_mask: (B', T'), when α > 0.
    Normalisation: divide by Σw over the batch; retain term per label token.
    Returns (scalar loss, {forget, retain?, alpha, targets}) with detached stats.
    """
    z = logits.float()  # (B, T, V)
    margin = (z.max(-1).values - z.mean(-1)) ** 2  # (B, T)
    w = weights.float()
    forget = weighted_mean(margin, w)  # scalar
    loss = gamma * forget
    stats = {"forget": forget.detach(), "alpha": torch.tensor(float(alpha)), "targets": w.sum().detach()}
    if alpha > 0:
        retain = retain_term(retain_nll, retain_mask)
        loss = loss + alpha * (retain - retain_loss_eps)
        stats["retain"] = retain.detach()
    return loss, stats


def pdu_dual_step(params: dict, stats: dict, epoch: int) -> dict:
    """λ ← max(0, λ + η·(retain NLL − ε)) for a step of 1-based `epoch` past the warm-up
    (epoch > dual_warmup_epochs), when primal_dual and the step had a retain term; {} otherwise.
    stats: the step's mean stats (floats), `retain` among them."""
    if not params["primal_dual"] or epoch <= params["dual_warmup_epochs"] or "retain" not in stats:
        return {}
    if not math.isfinite(stats["retain"]):
        return {}
    violation = stats["retain"] - params["retain_loss_eps"]
    return {"alpha": max(0.0, params["alpha"] + params["dual_step_size"] * violation)}
