"""Where the `smollm2-tofu` preset's models live and what they are called: names and folders only,
so that name resolution (engine.resolve) knows them without importing the preset's builder
(engine.presets, which trains and evaluates)."""
from __future__ import annotations

from pathlib import Path

from . import paths

PRESET = "smollm2-tofu"
TARGET_NAME, RETAIN_NAME = PRESET, f"{PRESET}-retain"


def preset_dir(name: str = PRESET) -> Path:
    return paths.home() / "presets" / name


def model_paths(name: str = PRESET) -> dict[str, Path]:
    """{short model name: directory} of the preset's pair."""
    d = preset_dir(name)
    return {TARGET_NAME: d / "target", RETAIN_NAME: d / "retain"}


def is_done(name: str = PRESET) -> bool:
    return (preset_dir(name) / "preset.json").is_file()
