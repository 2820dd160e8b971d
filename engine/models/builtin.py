"""The built-in default: a byte-level BPE tokenizer and two tiny GPT-2 models, trained here.

`ensure_builtin()` builds, on first use and whenever the recipe changes, under
`<workbench>/builtin/`: the benchmark (`data/`), the **target** model (trained on every
author plus the general-knowledge sets) and the **retain** model (the same recipe without
forget10, TOFU's gold standard). Seeded, cached as standard HF directories (safetensors).
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from .. import paths
from ..data import load_file
from ..data.synthetic import GENERATOR_VERSION, write_benchmark
from .finetune import (TrainSettings, cosine_lr, save_hf, tiny_gpt2,  # noqa: F401 (cosine_lr: re-exported)
                       train_causal_lm)

Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class Recipe:
    """Everything that decides the built-in models; a change rebuilds them."""

    data_seed: int = 0
    generator_version: int = GENERATOR_VERSION
    vocab_size: int = 2048
    n_layer: int = 4
    n_embd: int = 128
    n_head: int = 4
    n_positions: int = 128
    epochs: int = 20
    batch_size: int = 32
    lr: float = 3e-3
    warmup_steps: int = 30
    weight_decay: float = 0.0
    seed: int = 0

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class BuiltinPaths:
    root: Path
    data: Path
    target: Path
    retain: Path


def builtin_paths() -> BuiltinPaths:
    root = paths.builtin_dir()
    return BuiltinPaths(root, root / "data", root / "target", root / "retain")


def train_tokenizer(texts: list[str], vocab_size: int, max_length: int):
    """Byte-level BPE (min frequency 2) wrapped as a PreTrainedTokenizerFast with EOS and PAD."""
    from tokenizers import ByteLevelBPETokenizer  # deferred: tokenizers
    from transformers import PreTrainedTokenizerFast  # deferred: transformers

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=2,
                            special_tokens=["<|endoftext|>", "<|pad|>"], show_progress=False)
    return PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>", pad_token="<|pad|>",
                                   model_max_length=max_length)


def builtin_settings(recipe: Recipe) -> TrainSettings:
    """The recipe's training hyper-parameters for the shared fine-tuning loop (seeded shuffle,
    no gradient accumulation, AdamW β = (0.9, 0.98)): the same steps the bootstrap always ran."""
    return TrainSettings(epochs=recipe.epochs, lr=recipe.lr, weight_decay=recipe.weight_decay,
                         batch_size=recipe.batch_size, grad_accum=1, warmup_steps=recipe.warmup_steps,
                         betas=(0.9, 0.98), max_grad_norm=1.0, batching="shuffle", seed=recipe.seed)


def train_lm(samples, tokenizer, recipe: Recipe, progress: Progress | None, label: str,
             share: tuple[float, float]):
    """Train a fresh tiny GPT-2 on answer tokens only (`finetune.train_causal_lm`); CPU, eval mode."""
    model = tiny_gpt2(tokenizer, recipe.n_positions, recipe.n_layer, recipe.n_embd, recipe.n_head, recipe.seed)
    return train_causal_lm(model, tokenizer, samples, builtin_settings(recipe), progress, label, share)


def _is_current(p: BuiltinPaths, recipe: Recipe) -> bool:
    stamp = p.root / "recipe.json"
    return stamp.is_file() and json.loads(stamp.read_text()).get("digest") == recipe.digest() and \
        all((d / "model.safetensors").is_file() for d in (p.target, p.retain))


def _tqdm_progress() -> Progress:
    from tqdm.auto import tqdm  # deferred: tqdm

    bar = tqdm(total=1000, desc="built-in models", unit="‰", leave=True)

    def update(fraction: float, message: str) -> None:
        bar.set_description(message[:60], refresh=False)
        bar.update(int(fraction * 1000) - bar.n)  # tqdm throttles the redraws
        if fraction >= 1.0:
            bar.close()
    return update


def builtin_is_current(recipe: Recipe = Recipe()) -> bool:
    """Whether the cached built-in benchmark and models match `recipe` (nothing to build)."""
    return _is_current(builtin_paths(), recipe)


def ensure_builtin(progress: Progress | None = None, recipe: Recipe = Recipe()) -> BuiltinPaths:
    """Build the benchmark, tokenizer, target and retain models unless current ones are cached.

    progress(fraction, message) is called during the build; a tqdm bar is used when None.
    A file lock makes concurrent callers (app + CLI) wait for one build.
    """
    p = builtin_paths()
    if _is_current(p, recipe):
        return p
    p.root.mkdir(parents=True, exist_ok=True)
    with open(p.root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _is_current(p, recipe):
            return p
        progress = progress or _tqdm_progress()
        started = time.perf_counter()
        progress(0.0, "writing the built-in benchmark")
        for d in (p.data, p.target, p.retain):
            shutil.rmtree(d, ignore_errors=True)
        write_benchmark(p.data, seed=recipe.data_seed)
        full, retain90 = load_file(p.data / "full.json"), load_file(p.data / "retain90.json")
        general = load_file(p.data / "real_authors.json") + load_file(p.data / "world_facts.json")
        progress(0.01, "training the tokenizer")
        texts = [t for s in full + load_file(p.data / "holdout.json") + general
                 for t in (s.question, s.answer, s.paraphrased_answer or "", *s.perturbed_answers)]
        tokenizer = train_tokenizer(texts, recipe.vocab_size, recipe.n_positions)
        for label, samples, out, share in (("target", full + general, p.target, (0.02, 0.49)),
                                           ("retain", retain90 + general, p.retain, (0.51, 0.49))):
            save_hf(train_lm(samples, tokenizer, recipe, progress, label, share), tokenizer, out)
        seconds = time.perf_counter() - started
        (p.root / "recipe.json").write_text(json.dumps(
            {"digest": recipe.digest(), "recipe": asdict(recipe), "build_seconds": round(seconds, 1)}, indent=1))
        progress(1.0, f"built-in models ready in {seconds:.0f} s")
    return p
