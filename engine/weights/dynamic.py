"""WGA and SatImp as their papers define them: token weights recomputed from the CURRENT model at
every step, detached, on the forget batch the loss is computed on.

    WGA    (Wang et al. 2025, "Rethinking LLM Unlearning Objectives", weighted GA):  w_t = sg(p_t)^β,  β = 1
    SatImp (Yang et al. 2025, saturation × importance):  w_t = sg(p_t)^β1 · (1 − sg(p_t))^β2,  β1 = 5, β2 = 1

with p_t = exp(−ℓ_t) the current model's probability of label token t, taken from the very
forward the loss uses (`observe`), so no extra pass. The forget term is a TOKEN MEAN,
−(1/N)·Σ_t w_t ℓ_t over the batch's N answer tokens, as in open-unlearning's `compute_wga_loss`
/ `compute_satimp_loss` (src/trainer/utils.py: `-(weight * lm_loss)[labels != -100].mean()`):
with `ga` / `graddiff` the run sets the loss's `token_mean` to True (RunConfig.loss_kwargs) unless
given. [choice] N counts answer tokens, not the closing EOS (never a target here, SPEC §1);
open-unlearning's labels include it.

Registered in LEARNED_WEIGHTS under the selectors' names: in a run, `--selector wga` / `satimp`
means these; the static selectors (engine/selectors/wga.py, satimp.py: one pass on the initial
model, a top-30 % mask) stay for Explore and for making mask sets.

`targets()` (what the evaluation compares): the static selector's default mask (top-30 % by the
same score) on the current model.
"""
from __future__ import annotations

import math

import torch

from .. import selectors
from ..tokens import Batch, encode_samples, eval_mode, iter_batches, label_rows
from .base import WeightSource


class DynamicWeights(WeightSource):
    """w = f(sg(p)) on each forget batch from the model's current forward; `params` f's exponents."""

    name = ""
    defaults: dict[str, float] = {}
    token_mean = True  # the papers' normalisation: divide by the answer-token count, not by Σw

    def __init__(self, params: dict, model, tokenizer, samples: list, device: str):
        self.params, self.model, self.tokenizer, self.samples, self.device = params, model, tokenizer, samples, device
        self._w: torch.Tensor | None = None

    @classmethod
    def check_config(cls, config) -> None:
        """ValueError for selector_params other than the exponents, or weighting 'mask' (soft weights
        are the method; a per-step hard mask is not)."""
        params = dict(config.selector_params)
        unknown = set(params) - set(cls.defaults)
        if unknown:
            raise ValueError(f"{cls.name} (per-step weights) has no parameter(s) {sorted(unknown)}; known: "
                             f"{', '.join(cls.defaults)}")
        if config.weighting == "mask":
            raise ValueError(f"{cls.name} recomputes soft weights every step; weighting 'mask' does not apply "
                             f"(use a mask set made from the `{cls.name}` selector for a fixed mask)")
        for k, v in params.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"{cls.name} parameter {k!r} must be a finite number ≥ 0, got {v!r}")

    @classmethod
    def create(cls, config, model, tokenizer, samples: list, device: str, accelerator=None) -> "DynamicWeights":
        """From `config.selector_params` (the exponents, `check_config`)."""
        cls.check_config(config)
        params = dict(config.selector_params)
        return cls({**cls.defaults, **{k: float(v) for k, v in params.items()}}, model, tokenizer, samples, device)

    @staticmethod
    def weight(p: torch.Tensor, **params: float) -> torch.Tensor:
        raise NotImplementedError

    def observe(self, batch: Batch, outputs, nll: torch.Tensor) -> None:
        p = torch.exp(-nll.detach().float())  # (B, T) current model, no gradient
        self._w = self.weight(p, **self.params) * batch.answer_mask

    def for_batch(self, indices: list[int], batch: Batch) -> torch.Tensor:
        if self._w is None:
            raise RuntimeError(f"{self.name} weights need the batch's forward first (observe)")
        return self._w

    def targets(self) -> list[torch.Tensor]:
        """Per forget sample: the static selector's top-30 % mask by the same score, current model."""
        rows = []
        with eval_mode(self.model), torch.no_grad():
            for chunk in iter_batches(self.samples, 32):
                batch = encode_samples(self.tokenizer, chunk)
                out = selectors.select(self.name, self.model, self.tokenizer, chunk, batch=batch, **self.params)
                rows += label_rows(out.mask, batch.to(out.mask.device))
        return rows


class WgaWeights(DynamicWeights):
    """WGA: w_t = sg(p_t)^β, β = 1."""

    name = "wga"
    defaults = {"beta": 1.0}

    @staticmethod
    def weight(p: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
        return p.pow(beta)


class SatImpWeights(DynamicWeights):
    """SatImp: w_t = sg(p_t)^β1 · (1 − sg(p_t))^β2, β1 = 5, β2 = 1."""

    name = "satimp"
    defaults = {"beta1": 5.0, "beta2": 1.0}

    @staticmethod
    def weight(p: torch.Tensor, beta1: float = 5.0, beta2: float = 1.0) -> torch.Tensor:
        return p.pow(beta1) * (1 - p).pow(beta2)
