"""The store's phrase rules and reviewed samples per mask set: kept, replaced, deleted with the set."""
from __future__ import annotations

import pytest

from engine.store import NotFound, Store


@pytest.fixture()
def store(tmp_path):
    s = Store(tmp_path / "store.sqlite")
    s.create_mask_set("a", "demo", "demo", "fp", masks={"u1": ("h", [1, 0]), "u2": ("h", [0, 0])})
    return s


def test_rules_are_kept_replaced_and_deleted_with_the_set(store, tmp_path):
    assert store.get_rules("a") == []
    rules = [{"phrase": "Paris", "target": True, "whole_words": True, "case_sensitive": False}]
    store.set_rules("a", rules)
    assert Store(tmp_path / "store.sqlite").get_rules("a") == rules  # a second connection (a restart)
    store.set_rules("a", rules + [{"phrase": "Ann", "target": False}])
    assert [r["phrase"] for r in store.get_rules("a")] == ["Paris", "Ann"]
    store.delete_mask_set("a")
    store.create_mask_set("a", "demo", "demo", "fp")
    assert store.get_rules("a") == []


def test_rules_refuse_unknown_sets_and_non_lists(store):
    with pytest.raises(NotFound):
        store.set_rules("nope", [])
    with pytest.raises(NotFound):
        store.get_rules("nope")
    with pytest.raises(ValueError, match="list"):
        store.set_rules("a", {"phrase": "x"})
    assert store.get_rules("a") == []


def test_reviewed_samples(store):
    assert store.reviewed("a") == set()
    store.set_reviewed("a", "u1")
    store.set_reviewed("a", "u1")
    store.set_reviewed("a", "u2")
    store.set_reviewed("a", "u2", False)
    assert store.reviewed("a") == {"u1"}
    with pytest.raises(NotFound):
        store.reviewed("nope")
