"""Small pieces every loss shares: weighted means with a visible normaliser, the retain term,
and NPO's per-sequence term. Inputs are (B, T) per-token tensors from `engine.tokens`, zero
off label positions."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def weighted_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Σ w·x / max(Σ w, 1e-8) over the whole batch: "divide by Σw over the batch"."""
    return (weights * values).sum() / weights.sum().clamp(min=1e-8)


def token_mean_of(values: torch.Tensor, weights: torch.Tensor, answer_mask: torch.Tensor | None) -> torch.Tensor:
    """Σ w·x / N, N = the batch's answer tokens: the token mean of w·x (WGA's and SatImp's normaliser,
    open-unlearning `compute_wga_loss`)."""
    if answer_mask is None:
        raise ValueError("token_mean needs the batch's answer_mask")
    return (weights * values).sum() / answer_mask.sum().clamp(min=1)


def retain_nll(retain_nll_tokens: torch.Tensor | None, retain_mask: torch.Tensor | None) -> torch.Tensor:
    """Mean NLL over the retain batch's label positions (Σ ℓ / number of label tokens).

    retain_nll_tokens: (B', T') from `per_token_nll`; retain_mask: (B', T') bool label positions.
    """
    if retain_nll_tokens is None or retain_mask is None:
        raise ValueError("this loss has a retain term (alpha > 0) but no retain batch was given")
    return (retain_nll_tokens * retain_mask).sum() / retain_mask.sum().clamp(min=1)


def sequence_rescaled(weights: torch.Tensor, answer_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sequence, rescale w so that Σ_t w_t = T_i, the number of answer tokens of row i.

    Returns (rescaled weights (B, T), has_targets (B,) bool). A row whose weights sum to 0 keeps
    zeros and is flagged False, so callers leave it out of the batch mean. [choice] T_i counts
    answer tokens (not the closing EOS), so the `all` selector gives exactly unit weights.
    """
    total = weights.sum(1, keepdim=True)  # (B, 1)
    n_answer = answer_mask.sum(1, keepdim=True).to(weights.dtype)  # (B, 1)
    has = total.squeeze(1) > 0  # (B,)
    return weights * n_answer / total.clamp(min=1e-8), has


def mean_over_rows(values: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Mean of the (B,) `values` over the rows flagged True (0 when none are)."""
    rows = rows.to(values.dtype)
    return (values * rows).sum() / rows.sum().clamp(min=1)


def npo_term(nll: torch.Tensor, ref_nll: torch.Tensor, weights: torch.Tensor, answer_mask: torch.Tensor,
             beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """NPO (Zhang et al. 2024, eq. 3) per sequence: −(2/β)·log σ(β·(Σ w ℓ_θ − Σ w ℓ_ref)).

    nll, ref_nll, weights: (B, T); weights are rescaled per row to sum to T_i (see
    `sequence_rescaled`). Returns (mean over rows with targets, per-row log-ratio (B,) detached).
    """
    w, has = sequence_rescaled(weights, answer_mask)  # (B, T), (B,)
    delta = (w * (nll - ref_nll)).sum(1)  # (B,) = −log π_θ/π_ref on the weighted tokens
    per_row = -(2.0 / beta) * F.logsigmoid(beta * delta)  # (B,)
    return mean_over_rows(per_row, has), delta.detach()


def complement(weights: torch.Tensor, answer_mask: torch.Tensor) -> torch.Tensor:
    """Non-target weights (1 − w) on answer tokens, (B, T); w is expected in [0, 1]."""
    return (1.0 - weights.float().clamp(0.0, 1.0)) * answer_mask


def row_weighted_mean(values: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row Σ_t w_t x_t / Σ_t w_t, (B,), and has_targets (B,) bool (rows whose Σ w > 0; their
    mean is 0 and callers leave them out with `mean_over_rows`)."""
    total = weights.sum(1)  # (B,)
    return (weights * values).sum(1) / total.clamp(min=1e-8), total > 0
