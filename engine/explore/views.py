"""Raw per-token data of one sample: tokens, probabilities, spans, and every selector's row.

The app asks for one sample at a time; a view scores the sample's chunk (`chunk_size`
consecutive samples of the split) in one batched call and keeps the result: the **selector
score cache**, keyed by (model, prompt format, data, split, selector, params), in memory for the life of the
process.

    views = Views(Session(), chunk_size=8)
    view = views.view("demo", "demo", "forget", 0)      # tokens, probabilities, spans, every selector
    view.rows["wga"].scores, view.rows["wga"].mask      # lists over the sample's label positions

All per-token lists live on LABEL positions (answer tokens + the closing EOS), the layout the
store's masks use; the EOS is never a target (`answer_mask` is False there). Tokens are the
tokenizer's raw pieces: turning them into display strings is tokenviz's job.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from .. import selectors
from ..data import Sample
from ..fingerprint import text_hash
from ..prompts import format_of
from ..selectors.base import SelectorUnavailable, shared_forward
from ..selectors.mask_rules import mask_by_rule
from ..selectors.oracle import NoSpansError
from ..tokens import Batch, encode_samples, fact_mask, label_rows
from ..train.evaluation import forget_token_probs
from .fit import Fit, sample_fits
from .session import Session


@dataclass
class SelectorRow:
    """One selector on one sample: scores and default mask over label positions, or why not."""

    name: str
    scores: list[float] | None = None
    mask: list[bool] | None = None
    error: str | None = None
    params: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class SampleInfo:
    """What does not depend on a selector: raw tokens, p(y_t) under the model, spans."""

    index: int
    uid: str
    question: str
    answer: str
    text_hash: str
    tokens: list[str]  # the tokenizer's raw pieces, one per label position (the last is the EOS)
    eos: list[bool]  # True at the closing EOS
    probs: list[float]  # p(y_t | y_<t) under the model
    answer_mask: list[bool]  # label positions that may be targets (False at the EOS)
    spans: list[bool] | None  # ground-truth fact-span membership, None when the sample has none
    fit: Fit | None = None  # answer tokens kept / total against the model's context (fit.cut: the answer is cut)


@dataclass
class SampleView:
    info: SampleInfo
    rows: dict[str, SelectorRow]


def label_tokens(tokenizer, batch: Batch, i: int) -> tuple[list[str], list[bool]]:
    """Row i's label tokens as raw pieces, and which of them is the closing EOS."""
    lm = batch.label_mask[i]
    return tokenizer.convert_ids_to_tokens(batch.input_ids[i][lm].tolist()), batch.eos_mask[i][lm].tolist()


def apply_mask_rule(row: SelectorRow, answer_mask: list[bool], rule: str = "default", k: int = 5,
                    threshold: float = 0.5) -> list[bool] | None:
    """The mask a person asked for from a row's cached scores (engine.selectors.mask_rules);
    None when the selector could not run on the sample."""
    if not row.ok:
        return None
    return mask_by_rule(row.scores, row.mask, answer_mask, rule, k, threshold)


DTO_LOOP_PARAMS = 20_000_000  # on a CPU, from this many parameters DTO's probe runs one sample at a time


def explore_params(model, selector: str, params: dict) -> dict:
    """The selector's parameters as Explore runs them: DTO's probe in its per-sample loop on a CPU for a
    model of DTO_LOOP_PARAMS parameters or more, unless `mode` is given. The loop is exact like the
    vmap form (same Δ) and, measured on this shared 2-core CPU (benchmarks/explore_first_chunk.py), faster
    on SmolLM2-135M (8 samples: 9.6 vs 14.0 CPU-seconds; 35.7 vs 105.8 s wall in a separate run; per-sample
    gradients of 135 M parameters batched by vmap cost more memory traffic than they save), while on the 1.1 M-parameter built-in model vmap is
    the faster form (README, Speed)."""
    if selector != "dto" or "mode" in params:
        return params
    first = next(model.parameters(), None)
    if first is None or first.device.type != "cpu":
        return params
    if sum(p.numel() for p in model.parameters()) >= DTO_LOOP_PARAMS:
        return {**params, "mode": "loop"}
    return params


def _params_key(params: dict | None) -> str:
    return json.dumps(params or {}, sort_keys=True, default=str)


class Views:
    """Per-sample information and selector rows, computed per chunk through a Session and cached."""

    def __init__(self, session: Session, chunk_size: int = 8):
        self.session = session
        self.chunk_size = chunk_size
        self._info: dict[tuple, list[SampleInfo]] = {}  # (model, data, split, chunk) -> infos
        self._scores: dict[tuple, list[SelectorRow]] = {}  # the selector score cache
        self._fits: dict[tuple, list[Fit]] = {}  # (model, format, data, split) -> one Fit per sample

    def _chunk(self, data_spec: str, split: str, index: int) -> tuple[int, list[Sample]]:
        samples = self.session.samples(data_spec, split)
        if not samples:
            raise IndexError(f"{data_spec}: the {split} split is empty")
        if not 0 <= index < len(samples):
            raise IndexError(f"sample {index} is out of range: the {split} split has {len(samples)} "
                             f"samples (0..{len(samples) - 1})")
        c = index // self.chunk_size
        return c, samples[c * self.chunk_size:(c + 1) * self.chunk_size]

    # -- per-sample information

    def info(self, model_spec: str, data_spec: str, split: str, index: int) -> SampleInfo:
        """Tokens, probabilities and spans of one sample (its chunk computed once)."""
        with self.session.lock:
            c, chunk = self._chunk(data_spec, split, index)
            tok = self.session.model(model_spec)[1]
            key = (model_spec, format_of(tok).key(tok), data_spec, split, c)  # the prompt format sets the tokens
            if key not in self._info:
                self._info[key] = self._compute_info(model_spec, chunk, c * self.chunk_size)
            return self._info[key][index - c * self.chunk_size]

    def _compute_info(self, model_spec: str, chunk: list[Sample], start: int) -> list[SampleInfo]:
        model, tok = self.session.model(model_spec)
        batch = encode_samples(tok, chunk)
        probs = forget_token_probs(model, tok, chunk, batch_size=len(chunk))  # per sample, over label positions
        spans = fact_mask(batch, chunk) if any(s.spans for s in chunk) else None
        fits = sample_fits(tok, chunk)
        out = []
        for i, s in enumerate(chunk):
            lm = batch.label_mask[i]
            tokens, eos = label_tokens(tok, batch, i)
            out.append(SampleInfo(
                index=start + i, uid=s.uid, question=s.question, answer=s.answer, text_hash=text_hash(s.question, s.answer),
                tokens=tokens, eos=eos, probs=probs[i].tolist(), answer_mask=[not e for e in eos],
                spans=spans[i][lm].tolist() if spans is not None and s.spans else None, fit=fits[i]))
        return out

    def fits(self, model_spec: str, data_spec: str, split: str) -> list[Fit]:
        """Every sample of a split against the model's context (tokenizer only; cached)."""
        with self.session.lock:
            tok = self.session.model(model_spec)[1]
            key = (model_spec, format_of(tok).key(tok), data_spec, split)
            if key not in self._fits:
                self._fits[key] = sample_fits(tok, self.session.samples(data_spec, split))
            return self._fits[key]

    # -- selector scores (cached)

    def selector_row(self, model_spec: str, data_spec: str, split: str, index: int, selector: str,
                     params: dict | None = None) -> SelectorRow:
        """One selector's row for one sample; its chunk is scored once and cached."""
        with self.session.lock:
            c, chunk = self._chunk(data_spec, split, index)
            tok = self.session.model(model_spec)[1]
            key = (model_spec, format_of(tok).key(tok), data_spec, split, selector, _params_key(params), c)
            if key not in self._scores:
                self._scores[key] = self._score_chunk(model_spec, chunk, selector, params or {})
            return self._scores[key][index - c * self.chunk_size]

    def _score_chunk(self, model_spec: str, chunk: list[Sample], selector: str, params: dict) -> list[SelectorRow]:
        model, tok = self.session.model(model_spec)
        batch = encode_samples(tok, chunk)
        try:
            out = selectors.select(selector, model, tok, chunk, batch=batch, **explore_params(model, selector, params))
        except (SelectorUnavailable, NoSpansError) as err:
            return [SelectorRow(selector, error=str(err), params=params) for _ in chunk]
        except Exception as err:  # a selector bug is shown in its row, not a crash of the page
            return [SelectorRow(selector, error=f"{selector} failed: {type(err).__name__}: {err}", params=params)
                    for _ in chunk]
        scores = label_rows(out.scores.float(), batch)
        masks = label_rows(out.mask, batch)
        shown = {k: v for k, v in (out.params or {}).items() if isinstance(v, (int, float, str, bool))}
        return [SelectorRow(selector, s.tolist(), m.tolist(), None, shown) for s, m in zip(scores, masks)]

    def forget(self, selector: str | None = None) -> None:
        """Drop cached scores (of one selector, or all): e.g. after fitting an ATWU scorer."""
        with self.session.lock:
            for key in [k for k in self._scores if selector is None or k[4] == selector]:
                del self._scores[key]

    # -- what the tabs ask for

    def view(self, model_spec: str, data_spec: str, split: str, index: int,
             names: list[str] | None = None, progress=None) -> SampleView:
        """Info plus every selector's row (all registered selectors unless `names` are given), under one
        hold of the session lock: one loaded model (and prompt format) for all of them, even when another
        thread releases the models meanwhile (the model bar's prompt-format picker).

        progress(phase: dict) is called before each piece of work that is not cached yet, with
        {"phase": "loading model" | "p(token)" | "selector", "model", "samples": (first, last, of),
        "selector", "k", "n"} (k of n selectors), so a page can say what a slow model is doing.
        """
        with self.session.lock:
            names = list(names) if names is not None else list(selectors.SELECTORS)
            c, chunk = self._chunk(data_spec, split, index)
            where = {"model": model_spec, "samples": (c * self.chunk_size, c * self.chunk_size + len(chunk) - 1,
                                                       len(self.session.samples(data_spec, split)))}
            report = progress or (lambda phase: None)
            if not self.session.loaded(model_spec):
                report({"phase": "loading model", **where})
                self.session.model(model_spec)
            tok = self.session.model(model_spec)[1]
            if (model_spec, format_of(tok).key(tok), data_spec, split, c) not in self._info:  # as `info` keys it
                report({"phase": "p(token)", **where})
            info = self.info(model_spec, data_spec, split, index)
            rows = {}
            with shared_forward():  # the forward-only selectors of this chunk share one forward pass
                for k, n in enumerate(names, 1):
                    if not self.cached(model_spec, data_spec, split, index, n):
                        report({"phase": "selector", "selector": n, "k": k, "n": len(names), **where})
                    rows[n] = self.selector_row(model_spec, data_spec, split, index, n)
            return SampleView(info, rows)

    def cached(self, model_spec: str, data_spec: str, split: str, index: int, selector: str,
               params: dict | None = None) -> bool:
        """Whether a selector's row of this sample's chunk is in the score cache (no model call needed)."""
        if not self.session.loaded(model_spec):
            return False
        c, _ = self._chunk(data_spec, split, index)
        tok = self.session.model(model_spec)[1]
        return (model_spec, format_of(tok).key(tok), data_spec, split, selector, _params_key(params), c) in self._scores

    def default_masks(self, model_spec: str, data_spec: str, selector: str, split: str = "forget",
                      params: dict | None = None, progress=None) -> dict[str, tuple[str, list[int]]]:
        """{uid: (text_hash, 0/1 mask over label positions)} for every sample of the split.

        progress(fraction) is called as chunks are scored. ValueError with the selector's message
        when it cannot run (the mask set is not made).
        """
        out = {}
        n = len(self.session.samples(data_spec, split))
        for i in range(n):
            if progress is not None and i % self.chunk_size == 0:
                progress(i / n)
            info = self.info(model_spec, data_spec, split, i)
            row = self.selector_row(model_spec, data_spec, split, i, selector, params)
            if not row.ok:
                raise ValueError(row.error)
            out[info.uid] = (info.text_hash, [int(m and a) for m, a in zip(row.mask, info.answer_mask)])
        return out


def rule_masks(view: SampleView, rule: str = "default", k: int = 5,
               threshold: float = 0.5) -> dict[str, list[bool] | None]:
    """{selector: its mask under `rule`, or None when it could not run} for one view."""
    return {name: apply_mask_rule(row, view.info.answer_mask, rule, k, threshold) for name, row in view.rows.items()}
