"""ATWU, the whole of it at run time: Alternating Token-Weighted Unlearning's learned token scorer.

g_t = σ(wᵀh_t + b), h_t the detached last-layer hidden state at the label token's own
position (no shift: the state after reading y_t), w and b zero-initialised (g = 0.5), fp32.
During a run (`AtwuWeights`, a learned WeightSource) the scorer gives the loss its token
weights and takes one SGD step on `scorer_loss` every `atwu_every` (n = 5) model steps, its
gradient averaged across processes under accelerate; it is saved beside every checkpoint
(atwu_scorer.safetensors) and, at the end of a finished run, for the `atwu` selector.

Saved scorers live under `<cache>/atwu/` as `<model key>-<stamp>.safetensors` (w, b) plus a
`.json` with the model, data and sample ids they were fitted on. The selector
(engine.selectors.atwu) uses the newest scorer fitted for this model on samples that include
the ones asked for; there is none until an ATWU unlearning run or
`python -m engine fit-scorer --model M --data D` (`engine.train.fit_scorer.fit_atwu_scorer`) made one.
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
from ..tokens import Batch, encode_samples, eval_mode, forward, iter_batches, label_rows
from .base import WeightSource

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


# ---------------------------------------------------------------- the learned weights of a run

class AtwuWeights(WeightSource):
    """ATWU's scorer as a run's token weights: g = scorer(h) on each forget batch's hidden states
    (soft weights, or g > threshold with weighting='mask'); one scorer step every `every` model
    steps on the last forget micro-batch's hidden states and NLL."""

    name = "atwu"
    forward_kwargs = {"output_hidden_states": True}

    def __init__(self, scorer: AtwuScorer, optimizer: torch.optim.Optimizer, params: dict, threshold: float,
                 soft: bool, every: int, model, tokenizer, samples: list, device: str, accelerator=None):
        self.scorer, self.optimizer, self.params = scorer, optimizer, params
        self.threshold, self.soft, self.every = threshold, soft, every
        self.model, self.tokenizer, self.samples, self.device = model, tokenizer, samples, device
        self.accelerator = accelerator
        self.key = model_key(model)  # the initial model's: the `atwu` selector looks saved scorers up by it
        self._g: torch.Tensor | None = None  # (B, T) scorer output on the latest forget batch
        self._last: tuple | None = None  # (hidden, nll, answer_mask) of the latest forget micro-batch

    @classmethod
    def create(cls, config, model, tokenizer, samples: list, device: str, accelerator=None) -> "AtwuWeights":
        """The run's scorer from `config.selector_params`: zero-initialised (g = 0.5), or
        init='saved' (the newest saved scorer for this model and data, zero when none) or
        scorer=PATH; threshold (0.5); the scorer loss's and optimiser's parameters."""
        params = dict(config.selector_params)
        init = params.pop("init", "zero")
        path = params.pop("scorer", None)
        threshold = float(params.pop("threshold", 0.5))
        opt_params = {k: float(params.pop(k)) for k in list(params) if k in OPTIMIZER_DEFAULTS}
        unknown = set(params) - set(SCORER_DEFAULTS)
        if unknown:
            raise ValueError(f"atwu scorer has no parameter(s) {sorted(unknown)}; known: "
                             f"{', '.join([*SCORER_DEFAULTS, *OPTIMIZER_DEFAULTS, 'init', 'scorer', 'threshold'])}")
        if init not in ("zero", "saved"):
            raise ValueError(f"atwu init must be 'zero' or 'saved', got {init!r}")
        cfg = model.config
        scorer = AtwuScorer(getattr(cfg, "hidden_size", None) or cfg.n_embd)
        if path is None and init == "saved":
            path = find_scorer(model, samples)
        if path is not None:
            scorer = load_scorer(path)
        scorer = scorer.to(device)
        optimizer = make_optimizer(scorer, **{**OPTIMIZER_DEFAULTS, **opt_params})
        loss_params = {**SCORER_DEFAULTS, **{k: float(v) for k, v in params.items()}}
        return cls(scorer, optimizer, loss_params, threshold, config.weighting in ("auto", "scores"),
                   config.atwu_every, model, tokenizer, samples, device, accelerator)

    def observe(self, batch: Batch, outputs, nll: torch.Tensor) -> None:
        hidden = outputs.hidden_states[-1].detach().float()  # (B, T, H), the token's own position
        with torch.no_grad():
            self._g = self.scorer(hidden) * batch.answer_mask  # (B, T)
        self._last = (hidden, nll.detach(), batch.answer_mask)

    def for_batch(self, indices: list[int], batch: Batch) -> torch.Tensor:
        if self._g is None:
            raise RuntimeError("AtwuWeights.for_batch needs the batch's forward first (observe)")
        return self._g if self.soft else (self._g > self.threshold).float()

    def targets(self) -> list[torch.Tensor]:
        """Per forget sample: the live scorer's g > threshold on its answer tokens."""
        rows = []
        with eval_mode(self.model):
            for chunk in iter_batches(self.samples, 64):
                batch = encode_samples(self.tokenizer, chunk).to(self.device)
                with torch.no_grad():
                    g = self.scorer(last_hidden(self.model, batch))  # (B, T)
                rows += label_rows((g > self.threshold) & batch.answer_mask, batch)
        return rows

    def after_step(self, step: int) -> dict:
        if step % self.every != 0 or self._last is None:
            return {}
        hidden, nll, answer_mask = self._last
        stats = scorer_step(self.scorer, self.optimizer, hidden, nll, answer_mask, self.accelerator, **self.params)
        return {"scorer_loss": stats.pop("scorer_loss"), **{f"scorer_{k}": v for k, v in stats.items()}}

    def save(self, directory: Path) -> None:
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.scorer.linear.state_dict().items()}
        save_file(tensors, str(Path(directory) / CHECKPOINT_FILE))  # weight (1, H), bias (1,)

    def load(self, directory: Path) -> None:
        self.scorer.load_state_dict(load_scorer(Path(directory) / CHECKPOINT_FILE).state_dict())

    def keep(self, info: dict) -> str:
        """Save the scorer for the `atwu` selector (keyed to the initial model and these samples)."""
        return str(save_scorer(self.scorer, self.key, self.samples, info))


CHECKPOINT_FILE = "atwu_scorer.safetensors"


__all__ = ["AtwuScorer", "AtwuWeights", "find_scorer", "last_hidden", "load_scorer",
           "make_optimizer", "model_key", "save_scorer", "scorer_loss", "scorer_step"]
