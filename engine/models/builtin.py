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
import math
import random
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch

from .. import paths
from ..data import load_file
from ..data.synthetic import GENERATOR_VERSION, write_benchmark
from ..tokens import encode_samples, per_token_nll

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
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=2,
                            special_tokens=["<|endoftext|>", "<|pad|>"], show_progress=False)
    return PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>", pad_token="<|pad|>",
                                   model_max_length=max_length)


def cosine_lr(step: int, total: int, peak: float, warmup: int) -> float:
    """Linear warm-up to `peak`, then cosine decay to 0 (a pure function of the step)."""
    if step < warmup:
        return peak * (step + 1) / warmup
    return 0.5 * peak * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def train_lm(samples, tokenizer, recipe: Recipe, progress: Progress | None, label: str,
             share: tuple[float, float]):
    """Train a fresh tiny GPT-2 on answer tokens only; return the model (CPU, eval mode)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(recipe.seed)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=recipe.n_positions, n_embd=recipe.n_embd,
                        n_layer=recipe.n_layer, n_head=recipe.n_head, resid_pdrop=0.0, embd_pdrop=0.0,
                        attn_pdrop=0.0, bos_token_id=tokenizer.eos_token_id,
                        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    model = GPT2LMHeadModel(config)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, betas=(0.9, 0.98),
                            weight_decay=recipe.weight_decay)
    rng = random.Random(recipe.seed)
    order = list(range(len(samples)))
    steps_per_epoch = math.ceil(len(samples) / recipe.batch_size)
    total = steps_per_epoch * recipe.epochs
    step = 0
    model.train()
    for epoch in range(recipe.epochs):
        rng.shuffle(order)
        for i in range(0, len(order), recipe.batch_size):
            batch = encode_samples(tokenizer, [samples[j] for j in order[i:i + recipe.batch_size]])
            for group in opt.param_groups:
                group["lr"] = cosine_lr(step, total, recipe.lr, recipe.warmup_steps)
            nll = per_token_nll(model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits, batch)
            loss = nll.sum() / batch.label_mask.sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step += 1
            if progress:
                progress(share[0] + share[1] * step / total,
                         f"training {label} model: epoch {epoch + 1}/{recipe.epochs}, loss {loss.item():.3f}")
    return model.eval()


def _is_current(p: BuiltinPaths, recipe: Recipe) -> bool:
    stamp = p.root / "recipe.json"
    return stamp.is_file() and json.loads(stamp.read_text()).get("digest") == recipe.digest() and \
        all((d / "model.safetensors").is_file() for d in (p.target, p.retain))


def _tqdm_progress() -> Progress:
    from tqdm.auto import tqdm

    bar = tqdm(total=1000, desc="built-in models", unit="‰", leave=True)

    def update(fraction: float, message: str) -> None:
        bar.set_description(message[:60], refresh=False)
        bar.update(int(fraction * 1000) - bar.n)  # tqdm throttles the redraws
        if fraction >= 1.0:
            bar.close()
    return update


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
            model = train_lm(samples, tokenizer, recipe, progress, label, share)
            tmp = out.with_name(out.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            model.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
            tmp.rename(out)
        seconds = time.perf_counter() - started
        (p.root / "recipe.json").write_text(json.dumps(
            {"digest": recipe.digest(), "recipe": asdict(recipe), "build_seconds": round(seconds, 1)}, indent=1))
        progress(1.0, f"built-in models ready in {seconds:.0f} s")
    return p
