"""Short names for the built-in pieces, so the CLI and the app accept `demo`, `demo-retain`,
`demo/forget05` as well as paths to local model directories and TOFU data directories.

Models: `demo` (target), `demo-retain` (retain model), or a local HF directory.
Data: `demo` (= demo/forget10), `demo/forget01`, `demo/forget05`, `demo/forget10`, the real
TOFU benchmark shipped in `data/tofu` (`tofu/forget01|05|10`, `tofu/forget10-dev`:
engine.data.tofu_builtin), a TOFU-layout directory, or `DIR/<forget file stem>`.
"""
from __future__ import annotations

from pathlib import Path

from .data import Benchmark, DataError, load_benchmark
from .data.tofu_builtin import DATA_NAMES as TOFU_NAMES, is_tofu_name, load_tofu
from .model_dirs import MODEL_NAMES
from .models.builtin import ensure_builtin
from .models.smollm2 import NAME as SMOLLM2_NAME, model_dir as smollm2_dir
from .preset_paths import RETAIN_NAME, TARGET_NAME, model_paths

DATA_NAMES = ("demo", "demo/forget01", "demo/forget05", "demo/forget10")


def model_choices() -> list[str]:
    """The short model names, for a picker (local directories are typed in): the tiny built-ins,
    then the SmolLM2 names that are set up (`setup --model smollm2`, `setup --preset smollm2-tofu`)."""
    return list(MODEL_NAMES) + [name for name, path in real_models().items() if path.is_dir()]


def real_models() -> dict[str, Path]:
    """{name: directory} of the real-model built-ins: `smollm2` (the converted base model) and the
    preset's pair `smollm2-tofu` / `smollm2-tofu-retain` (engine.presets)."""
    return {SMOLLM2_NAME: smollm2_dir(), **model_paths()}


SETUP_HINT = {"smollm2": "python -m engine setup --model smollm2",
              "smollm2-tofu": "python -m engine setup --preset smollm2-tofu",
              "smollm2-tofu-retain": "python -m engine setup --preset smollm2-tofu"}


def data_choices() -> list[str]:
    """The short data names, for a picker (TOFU directories are typed in)."""
    return list(DATA_NAMES) + list(TOFU_NAMES)


def canonical_data(spec: str) -> str:
    """One name per data split: `demo` is `demo/forget10` (the default split of `load_data`)."""
    return "demo/forget10" if spec == "demo" else str(spec).rstrip("/")


def model_path(spec: str, progress=None) -> Path:
    """A model directory for a short name (building the built-in models if needed) or a path."""
    if spec in MODEL_NAMES:
        return getattr(ensure_builtin(progress), MODEL_NAMES[spec])
    if spec in SETUP_HINT:
        path = real_models()[spec]
        if not (path / "config.json").is_file():
            from .models import ModelLoadError  # deferred: torch

            raise ModelLoadError(f"{spec}: not set up yet; run `{SETUP_HINT[spec]}` first")
        return path
    return Path(spec).expanduser()


def retain_model_for(model_spec: str, data_spec: str, store=None) -> str | None:
    """The retain model forget quality uses for (model, data), the one rule of the CLI and the app:
    the pairing remembered in `store` (engine.store: `set_retain_model`, the app's retain-model
    box) when there is one, else `demo-retain` for built-in data, else `smollm2-tofu-retain` for the
    preset's models on TOFU data (`tofu/...`), else None.

    The built-in retain model never saw forget10's authors, and forget01 ⊂ forget05 ⊂ forget10, so
    it is the gold standard for every built-in forget split.
    """
    remembered = store.retain_model_of(model_spec, data_spec) if store is not None and model_spec and data_spec \
        else None
    if remembered:
        return remembered
    if data_spec == "demo" or data_spec.startswith("demo/"):
        return "demo-retain"
    if is_tofu_name(data_spec) and model_spec in (TARGET_NAME, RETAIN_NAME):
        return RETAIN_NAME
    return None


def load_data(spec: str, progress=None, protocol: str | None = None) -> Benchmark:
    """A Benchmark from a short name, a TOFU directory, or `DIR/<forget stem>`.

    protocol: 'tofu', 'open-unlearning' or 'all' (engine.data.Benchmark); None: 'open-unlearning' on
    TOFU's own layout, else 'all'."""
    if spec == "demo" or spec.startswith("demo/"):
        split = spec.split("/", 1)[1] if "/" in spec else "forget10"
        if spec not in DATA_NAMES:
            raise DataError(f"unknown built-in split {spec!r}; use one of {', '.join(DATA_NAMES)}")
        bench = load_benchmark(ensure_builtin(progress).data, split, protocol)
        bench.name = f"demo/{split}"
        return bench
    if is_tofu_name(spec):
        return load_tofu(str(spec).rstrip("/"), protocol)
    path = Path(spec).expanduser()
    if path.is_dir():
        return load_benchmark(path, protocol=protocol)
    stem = path.name.removesuffix(".json").removesuffix(".jsonl").removesuffix("_perturbed")
    if path.parent.is_dir() and any(path.parent.glob(f"{stem}*.json*")):
        return load_benchmark(path.parent, path.name, protocol)
    raise DataError(f"no such directory: {path} (no such data directory, and no split file {stem}.json in "
                    f"{path.parent}); built-in names: {', '.join(DATA_NAMES + TOFU_NAMES)}")
