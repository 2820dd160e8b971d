"""Models and data by name (engine.resolve), loaded once and kept: the explore service's session.

    session = Session(device="cpu")
    model, tokenizer = session.model("demo")          # cached, least recently used dropped
    samples = session.samples("demo", "forget")

Thread-safe: one re-entrant lock serialises loading and every model call made through the
session (the app's handlers run in worker threads; a background training run loads its own
copy of the model).
"""
from __future__ import annotations

import threading
from collections import OrderedDict

from ..data import Benchmark, Sample
from ..fingerprint import tokenizer_fingerprint
from ..models import load_model
from ..models.device import release_memory
from ..resolve import load_data, model_path

SPLITS = ("forget", "retain", "real_authors", "world_facts")


class Session:
    """(model, tokenizer) and Benchmark caches keyed by the names a person typed."""

    def __init__(self, device: str = "auto", max_models: int = 3):
        self.device = device
        self.max_models = max_models
        self.lock = threading.RLock()
        self._models: OrderedDict[str, tuple] = OrderedDict()
        self._data: dict[str, Benchmark] = {}

    def dataset(self, data_spec: str) -> Benchmark:
        """The Benchmark for a data name or directory (cached); DataError when it cannot load."""
        with self.lock:
            if data_spec not in self._data:
                self._data[data_spec] = load_data(data_spec)
            return self._data[data_spec]

    def samples(self, data_spec: str, split: str = "forget") -> list[Sample]:
        return self.dataset(data_spec).split(split)

    def sample(self, data_spec: str, split: str, index: int) -> Sample:
        """One sample; IndexError naming the split's size when `index` is out of range."""
        samples = self.samples(data_spec, split)
        if not 0 <= index < len(samples):
            raise IndexError(f"sample {index} is out of range: the {split} split has {len(samples)} samples")
        return samples[index]

    def model(self, model_spec: str):
        """(model, tokenizer) in eval mode (cached, least recently used dropped); ModelLoadError."""
        with self.lock:
            if model_spec in self._models:
                self._models.move_to_end(model_spec)
                return self._models[model_spec]
            loaded = load_model(model_path(model_spec), self.device)
            self._models[model_spec] = loaded
            while len(self._models) > self.max_models:
                self._models.popitem(last=False)
            return loaded

    def loaded(self, model_spec: str) -> bool:
        """Whether `model_spec` is in the cache (a `model` call returns at once)."""
        return model_spec in self._models

    def release_models(self) -> int:
        """Drop every cached model (an unlearning run is about to load its own) and give the
        memory back (`release_memory`: CUDA's cached blocks, the C heap's free pages); the next
        `model` call reloads. Returns how many."""
        with self.lock:
            n = len(self._models)
            self._models.clear()
        release_memory()
        return n

    def fingerprint(self, model_spec: str) -> str:
        return tokenizer_fingerprint(self.model(model_spec)[1])

    def search(self, data_spec: str, split: str, text: str) -> list[int]:
        """Indices of samples whose question or answer contains `text` (case-insensitive)."""
        needle = (text or "").strip().lower()
        samples = self.samples(data_spec, split)
        if not needle:
            return list(range(len(samples)))
        return [i for i, s in enumerate(samples) if needle in s.question.lower() or needle in s.answer.lower()]
