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

from pathlib import Path

import torch
from safetensors.torch import save_file

from ..selectors.atwu_scorer import (OPTIMIZER_DEFAULTS, SCORER_DEFAULTS, AtwuScorer, binary_entropy,  # noqa: F401
                                     find_scorer, last_hidden, load_scorer, make_optimizer, model_key, sample_id,
                                     save_scorer, scorer_dir, scorer_loss, scorer_step)
from ..tokens import Batch, encode_samples, eval_mode, iter_batches, label_rows
from .base import WeightSource



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


__all__ = ["AtwuScorer", "AtwuWeights", "binary_entropy", "find_scorer", "last_hidden", "load_scorer",
           "make_optimizer", "model_key", "sample_id", "save_scorer", "scorer_dir", "scorer_loss", "scorer_step"]
