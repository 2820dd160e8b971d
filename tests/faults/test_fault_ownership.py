"""Case 1: a run's checkpoint folder is its own (a uuid recorded in the store, not the row id),
so deleting the store and starting again never touches the old runs' checkpoints, and nothing
is written into a folder another run owns."""
from __future__ import annotations

import pytest

from faultkit import cli, snapshot

UNLEARN = ["unlearn", "--loss", "ga", "--epochs", "1", "--no-eval", "--device", "cpu", "--batch-size", "4"]


def test_new_run_1_after_deleting_the_store_leaves_old_run_1_alone(home, capsys, model_dir, data_dir):
    from engine.store import Store

    argv = UNLEARN + ["--model", model_dir, "--data", data_dir]
    code, out, err = cli(argv, capsys)
    assert code == 0, err
    old = Store(home / "store.sqlite").get_run(1)
    old_folder = home / "runs" / old.folder
    assert old.checkpoints["final"].path == str(old_folder / "final")
    before = snapshot(home / "runs")
    for f in home.glob("store.sqlite*"):
        f.unlink()  # the natural reaction to a damaged store
    code, out, err = cli(argv + ["--lr", "1e-3"], capsys)
    assert code == 0 and "run 1: finished" in out, err
    new = Store(home / "store.sqlite").get_run(1)
    assert new.folder != old.folder
    after = snapshot(home / "runs")
    assert {k: v for k, v in after.items() if k.startswith(old.folder + "/")} == before
    assert any(k.startswith(new.folder + "/final/") for k in after)


def test_a_folder_owned_by_another_run_is_refused(tmp_path):
    from engine.train.checkpoint import FolderNotOwned, claim_run_folder

    mine = claim_run_folder(tmp_path / "abc", "abc")
    (mine / "best").mkdir()
    (mine / "best" / "model.safetensors").write_bytes(b"weights of run abc")
    before = snapshot(tmp_path)
    assert claim_run_folder(tmp_path / "abc", "abc") == mine  # its owner may come back to it
    with pytest.raises(FolderNotOwned, match="names abc, this run is xyz"):
        claim_run_folder(tmp_path / "abc", "xyz")
    stranger = tmp_path / "copied"
    stranger.mkdir()
    with pytest.raises(FolderNotOwned, match="names no run"):
        claim_run_folder(stranger, "copied")
    assert snapshot(tmp_path) == before


def test_save_checkpoint_refuses_before_writing_into_a_folder_it_does_not_own(tmp_path):
    from engine.train.checkpoint import FolderNotOwned, claim_run_folder, save_checkpoint

    folder = claim_run_folder(tmp_path / "abc", "abc")
    before = snapshot(tmp_path)
    with pytest.raises(FolderNotOwned):
        save_checkpoint(object(), folder / "best", owner="xyz")  # refused before the state is touched
    assert snapshot(tmp_path) == before and sorted(p.name for p in folder.iterdir()) == [".owner"]
