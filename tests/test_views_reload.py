"""Issue 24, item 6: a page reloaded during a run shows the run's model, data and mask set (app._running_top,
EditHandlers.latest); a failed JSON import leaves the open mask set open."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from engine.mask_sets import MaskSets
from engine.store import Store


class Jobs:
    def __init__(self, active: bool, config: dict | None):
        self.snap = SimpleNamespace(active=active, config=config)

    def snapshot(self):
        return self.snap


@pytest.fixture()
def store(tmp_path):
    s = Store(tmp_path / "store.sqlite")
    for name in ("run-set", "newer"):  # "newer" is the most recently updated: what a plain reload opens
        s.create_mask_set(name, "demo", "demo", "fp", source_selector="oracle", masks={"u1": ("h", [0, 1, 0])})
    return s


def test_reload_during_a_run_restores_the_runs_model_and_data():
    import app

    ctx = SimpleNamespace(jobs=Jobs(True, {"model": "demo", "data": "demo/forget01", "mask_set": "run-set"}))
    model, data = app._running_top(ctx)
    assert model["value"] == "demo" and data["value"] == "demo/forget01"
    idle = app._running_top(SimpleNamespace(jobs=Jobs(False, {"model": "demo", "data": "x"})))
    assert all("value" not in u for u in idle)


def test_reload_during_a_run_opens_the_runs_mask_set(store):
    from ui.edit_tab import EditHandlers

    masks = MaskSets(store, None)  # the mask-set service the app's context holds (no model needed here)
    assert EditHandlers(SimpleNamespace(store=store, masks=masks, jobs=Jobs(False, None))).latest() == "newer"
    running = SimpleNamespace(store=store, masks=masks, jobs=Jobs(True, {"mask_set": "run-set"}))
    assert EditHandlers(running).latest() == "run-set"


def test_a_failed_import_keeps_the_open_set(store, tmp_path):
    from ui.edit_tab import EditHandlers

    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    h = EditHandlers(SimpleNamespace(store=store, masks=MaskSets(store, None), jobs=Jobs(False, None)))
    dropdown, status = h.import_file(str(bad), "", "run-set")
    assert dropdown["value"] == "run-set" and "was not imported" in status
    assert {m.name for m in store.list_mask_sets()} == {"run-set", "newer"}  # nothing written
