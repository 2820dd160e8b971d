"""ATWU's learned token scorer (Alternating Token-Weighted Unlearning): the model the `atwu`
selector reads and the `atwu` weight source (engine.weights.atwu) trains during a run.

g_t = σ(wᵀh_t + b), h_t the detached last-layer hidden state at the label token's own
position (no shift: the state after reading y_t), w and b zero-initialised (g = 0.5), fp32;
its loss (`scorer_loss`), one SGD step (`scorer_step`), and saved scorers under `<cache>/atwu/`
as `<model key>-<stamp>.safetensors` (w, b) plus a `.json` with the model, data and sample ids
they were fitted on (`save_scorer`, `load_scorer`, `find_scorer`).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .. import paths
from ..atomic import read_json_or_none, replace_atomic, write_text_atomic
from ..fingerprint import model_fingerprint as model_key, text_hash
from ..tokens import forward

SCORER_DEFAULTS = {"beta": 5.0, "lam_h": 1.0, "lam_pop": 10.0, "budget": 0.2, "lam_2": 1.0}
OPTIMIZER_DEFAULTS = {"lr": 5e-2, "momentum": 0.9}


class AtwuScorer(torch.nn.Module):
    """g = σ(wᵀh + b) over hidden states h (..., H); zero-initialised, always fp32."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.linear = torch.nn.Linear(hidden_size, 1, dtype=torch.float32)
        torch.nn.init.zeros_(self.linear.weight)
        torch.nn.init.zeros_(self.linear.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.linear(hidden.float()).squeeze(-1))  # (B, T)


def make_optimizer(scorer: AtwuScorer, lr: float = 5e-2, momentum: float = 0.9) -> torch.optim.Optimizer:
    """SGD with momentum 0.9, lr 5e-2 (SPEC §2)."""
    return torch.optim.SGD(scorer.parameters(), lr=lr, momentum=momentum)


def last_hidden(model, batch) -> torch.Tensor:
    """Detached last-layer hidden states (B, T, H), fp32, at each token's own position."""
    with torch.no_grad():
        out = forward(model, batch, output_hidden_states=True)
    return out.hidden_states[-1].detach().float()


def binary_entropy(g: torch.Tensor) -> torch.Tensor:
    """H_bin(g) = −g log g − (1−g) log(1−g), elementwise (natural log)."""
    g = g.clamp(1e-6, 1 - 1e-6)
    return -(g * g.log() + (1 - g) * (1 - g).log())


def scorer_loss(g: torch.Tensor, nll: torch.Tensor, answer_mask: torch.Tensor, weight: torch.Tensor, *,
                beta: float = 5.0, lam_h: float = 1.0, lam_pop: float = 10.0, budget: float = 0.2,
                lam_2: float = 1.0) -> tuple[torch.Tensor, dict]:
    """The scorer's objective (SPEC §2), over the batch's answer tokens:

        −mean(g ℓ exp(−β g ℓ)) + λ_H·mean H_bin(g) + λ_pop·mean_seq(frac(g>0.5) − budget)² + λ_2‖w‖²

    g: (B, T) scorer outputs; nll: (B, T) per-token NLL (detached here); answer_mask: (B, T)
    bool; weight: the scorer's w (H,) or (1, H). frac uses a straight-through estimate: the
    forward value is the hard fraction of g > 0.5, the gradient that of the mean of g.
    Normalisation: means over the batch's answer tokens; frac per sequence over its answer
    tokens, then the mean over sequences. Returns (scalar loss, detached stats).
    """
    m = answer_mask.float()  # (B, T)
    n = m.sum().clamp(min=1)
    ell = nll.detach().float()
    gain = ((g * ell * torch.exp(-beta * g * ell)) * m).sum() / n  # the forget objective, maximised
    ent = (binary_entropy(g) * m).sum() / n
    hard = (g > 0.5).float()
    st = hard + g - g.detach()  # (B, T) straight-through: value hard, gradient of g
    rows = m.sum(1)  # (B,)
    frac = (st * m).sum(1) / rows.clamp(min=1)  # (B,)
    has = (rows > 0).float()
    pop = (((frac - budget) ** 2) * has).sum() / has.sum().clamp(min=1)
    l2 = (weight.float() ** 2).sum()
    loss = -gain + lam_h * ent + lam_pop * pop + lam_2 * l2
    return loss, {"gain": gain.detach(), "entropy": ent.detach(), "population": pop.detach(), "l2": l2.detach(),
                  "fraction": ((hard * m).sum() / n).detach()}


def scorer_step(scorer: AtwuScorer, optimizer: torch.optim.Optimizer, hidden: torch.Tensor, nll: torch.Tensor,
                answer_mask: torch.Tensor, accelerator=None, **params) -> dict:
    """One SGD step of the scorer on detached hidden states (B, T, H) and per-token NLL (B, T).

    Under several processes (`accelerator` given) the scorer's gradient is averaged across
    them first, so every process keeps an identical scorer.
    """
    g = scorer(hidden.detach())  # (B, T)
    loss, stats = scorer_loss(g, nll, answer_mask, scorer.linear.weight, **params)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if accelerator is not None:
        for p in scorer.parameters():
            p.grad = accelerator.reduce(p.grad, reduction="mean")
    optimizer.step()
    return {"scorer_loss": loss.detach(), **stats}


# ---------------------------------------------------------------- saved scorers

def sample_id(sample) -> str:
    """Content id of a sample (question + answer), independent of file names."""
    return text_hash(sample.question, sample.answer)


def scorer_dir() -> Path:
    path = paths.cache_dir() / "atwu"
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_scorer(scorer: AtwuScorer, key: str, samples, info: dict | None = None) -> Path:
    """Write the scorer (safetensors) and its metadata (json); returns the .safetensors path."""
    stem = f"{key}-{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() % 10**9:09d}"
    path = scorer_dir() / f"{stem}.safetensors"
    tensors = {"weight": scorer.linear.weight.detach().cpu().contiguous(),
               "bias": scorer.linear.bias.detach().cpu().contiguous()}
    replace_atomic(path, lambda tmp: save_file(tensors, str(tmp)))  # whole or absent
    meta = {"model_key": key, "hidden_size": scorer.linear.in_features, "created": time.time(),
            "samples": sorted({sample_id(s) for s in samples}), **(info or {})}
    write_text_atomic(path.with_suffix(".json"), json.dumps(meta))  # written last: it makes the scorer findable
    return path


def load_scorer(path: str | Path) -> AtwuScorer:
    """A scorer written by `save_scorer` (or beside a checkpoint by `AtwuWeights.save`)."""
    tensors = load_file(str(path))
    scorer = AtwuScorer(tensors["weight"].shape[1])
    scorer.linear.weight.data.copy_(tensors["weight"])
    scorer.linear.bias.data.copy_(tensors["bias"])
    return scorer


def find_scorer(model, samples) -> Path | None:
    """The newest saved scorer for this model fitted on samples including `samples`, or None."""
    key = model_key(model)
    wanted = {sample_id(s) for s in samples}
    best: tuple[float, Path] | None = None
    for meta_path in scorer_dir().glob(f"{key}-*.json"):
        meta = read_json_or_none(meta_path)  # a truncated or garbage file is passed over
        if not isinstance(meta, dict):
            continue
        weights = meta_path.with_suffix(".safetensors")
        if weights.is_file() and wanted <= set(meta.get("samples", ())):
            if best is None or meta.get("created", 0) > best[0]:
                best = (meta.get("created", 0), weights)
    return best[1] if best else None
