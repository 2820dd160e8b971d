"""Unlearning losses, registered by name: a new loss is one new file plus one line in LOSSES.

Every loss is a plain function of per-token tensors computed by `engine.tokens` (never logits:
the label shift lives there) plus keyword hyper-parameters, and returns (scalar loss, dict of
detached stats). `LossSpec` records what a loss needs so the trainer computes only that:

    spec = LOSSES["npo"]
    spec.inputs          # ('nll', 'ref_nll', 'weights', 'answer_mask', 'retain_nll', 'retain_mask')
    spec.needs_reference # True: a frozen copy of the target model is kept
    spec.needs_retain({"alpha": 0})   # False
    loss, stats = spec(nll=..., ref_nll=..., weights=..., answer_mask=..., beta=0.1)

Tensor inputs a loss may take: nll, weights, answer_mask (forget batch, (B, T)); ref_nll,
logit, ref_logit, kl (need the reference model); retain_nll, retain_mask (retain batch).
"""
from __future__ import annotations

import inspect
from functools import cached_property
from dataclasses import dataclass
from typing import Callable

from ..param_check import check_params
from .atwu import atwu_loss
from .dto import dto_loss
from .ga import ga_loss
from .graddiff import graddiff_loss
from .npo import npo_loss
from .tpo import tpo_loss

REFERENCE_INPUTS = ("ref_nll", "ref_logit", "kl")
RETAIN_INPUTS = ("retain_nll", "retain_mask")


@dataclass(frozen=True)
class LossSpec:
    """A loss function with what it needs.

    retain_param: the weight of the retain term (retain batches are needed when it is > 0);
    None when the loss has no retain term. preserve_params: the weights that switch off the
    preservation side (for gradient orthogonalisation the trainer evaluates the loss once with
    these at 0 and once with gamma at 0).
    """

    name: str
    fn: Callable
    retain_param: str | None = None
    preserve_params: tuple[str, ...] = ()

    def __call__(self, **kwargs):
        return self.fn(**kwargs)

    @cached_property
    def inputs(self) -> tuple[str, ...]:
        """The tensor arguments (positional-or-keyword parameters) of the loss function."""
        return tuple(n for n, p in inspect.signature(self.fn).parameters.items()
                     if p.kind == p.POSITIONAL_OR_KEYWORD)

    @property
    def defaults(self) -> dict:
        """The hyper-parameters (keyword-only parameters) and their defaults."""
        return {n: p.default for n, p in inspect.signature(self.fn).parameters.items() if p.kind == p.KEYWORD_ONLY}

    def params(self, overrides: dict | None = None) -> dict:
        """Defaults updated with `overrides`, each converted to its annotated type and range-checked
        (`engine.param_check`); unknown names are an error naming the known ones."""
        return {**self.defaults, **check_params(self.fn, overrides or {}, f"loss {self.name!r}", self.name,
                                                keyword_only=True)}

    def needs_retain(self, params: dict | None = None) -> bool:
        params = self.params(params)
        return self.retain_param is not None and float(params[self.retain_param]) > 0

    @property
    def needs_reference(self) -> bool:
        """Whether a frozen reference model is needed (some input comes from it)."""
        return any(n in REFERENCE_INPUTS for n in self.inputs)


LOSSES: dict[str, LossSpec] = {
    "ga": LossSpec("ga", ga_loss),
    "graddiff": LossSpec("graddiff", graddiff_loss, retain_param="alpha", preserve_params=("alpha",)),
    "npo": LossSpec("npo", npo_loss, retain_param="alpha", preserve_params=("alpha",)),
    "tpo": LossSpec("tpo", tpo_loss, retain_param="alpha", preserve_params=("pl_weight", "alpha")),
    "dto": LossSpec("dto", dto_loss, preserve_params=("lam",)),
    "atwu": LossSpec("atwu", atwu_loss, retain_param="alpha", preserve_params=("alpha",)),
}


def get_loss(name: str) -> LossSpec:
    if name not in LOSSES:
        raise KeyError(f"unknown loss {name!r}; known: {', '.join(LOSSES)}")
    return LOSSES[name]


def check_loss_params(name: str, params: dict) -> dict:
    """A loss's keyword hyper-parameters checked against its signature (no defaults added)."""
    return check_params(get_loss(name).fn, params, f"loss {name!r}", name, keyword_only=True)


__all__ = ["LOSSES", "LossSpec", "atwu_loss", "check_loss_params", "dto_loss", "ga_loss", "get_loss", "graddiff_loss", "npo_loss",
           "tpo_loss"]
