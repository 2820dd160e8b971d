"""Fixtures of the fault-injection suite: a saved tiny GPT-2 (2 layers, 32 dims, context 128)
over the built-in tokenizer, tiny TOFU folders, and a workbench home (store, runs, cache)
redirected into the test's own folder, so every fault hits files the test owns."""
from __future__ import annotations

import pytest

from faultkit import FORGET, RETAIN, save_model, tiny_gpt2, write_split


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every fault test on one torch thread (tests/conftest.py's `one_thread`)."""


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory, builtin_tokenizer):
    """A well-formed tiny model folder (shared: tests only read it)."""
    return save_model(tmp_path_factory.mktemp("tiny") / "model", tiny_gpt2(builtin_tokenizer), builtin_tokenizer)


@pytest.fixture()
def data_dir(tmp_path):
    """A TOFU folder with forget10 and its retain90."""
    folder = tmp_path / "data"
    write_split(folder, "forget10", FORGET)
    write_split(folder, "retain90", RETAIN)
    return folder


@pytest.fixture()
def forget_only_dir(tmp_path):
    """A TOFU folder with a forget split and no retain split."""
    folder = tmp_path / "forget_only"
    write_split(folder, "forget10", FORGET)
    return folder


@pytest.fixture()
def home(tmp_path, monkeypatch):
    """Store, runs and cache of this test only (the built-in models stay where they are)."""
    from engine import paths

    store = tmp_path / "store.sqlite"
    runs, cache = tmp_path / "runs", tmp_path / "cache"
    runs.mkdir()
    cache.mkdir()
    monkeypatch.setattr(paths, "store_path", lambda: store)
    monkeypatch.setattr(paths, "runs_dir", lambda store=None: runs)
    monkeypatch.setattr(paths, "cache_dir", lambda: cache)
    return tmp_path
