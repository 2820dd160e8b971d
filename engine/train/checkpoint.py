"""Checkpoints (safetensors; LoRA as adapters, merged by `python -m engine export --merge`; written atomically) into the folder the run owns, and
what the run's token weights learned.

A run's folder `runs_dir/<uuid>` carries an `.owner` file naming that uuid (written when the run
claims it); nothing is written into a folder whose `.owner` names another run or that has none.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..prompts import format_of, save_format
from .state import State

OWNER_FILE = ".owner"


class FolderNotOwned(RuntimeError):
    """A run tried to write into a folder another run (or nobody known) owns."""


def claim_run_folder(directory: Path, owner: str) -> Path:
    """Create `directory` for run `owner` (its uuid) with an `.owner` file, or accept it when its
    `.owner` already names `owner`; FolderNotOwned for any other existing folder."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True)
    except FileExistsError:
        check_owner(directory, owner)
        return directory
    (directory / OWNER_FILE).write_text(json.dumps({"run": owner}), encoding="utf-8")
    return directory


def check_owner(directory: Path, owner: str) -> None:
    """FolderNotOwned unless `directory/.owner` names run `owner`."""
    marker = Path(directory) / OWNER_FILE
    try:
        found = json.loads(marker.read_text(encoding="utf-8")).get("run")
    except (OSError, ValueError, AttributeError):
        found = None
    if found != owner:
        raise FolderNotOwned(f"{directory} is not this run's folder (its {OWNER_FILE} names "
                             f"{found or 'no run'}, this run is {owner}); nothing was written there")


def _swap_into_place(tmp: Path, directory: Path) -> None:
    """Replace `directory` by the complete `tmp`: the old one is renamed aside first and removed
    only once the new one is in place, so a crash leaves one whole checkpoint (old or new)."""
    old = directory.with_name(directory.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if directory.exists():
        directory.rename(old)
    tmp.rename(directory)
    shutil.rmtree(old, ignore_errors=True)


def save_checkpoint(state: State, directory: Path, owner: str | None = None) -> Path:
    """Write the model (with LoRA: the adapter only; adapter_config.json names the base model) + tokenizer
    + the prompt format it was trained with (`prompt_format.json`, engine.prompts) (+ what learned token weights
    learned, e.g. atwu_scorer.safetensors) as safetensors under `directory`, via a temporary
    sibling renamed into place. owner: the run's uuid; the parent folder must be that run's
    (`check_owner`) before anything is written. A failure (e.g. a full disk) removes the
    temporary folder and leaves the previous checkpoint as it was."""
    directory = Path(directory)
    if owner is not None:
        check_owner(directory.parent, owner)
    model = state.base_model()
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        model.save_pretrained(tmp, safe_serialization=True)  # with LoRA: the adapter (merge on export)
        state.tokenizer.save_pretrained(tmp)
        save_format(tmp, format_of(state.tokenizer))  # beside the weights or the adapter: every later load reads it
        state.weights.save(tmp)
        _swap_into_place(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def save_run_scorer(state: State, run_id: int | None) -> str | None:
    """Save what the run's learned token weights learned for later selection (ATWU: its scorer,
    for the `atwu` selector); None when the weights were fixed."""
    return state.weights.keep({"model": state.config.model, "data": state.config.data, "run_id": run_id,
                               "steps": state.step})
