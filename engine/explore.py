"""The app's engine-side service: models and data by name, selector scores per sample, cached.

No Gradio here. The app asks for one sample at a time; the service scores the sample's chunk
(`chunk_size` consecutive samples of the split) with a selector in one batched call of
`engine.selectors.select` and keeps the result: the **selector score cache**, keyed by
(model, data, split, selector, params), in memory for the life of the process.

    svc = ExploreService()
    view = svc.view("demo", "demo", "forget", 0)        # tokens, probabilities, spans, every selector
    view.rows["wga"].scores, view.rows["wga"].mask      # lists over the sample's label positions

All per-token lists live on LABEL positions (answer tokens + the closing EOS), the layout the
store's masks use; the EOS is never a target (`answer_mask` is False there).
"""
from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from . import paths
from .data import Benchmark, Sample
from .fingerprint import content_hash, text_hash, tokenizer_fingerprint, weights_fingerprint
from .tokens import encode_samples, fact_mask, label_rows

EOS_DISPLAY = "⟨eos⟩"
SPLITS = ("forget", "retain", "real_authors", "world_facts")
MASK_RULES = ("default", "top-k", "threshold")


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
    """What does not depend on a selector: display tokens, p(y_t) under the model, spans."""

    index: int
    uid: str
    question: str
    answer: str
    text_hash: str
    tokens: list[str]  # display strings, one per label position (the last is the EOS)
    probs: list[float]  # p(y_t | y_<t) under the model
    answer_mask: list[bool]  # label positions that may be targets (False at the EOS)
    spans: list[bool] | None  # ground-truth fact-span membership, None when the sample has none


@dataclass
class SampleView:
    info: SampleInfo
    rows: dict[str, SelectorRow]


# ---------------------------------------------------------------- small pure helpers

def canonical_data(spec: str) -> str:
    """One name per data split: `demo` is `demo/forget10` (engine.resolve's default split)."""
    return "demo/forget10" if spec == "demo" else str(spec).rstrip("/")


def apply_mask_rule(row: SelectorRow, answer_mask: list[bool], rule: str = "default", k: int = 5,
                    threshold: float = 0.5) -> list[bool] | None:
    """The mask a person asked for from a row's cached scores (no model call):

    default: the selector's own mask. top-k: the k highest-scoring answer tokens (ties: earlier
    first). threshold: answer tokens whose score, min-max normalised over the row's answer
    tokens, is at least `threshold` **[choice]**: a relative scale makes one slider mean the
    same on bounded (wga) and unbounded (entropy, dto) scores; a constant row selects all.
    """
    if not row.ok:
        return None
    if rule == "default":
        return list(row.mask)
    from .selectors.base import top_k_mask

    scores = torch.tensor(row.scores, dtype=torch.float32).unsqueeze(0)  # (1, n)
    allowed = torch.tensor(answer_mask, dtype=torch.bool).unsqueeze(0)  # (1, n)
    if rule == "top-k":
        return top_k_mask(scores, allowed, max(1, int(k)))[0].tolist()
    if rule == "threshold":
        vals = scores[allowed]
        if vals.numel() == 0:
            return [False] * len(answer_mask)
        lo, hi = float(vals.min()), float(vals.max())
        norm = (scores - lo) / (hi - lo) if hi > lo else torch.ones_like(scores)
        return ((norm >= float(threshold)) & allowed)[0].tolist()
    raise ValueError(f"unknown mask rule {rule!r}; use one of {', '.join(MASK_RULES)}")


def display_tokens(tokenizer, batch, i: int) -> list[str]:
    """Row i's label tokens as display strings (the closing EOS as ⟨eos⟩)."""
    from tokenviz.chips import display_token

    lm = batch.label_mask[i]
    raw = tokenizer.convert_ids_to_tokens(batch.input_ids[i][lm].tolist())
    return [EOS_DISPLAY if e else display_token(r) for r, e in zip(raw, batch.eos_mask[i][lm].tolist())]


def _params_key(params: dict | None) -> str:
    return json.dumps(params or {}, sort_keys=True, default=str)


# ---------------------------------------------------------------- the service

class ExploreService:
    """Loads models and data by name (engine.resolve), scores samples with selectors, caches.

    Thread-safe: one lock serialises model loading and scoring (the app's handlers run in
    worker threads; a background training run loads its own copy of the model).
    """

    def __init__(self, device: str = "auto", chunk_size: int = 8, max_models: int = 3):
        self.device = device
        self.chunk_size = chunk_size
        self.max_models = max_models
        self._lock = threading.RLock()
        self._models: OrderedDict[str, tuple] = OrderedDict()
        self._data: dict[str, Benchmark] = {}
        self._info: dict[tuple, list[SampleInfo]] = {}  # (model, data, split, chunk) -> infos
        self._scores: dict[tuple, list[SelectorRow]] = {}  # the selector score cache
        self._refs: dict[tuple, list[dict]] = {}

    # -- loading

    def dataset(self, data_spec: str) -> Benchmark:
        """The Benchmark for a data name or directory (cached); DataError when it cannot load."""
        from .resolve import load_data

        with self._lock:
            if data_spec not in self._data:
                self._data[data_spec] = load_data(data_spec)
            return self._data[data_spec]

    def samples(self, data_spec: str, split: str = "forget") -> list[Sample]:
        return self.dataset(data_spec).split(split)

    def model(self, model_spec: str):
        """(model, tokenizer) in eval mode (cached, least recently used dropped); ModelLoadError."""
        from .models import load_model
        from .resolve import model_path

        with self._lock:
            if model_spec in self._models:
                self._models.move_to_end(model_spec)
                return self._models[model_spec]
            loaded = load_model(model_path(model_spec), self.device)
            self._models[model_spec] = loaded
            while len(self._models) > self.max_models:
                self._models.popitem(last=False)
            return loaded

    def fingerprint(self, model_spec: str) -> str:
        return tokenizer_fingerprint(self.model(model_spec)[1])

    def search(self, data_spec: str, split: str, text: str) -> list[int]:
        """Indices of samples whose question or answer contains `text` (case-insensitive)."""
        needle = (text or "").strip().lower()
        samples = self.samples(data_spec, split)
        if not needle:
            return list(range(len(samples)))
        return [i for i, s in enumerate(samples) if needle in s.question.lower() or needle in s.answer.lower()]

    # -- per-sample information

    def _chunk(self, data_spec: str, split: str, index: int) -> tuple[int, list[Sample]]:
        samples = self.samples(data_spec, split)
        if not samples:
            raise IndexError(f"{data_spec}: the {split} split is empty")
        if not 0 <= index < len(samples):
            raise IndexError(f"sample {index} is out of range: the {split} split has {len(samples)} "
                             f"samples (0..{len(samples) - 1})")
        c = index // self.chunk_size
        return c, samples[c * self.chunk_size:(c + 1) * self.chunk_size]

    def info(self, model_spec: str, data_spec: str, split: str, index: int) -> SampleInfo:
        """Display tokens, probabilities and spans of one sample (its chunk computed once)."""
        with self._lock:
            c, chunk = self._chunk(data_spec, split, index)
            key = (model_spec, data_spec, split, c)
            if key not in self._info:
                self._info[key] = self._compute_info(model_spec, chunk, c * self.chunk_size)
            return self._info[key][index - c * self.chunk_size]

    def _compute_info(self, model_spec: str, chunk: list[Sample], start: int) -> list[SampleInfo]:
        from .eval.run import forget_token_probs

        model, tok = self.model(model_spec)
        batch = encode_samples(tok, chunk)
        probs = forget_token_probs(model, tok, chunk, batch_size=len(chunk))  # per sample, over label positions
        spans = fact_mask(batch, chunk) if any(s.spans for s in chunk) else None
        out = []
        for i, s in enumerate(chunk):
            lm = batch.label_mask[i]
            eos = batch.eos_mask[i][lm].tolist()
            tokens = display_tokens(tok, batch, i)
            out.append(SampleInfo(
                index=start + i, uid=s.uid, question=s.question, answer=s.answer, text_hash=text_hash(s.question, s.answer),
                tokens=tokens, probs=probs[i].tolist(), answer_mask=[not e for e in eos],
                spans=spans[i][lm].tolist() if spans is not None and s.spans else None))
        return out

    # -- selector scores (cached)

    def selector_row(self, model_spec: str, data_spec: str, split: str, index: int, selector: str,
                     params: dict | None = None) -> SelectorRow:
        """One selector's row for one sample; its chunk is scored once and cached."""
        with self._lock:
            c, chunk = self._chunk(data_spec, split, index)
            key = (model_spec, data_spec, split, selector, _params_key(params), c)
            if key not in self._scores:
                self._scores[key] = self._score_chunk(model_spec, chunk, selector, params or {})
            return self._scores[key][index - c * self.chunk_size]

    def _score_chunk(self, model_spec: str, chunk: list[Sample], selector: str, params: dict) -> list[SelectorRow]:
        from .selectors import select
        from .selectors.base import SelectorUnavailable
        from .selectors.oracle import NoSpansError

        model, tok = self.model(model_spec)
        batch = encode_samples(tok, chunk)
        try:
            out = select(selector, model, tok, chunk, batch=batch, **params)
        except (SelectorUnavailable, NoSpansError) as err:
            return [SelectorRow(selector, error=str(err), params=params) for _ in chunk]
        except Exception as err:  # a selector bug is shown in its row, not a crash of the page
            return [SelectorRow(selector, error=f"{selector} failed: {type(err).__name__}: {err}", params=params)
                    for _ in chunk]
        scores = label_rows(out.scores.float(), batch)
        masks = label_rows(out.mask, batch)
        shown = {k: v for k, v in (out.params or {}).items() if isinstance(v, (int, float, str, bool))}
        return [SelectorRow(selector, s.tolist(), m.tolist(), None, shown) for s, m in zip(scores, masks)]

    def view(self, model_spec: str, data_spec: str, split: str, index: int,
             selectors: list[str] | None = None) -> SampleView:
        """Everything the Explore tab shows for one sample: info plus every selector's row."""
        from .selectors import SELECTORS

        info = self.info(model_spec, data_spec, split, index)
        names = list(selectors) if selectors is not None else list(SELECTORS)
        return SampleView(info, {n: self.selector_row(model_spec, data_spec, split, index, n) for n in names})

    def default_masks(self, model_spec: str, data_spec: str, selector: str, split: str = "forget",
                      params: dict | None = None, progress=None) -> dict[str, tuple[str, list[int]]]:
        """{uid: (text_hash, 0/1 mask over label positions)} for every sample of the split.

        progress(fraction) is called as chunks are scored. ValueError with the selector's message
        when it cannot run (the mask set is not made).
        """
        out = {}
        n = len(self.samples(data_spec, split))
        for i in range(n):
            if progress is not None and i % self.chunk_size == 0:
                progress(i / n)
            info = self.info(model_spec, data_spec, split, i)
            row = self.selector_row(model_spec, data_spec, split, i, selector, params)
            if not row.ok:
                raise ValueError(row.error)
            out[info.uid] = (info.text_hash, [int(m and a) for m, a in zip(row.mask, info.answer_mask)])
        return out

    def forget(self, selector: str | None = None) -> None:
        """Drop cached scores (of one selector, or all): e.g. after fitting an ATWU scorer."""
        with self._lock:
            for key in [k for k in self._scores if selector is None or k[3] == selector]:
                del self._scores[key]

    # -- before / after

    def answer_probs(self, model, tokenizer, sample: Sample) -> tuple[list[str], list[float]]:
        """Display tokens and p(y_t) of a sample's ground-truth answer under `model`."""
        from .eval.run import forget_token_probs

        batch = encode_samples(tokenizer, [sample])
        return display_tokens(tokenizer, batch, 0), forget_token_probs(model, tokenizer, [sample])[0].tolist()

    def before_after(self, model_spec: str, data_spec: str, split: str, index: int, checkpoint: str | Path,
                     max_new_tokens: int = 48) -> dict:
        """Greedy generations and answer-token probabilities of the model and of a run checkpoint.

        Returns {question, answer, before: {generation, tokens, probs}, after: {...}}.
        ModelLoadError when the checkpoint directory cannot be loaded.
        """
        from .eval.metrics import greedy_generate

        samples = self.samples(data_spec, split)
        if not 0 <= index < len(samples):
            raise IndexError(f"sample {index} is out of range: the {split} split has {len(samples)} samples")
        sample = samples[index]
        out = {"question": sample.question, "answer": sample.answer}
        with self._lock:
            for side, spec in (("before", model_spec), ("after", str(checkpoint))):
                model, tok = self.model(spec)
                gen = greedy_generate(model, tok, [sample.question], max_new_tokens=max_new_tokens)[0]
                tokens, probs = self.answer_probs(model, tok, sample)
                out[side] = {"model": spec, "generation": gen, "tokens": tokens, "probs": probs}
        return out

    # -- reference points for the trade-off plot

    def reference_points(self, model_spec: str, data_spec: str, retain_eval_size: int = 200,
                         max_new_tokens: int = 64) -> list[dict]:
        """Target and retain models evaluated (engine.evaluate) as {label, epoch, metrics} dicts.

        Cached in memory and on disk (cache dir, keyed by the model files and the data). The
        retain model is included only when the data has one (built-in data: demo-retain).
        """
        from .eval.full import evaluate, reference_truth_ratios
        from .resolve import model_path, retain_model_for

        key = (model_spec, data_spec, retain_eval_size, max_new_tokens)
        with self._lock:
            if key in self._refs:
                return self._refs[key]
            bench = self.dataset(data_spec)
            retain_spec = retain_model_for(model_spec, data_spec)
            specs = [("target", model_spec)] + ([("retain", retain_spec)] if retain_spec else [])
            disk = paths.cache_dir() / f"reference_points_{self._ref_digest(specs, bench, key)}.json"
            if disk.is_file():
                points = json.loads(disk.read_text())
            else:
                ref_tr = reference_truth_ratios(model_path(retain_spec), bench, self.device) if retain_spec else None
                points = []
                for label, spec in specs:
                    model, tok = self.model(spec)
                    rep = evaluate(model, tok, bench, ref_tr, retain_size=retain_eval_size,
                                   max_new_tokens=max_new_tokens)
                    points.append({"label": f"{label} model ({spec})", "model": spec,
                                   "metrics": {"forget_quality": rep.forget_quality,
                                               "model_utility": rep.model_utility, **rep.components},
                                   "notes": list(rep.notes)})
                disk.write_text(json.dumps(points))
            self._refs[key] = points
            return points

    def cached_reference_points(self, model_spec: str, data_spec: str, retain_eval_size: int = 200,
                                max_new_tokens: int = 64) -> list[dict] | None:
        """The reference points when already computed (memory or disk), else None; never evaluates."""
        from .resolve import retain_model_for

        key = (model_spec, data_spec, retain_eval_size, max_new_tokens)
        if key in self._refs:
            return self._refs[key]
        try:
            bench = self.dataset(data_spec)
        except Exception:
            return None
        retain_spec = retain_model_for(model_spec, data_spec)
        specs = [("target", model_spec)] + ([("retain", retain_spec)] if retain_spec else [])
        disk = paths.cache_dir() / f"reference_points_{self._ref_digest(specs, bench, key)}.json"
        if disk.is_file():
            self._refs[key] = json.loads(disk.read_text())
            return self._refs[key]
        return None

    @staticmethod
    def _ref_digest(specs, bench: Benchmark, key: tuple) -> str:
        from .resolve import model_path

        return content_hash(json.dumps([bench.name, len(bench.forget), len(bench.retain), *key[2:]]),
                            *(weights_fingerprint(model_path(spec)) or str(spec) for _, spec in specs), length=20)


def view_to_dict(view: SampleView) -> dict:
    """A JSON-serialisable form of a SampleView (for the app's API and tests)."""
    return {"info": asdict(view.info), "rows": {k: asdict(v) for k, v in view.rows.items()}}
