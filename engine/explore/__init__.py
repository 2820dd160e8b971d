"""The app's engine-side service: one object the tabs share, delegating to one module per job.

    session.py       models and data by name (engine.resolve), cached
    views.py         raw per-token data of a sample and the selector score cache
    before_after.py  generations and answer probabilities of a model and a checkpoint
    engine/eval/reference_points.py   the trade-off plot's target/retain points
    engine/selectors/mask_rules.py    default / top-k / threshold masks from cached scores

No Gradio and no tokenviz here: the service returns raw data (tokens as the tokenizer's pieces);
the UI formats it.

    svc = ExploreService()
    view = svc.view("demo", "demo", "forget", 0)        # tokens, probabilities, spans, every selector
    view.rows["wga"].scores, view.rows["wga"].mask      # lists over the sample's label positions
"""
from __future__ import annotations

from pathlib import Path

from ..data import Benchmark, Sample
from ..eval import reference_points as refs
from ..selectors.mask_rules import MASK_RULES
from .before_after import before_after
from .fit import Fit, fit_of, sample_fits
from .session import SPLITS, Session
from .views import SampleInfo, SampleView, SelectorRow, Views, apply_mask_rule, rule_masks


class ExploreService:
    """Loads models and data by name, scores samples with selectors, caches (see the modules).

    Thread-safe: one lock (the session's) serialises model loading and scoring.
    """

    def __init__(self, device: str = "auto", chunk_size: int = 8, max_models: int = 3):
        self.session = Session(device, max_models)
        self.views = Views(self.session, chunk_size)
        self._refs: dict[tuple, list[dict]] = {}  # reference points kept in memory

    @property
    def device(self) -> str:
        return self.session.device

    def release_models(self) -> int:
        """Free the cached models (JobManager's before_run hook: a run loads its own copy)."""
        return self.session.release_models()

    @property
    def chunk_size(self) -> int:
        return self.views.chunk_size

    # -- session

    def dataset(self, data_spec: str) -> Benchmark:
        return self.session.dataset(data_spec)

    def samples(self, data_spec: str, split: str = "forget") -> list[Sample]:
        return self.session.samples(data_spec, split)

    def model(self, model_spec: str):
        return self.session.model(model_spec)

    def fingerprint(self, model_spec: str) -> str:
        return self.session.fingerprint(model_spec)

    def search(self, data_spec: str, split: str, text: str) -> list[int]:
        return self.session.search(data_spec, split, text)

    # -- views

    def info(self, model_spec: str, data_spec: str, split: str, index: int) -> SampleInfo:
        return self.views.info(model_spec, data_spec, split, index)

    def selector_row(self, model_spec: str, data_spec: str, split: str, index: int, selector: str,
                     params: dict | None = None) -> SelectorRow:
        return self.views.selector_row(model_spec, data_spec, split, index, selector, params)

    def view(self, model_spec: str, data_spec: str, split: str, index: int,
             selectors: list[str] | None = None, progress=None) -> SampleView:
        """Info and every selector's row; progress(phase dict) before uncached work (Views.view)."""
        return self.views.view(model_spec, data_spec, split, index, selectors, progress)

    def masks(self, view: SampleView, rule: str = "default", k: int = 5,
              threshold: float = 0.5) -> dict[str, list[bool] | None]:
        """Each row's mask under a mask rule (from cached scores; None where a selector could not run)."""
        return rule_masks(view, rule, k, threshold)

    def default_masks(self, model_spec: str, data_spec: str, selector: str, split: str = "forget",
                      params: dict | None = None, progress=None) -> dict[str, tuple[str, list[int]]]:
        return self.views.default_masks(model_spec, data_spec, selector, split, params, progress)

    def forget(self, selector: str | None = None) -> None:
        self.views.forget(selector)

    def fits(self, model_spec: str, data_spec: str, split: str = "forget") -> list[Fit]:
        """Each sample's answer tokens kept / total against the model's context (engine/explore/fit.py)."""
        return self.views.fits(model_spec, data_spec, split)

    # -- before / after, reference points

    def before_after(self, model_spec: str, data_spec: str, split: str, index: int, checkpoint: str | Path,
                     max_new_tokens: int = 48) -> dict:
        return before_after(self.session, model_spec, data_spec, split, index, checkpoint, max_new_tokens)

    def reference_points(self, model_spec: str, data_spec: str, retain_eval_size: int = 200,
                         max_new_tokens: int = 64, retain_spec: str | None = None) -> list[dict]:
        return refs.reference_points(self.session, model_spec, data_spec, retain_eval_size, max_new_tokens,
                                     self._refs, retain_spec)

    def cached_reference_points(self, model_spec: str, data_spec: str, retain_eval_size: int = 200,
                                max_new_tokens: int = 64, retain_spec: str | None = None) -> list[dict] | None:
        return refs.cached_reference_points(self.session, model_spec, data_spec, retain_eval_size,
                                            max_new_tokens, self._refs, retain_spec)


__all__ = ["MASK_RULES", "SPLITS", "ExploreService", "Fit", "fit_of", "sample_fits", "SampleInfo", "SampleView", "SelectorRow", "Session", "Views",
           "apply_mask_rule", "rule_masks"]
