"""The store's reviewed samples per mask set (its phrase rules: tests/test_rules_cli.py)."""
from __future__ import annotations

import pytest

from engine.store import NotFound, Store


@pytest.fixture()
def store(tmp_path):
    s = Store(tmp_path / "store.sqlite")
    s.create_mask_set("a", "demo", "demo", "fp", masks={"u1": ("h", [1, 0]), "u2": ("h", [0, 0])})
    return s


def test_reviewed_samples(store):
    assert store.reviewed("a") == set()
    store.set_reviewed("a", "u1")
    store.set_reviewed("a", "u1")
    store.set_reviewed("a", "u2")
    store.set_reviewed("a", "u2", False)
    assert store.reviewed("a") == {"u1"}
    with pytest.raises(NotFound):
        store.reviewed("nope")
