"""`rmu`: RMU, steer one layer's hidden states on forget tokens to a fixed random direction."""
from __future__ import annotations

import torch

from .common import mean_over_rows, row_weighted_mean


def steering_vector(hidden_size: int, steering_coeff: float, seed: int) -> torch.Tensor:
    """c·u, u = r/‖r‖ with r ~ U[0, 1)^H drawn from a generator seeded with `seed` (as RMU's and
    open-unlearning's torch.rand), (H,): the same direction at every step of a run."""
    r = torch.rand(hidden_size, generator=torch.Generator().manual_seed(seed))  # (H,)
    return steering_coeff * r / r.norm()


def pick_layer(hidden_states: tuple[torch.Tensor, ...], layer_id: int) -> torch.Tensor:
    """The output of block min(layer_id, L − 2), (B, T, H), from HF's hidden_states (embeddings,
    then one entry per block: block l's output is entry l + 1). [choice] layer_id is clamped to the
    model's depth, to L − 2: HF applies the final norm to the last entry, so the last block's raw
    output (what open-unlearning's forward hook on model.layers.N sees) is not among them, and a
    normalised state cannot be steered to an arbitrary vector (1 block: its normalised output)."""
    n_blocks = len(hidden_states) - 1
    return hidden_states[max(0, min(layer_id, n_blocks - 2)) + 1]


def _per_token_mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """mean_h (a − b)², (B, T)."""
    return ((a.float() - b.float()) ** 2).mean(-1)


def rmu_loss(hidden_states: tuple[torch.Tensor, ...], weights: torch.Tensor,
             retain_hidden_states: tuple[torch.Tensor, ...] | None = None,
             ref_retain_hidden_states: tuple[torch.Tensor, ...] | None = None,
             retain_mask: torch.Tensor | None = None, *, layer_id: int = 7, steering_coeff: float = 2.0,
             direction_seed: int = 0, gamma: float = 1.0, alpha: float = 1.0) -> tuple[torch.Tensor, dict]:
    """L = γ · mean_i [Σ_t w_it ‖h_it − c·u‖²/H / Σ_t w_it]
          + α · mean_i [Σ_t m_it ‖h'_it − h'_ref,it‖²/H / Σ_t m_it]   (h' on the retain batch)

    Li et al. 2024, "The WMDP Benchmark: Measuring and Reducing Malicious Use With Unlearning"
    (arXiv:2403.03218, §5, Representation Misdirection for Unlearning), as open-unlearning computes
    it (src/trainer/unlearn/rmu.py: compute_activation_loss, retain_loss_type EMBED_DIFF): h is the
    output of block `layer_id` at each token's own position (no shift), u a fixed random unit
    vector (`steering_vector`), the retain side holds the retain batch's states at that block to
    the frozen reference model's. Here the token weights w choose (and weigh) the steered forget
    positions: new with this workbench; open-unlearning steers every label position.
    open-unlearning's defaults (configs/trainer/RMU.yaml): block 7 (model.layers.7; clamped here to
    the second-to-last block, `pick_layer`), steering_coeff 2, γ = 1, α = 1, every parameter trained.

    hidden_states: HF's tuple (embeddings + one (B, T, H) per block) of the forget batch;
    weights: (B, T) mask or soft weights on label positions; retain_hidden_states /
    ref_retain_hidden_states: the same tuples for the retain batch from the current and the
    reference model; retain_mask: (B', T') bool label positions (needed when α > 0).
    Normalisation: per row by Σ_t w (Σ_t m), then mean over rows with targets.
    Returns (scalar loss, {forget, retain?, targets}) with detached stats.
    """
    h = pick_layer(hidden_states, layer_id)  # (B, T, H)
    c = steering_vector(h.shape[-1], steering_coeff, direction_seed).to(h.device)  # (H,)
    w = weights.float()  # (B, T)
    per_row, has = row_weighted_mean(_per_token_mse(h, c), w)  # (B,), (B,)
    forget = mean_over_rows(per_row, has)  # scalar
    loss = gamma * forget
    stats = {"forget": forget.detach(), "targets": w.sum().detach()}
    if alpha > 0:
        if retain_hidden_states is None or ref_retain_hidden_states is None or retain_mask is None:
            raise ValueError("rmu has a retain term (alpha > 0) but no retain batch was given")
        hr = pick_layer(retain_hidden_states, layer_id)  # (B', T', H)
        href = pick_layer(ref_retain_hidden_states, layer_id).detach()  # (B', T', H)
        r_row, r_has = row_weighted_mean(_per_token_mse(hr, href), retain_mask.float())  # (B',)
        retain = mean_over_rows(r_row, r_has)
        loss = loss + alpha * retain
        stats["retain"] = retain.detach()
    return loss, stats
