"""engine.store: mask sets, runs, per-epoch metrics, and a store that survives a killed writer."""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from engine.fingerprint import text_hash
from engine.store import Checkpoint, EpochMetrics, EpochRecord, NotFound, SampleMask, Store

REPO = Path(__file__).resolve().parents[1]
MASKS = {"s1": ("h1", [0, 1, 1, 0]), "s2": ("h2", [1, 0, 0])}


@pytest.fixture()
def store(tmp_path):
    return Store(tmp_path / "store.sqlite")


def _make(store, name="set-a", masks=MASKS):
    return store.create_mask_set(name, "demo", "demo/forget10", "tok-fp", source_selector="wga", masks=masks)


def _rows(path, sql):
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


# ---------------------------------------------------------------- schema and connection settings

def test_schema_version_and_wal(store, tmp_path):
    assert store.schema_version() == 5
    assert _rows(tmp_path / "store.sqlite", "PRAGMA journal_mode")[0][0] == "wal"
    assert _rows(tmp_path / "store.sqlite", "SELECT version FROM schema_version") == [(5,)]
    Store(tmp_path / "store.sqlite")  # reopening does not add a second version row
    assert _rows(tmp_path / "store.sqlite", "SELECT version FROM schema_version") == [(5,)]


def test_text_hash_is_stable_and_text_sensitive():
    assert text_hash("q", "a") == text_hash("q", "a")
    assert len(text_hash("q", "a")) == 16
    assert text_hash("q", "a") != text_hash("q", "a.")


# ---------------------------------------------------------------- mask sets

def test_create_get_round_trip(store):
    set_id = _make(store)
    assert isinstance(set_id, int)
    ms = store.get_mask_set("set-a")
    assert (ms.name, ms.model, ms.data, ms.tokenizer_fingerprint, ms.source_selector) == \
        ("set-a", "demo", "demo/forget10", "tok-fp", "wga")
    assert ms.masks == {"s1": SampleMask(text_hash="h1", mask=[0, 1, 1, 0], edited=False),
                        "s2": SampleMask(text_hash="h2", mask=[1, 0, 0], edited=False)}
    assert ms.created and ms.updated


def test_list_mask_sets_counts(store):
    _make(store, "b")
    _make(store, "a", masks={})
    store.save_sample_mask("b", "s1", "h1", [1, 1, 1, 1])
    listed = store.list_mask_sets()
    assert [m.name for m in listed] == ["a", "b"]
    assert (listed[0].n_samples, listed[0].n_edited) == (0, 0)
    assert (listed[1].n_samples, listed[1].n_edited) == (2, 1)


def test_save_sample_mask_upserts(store):
    _make(store)
    store.save_sample_mask("set-a", "s1", "h1", [True, False, False, False])
    store.save_sample_mask("set-a", "s3", "h3", [1])
    masks = store.get_mask_set("set-a").masks
    assert masks["s1"] == SampleMask(text_hash="h1", mask=[1, 0, 0, 0], edited=True)
    assert masks["s3"] == SampleMask(text_hash="h3", mask=[1], edited=True)
    assert masks["s2"].edited is False
    store.save_sample_mask("set-a", "s1", "h1", [0, 0, 0, 0], edited=False)
    assert store.get_mask_set("set-a").masks["s1"] == SampleMask(text_hash="h1", mask=[0, 0, 0, 0], edited=False)
    assert len(store.get_mask_set("set-a").masks) == 3


@pytest.mark.parametrize("mask", [[0, 2], [0, "1"], "0101", [0.5]])
def test_bad_masks_rejected(store, mask):
    _make(store)
    with pytest.raises(ValueError, match="mask"):
        store.save_sample_mask("set-a", "s1", "h1", mask)
    with pytest.raises(ValueError, match="mask"):
        store.create_mask_set("other", "m", "d", "t", masks={"s1": ("h", mask)})
    assert store.get_mask_set("set-a").masks["s1"].mask == [0, 1, 1, 0]
    assert [m.name for m in store.list_mask_sets()] == ["set-a"]


def test_rename_duplicate_delete(store):
    _make(store)
    store.save_sample_mask("set-a", "s1", "h1", [1, 1, 1, 1])
    store.rename_mask_set("set-a", "set-b")
    with pytest.raises(KeyError, match="no mask set named 'set-a'"):
        store.get_mask_set("set-a")
    new_id = store.duplicate_mask_set("set-b", "set-c")
    b, c = store.get_mask_set("set-b"), store.get_mask_set("set-c")
    assert c.id == new_id != b.id
    assert c.masks == b.masks and c.masks["s1"].edited is True
    store.save_sample_mask("set-c", "s2", "h2", [0, 0, 0])  # the copy is independent
    assert store.get_mask_set("set-b").masks["s2"].mask == [1, 0, 0]
    store.delete_mask_set("set-b")
    assert [m.name for m in store.list_mask_sets()] == ["set-c"]
    assert _rows(store.path, f"SELECT COUNT(*) FROM sample_masks WHERE mask_set_id = {b.id}") == [(0,)]


def test_unknown_and_duplicate_names(store):
    _make(store)
    _make(store, "other")
    for call in (lambda: store.get_mask_set("nope"), lambda: store.delete_mask_set("nope"),
                 lambda: store.rename_mask_set("nope", "x"), lambda: store.duplicate_mask_set("nope", "x"),
                 lambda: store.save_sample_mask("nope", "s1", "h", [1]), lambda: store.mask_set_hash("nope"),
                 lambda: store.export_mask_set("nope")):
        with pytest.raises(KeyError) as info:
            call()
        assert str(info.value) == "no mask set named 'nope'"
        assert isinstance(info.value, (NotFound, ValueError))
    with pytest.raises(ValueError, match="'set-a' already exists"):
        _make(store)
    with pytest.raises(ValueError, match="'other' already exists"):
        store.rename_mask_set("set-a", "other")
    with pytest.raises(ValueError, match="'other' already exists"):
        store.duplicate_mask_set("set-a", "other")
    with pytest.raises(ValueError, match="non-empty"):
        store.create_mask_set("  ", "m", "d", "t")
    assert sorted(m.name for m in store.list_mask_sets()) == ["other", "set-a"]


def test_hash_stable_and_changes_on_edit(store, tmp_path):
    _make(store)
    h = store.mask_set_hash("set-a")
    assert len(h) == 64 and h == store.mask_set_hash("set-a")
    assert Store(tmp_path / "store.sqlite").mask_set_hash("set-a") == h
    # same masks in a different insertion order, another name: same hash
    _make(store, "same", masks={"s2": ("h2", [1, 0, 0]), "s1": ("h1", [0, 1, 1, 0])})
    assert store.mask_set_hash("same") == h
    store.rename_mask_set("same", "renamed")
    assert store.mask_set_hash("renamed") == h
    store.save_sample_mask("set-a", "s1", "h1", [0, 1, 1, 1])
    h2 = store.mask_set_hash("set-a")
    assert h2 != h
    store.save_sample_mask("set-a", "s1", "h1", [0, 1, 1, 0])  # edited flag alone does not change it
    assert store.mask_set_hash("set-a") == h
    store.save_sample_mask("set-a", "s1", "OTHER", [0, 1, 1, 0])  # nor is the text hash ignored
    assert store.mask_set_hash("set-a") != h


def test_export_import_round_trip(store):
    _make(store)
    store.save_sample_mask("set-a", "s1", "h1", [1, 1, 0, 0])
    payload = store.export_mask_set("set-a")
    payload = json.loads(json.dumps(payload))  # really JSON-serialisable
    assert store.import_mask_set(payload, name="copy") == "copy"
    a, b = store.get_mask_set("set-a"), store.get_mask_set("copy")
    for key in ("model", "data", "tokenizer_fingerprint", "source_selector", "masks"):
        assert getattr(a, key) == getattr(b, key), key
    assert store.mask_set_hash("copy") == store.mask_set_hash("set-a") == payload["hash"]
    other = Store(store.path.parent / "other.sqlite")
    assert other.import_mask_set(payload) == "set-a"
    assert other.get_mask_set("set-a").masks == a.masks


def _payload(store):
    _make(store)
    return json.loads(json.dumps(store.export_mask_set("set-a")))


@pytest.mark.parametrize("mutate, message", [
    (lambda p: p.update(format="something-else"), "format"),
    (lambda p: p.update(version=99), "version"),
    (lambda p: p.pop("model"), "'model'"),
    (lambda p: p.update(tokenizer_fingerprint=3), "'tokenizer_fingerprint'"),
    (lambda p: p.update(masks=[1, 0]), "'masks'"),
    (lambda p: p["masks"].update(s9="x"), r"masks\['s9'\] must be an object"),
    (lambda p: p["masks"]["s2"].update(mask=[1, 0, 2]), r"masks\['s2'\]: mask\[2\] must be 0 or 1"),
    (lambda p: p["masks"]["s2"].pop("text_hash"), "'text_hash'"),
    (lambda p: p["masks"]["s2"].update(edited="yes"), "'edited'"),
    (lambda p: p["masks"]["s1"].update(mask=[1, 1, 1, 1]), "hash"),
    (lambda p: None, "already exists"),  # name taken
])
def test_invalid_import_writes_nothing(store, mutate, message):
    payload = _payload(store)
    mutate(payload)
    before = (store.list_mask_sets(), _rows(store.path, "SELECT * FROM sample_masks ORDER BY 1, 2"))
    with pytest.raises(ValueError, match=message):
        store.import_mask_set(payload)
    with pytest.raises(ValueError):
        store.import_mask_set(payload, name="fresh") if message != "already exists" else store.import_mask_set(
            payload, name="set-a")
    assert (store.list_mask_sets(), _rows(store.path, "SELECT * FROM sample_masks ORDER BY 1, 2")) == before


def test_import_rejects_non_object(store):
    with pytest.raises(ValueError, match="expected a JSON object, got list"):
        store.import_mask_set([1, 2])


def test_persistence_across_reopen(tmp_path):
    path = tmp_path / "sub" / "store.sqlite"
    s = Store(path)
    _make(s)
    s.save_sample_mask("set-a", "s2", "h2", [0, 0, 1])
    run = s.create_run({"loss": "tpo"}, s.mask_set_hash("set-a"))
    s.add_epoch_metrics(run, 1, 5, {"forget_quality": 0.5})
    del s
    t = Store(path)
    assert t.get_mask_set("set-a").masks["s2"] == SampleMask(text_hash="h2", mask=[0, 0, 1], edited=True)
    r = t.get_run(run)
    assert r.config.loss == "tpo" and r.mask_set_hash == t.mask_set_hash("set-a")
    assert r.metrics[0].metrics.values == {"forget_quality": 0.5}


# ---------------------------------------------------------------- runs

def test_run_lifecycle(store):
    rid = store.create_run({"loss": "ga", "lr": 1e-5, "epochs": 2})
    r = store.get_run(rid)
    assert r.status == "running" and r.finished is None and r.pid == os.getpid() and r.hostname
    store.add_epoch_metrics(rid, 2, 10, {"forget_quality": 0.9, "nested": {"a": 1}})
    store.add_epoch_metrics(rid, 0, 0, {"forget_quality": 0.1, "model_utility": float("nan")})
    store.add_epoch_metrics(rid, 1, 5, {"forget_quality": 0.5, "components": [0.1, 0.2]})
    with pytest.raises(ValueError, match="already has metrics for epoch 1"):
        store.add_epoch_metrics(rid, 1, 6, {})
    store.set_checkpoint(rid, "best", "/ck/e1", 1)
    store.set_checkpoint(rid, "best", "/ck/e2", 2)  # replaced
    store.set_checkpoint(rid, "final", "/ck/final", 2)
    with pytest.raises(ValueError, match="kind"):
        store.set_checkpoint(rid, "latest", "/x", 2)
    store.finish_run(rid, "finished")
    r = store.get_run(rid)
    assert r.status == "finished" and r.finished and r.error is None
    assert [m.epoch for m in r.metrics] == [0, 1, 2]
    assert [m.step for m in r.metrics] == [0, 5, 10]
    assert r.metrics[2].metrics.values["nested"] == {"a": 1}
    assert r.checkpoints == {"best": Checkpoint(path="/ck/e2", epoch=2), "final": Checkpoint(path="/ck/final", epoch=2)}
    rows = store.run_metrics_rows(rid)
    assert rows[1] == {"run_id": rid, "epoch": 1, "step": 5, "forget_quality": 0.5, "components": "[0.1, 0.2]"}
    assert rows[2] == {"run_id": rid, "epoch": 2, "step": 10, "forget_quality": 0.9, "nested.a": 1}
    assert rows[0]["model_utility"] != rows[0]["model_utility"]  # NaN survives the round trip


def test_metrics_accept_numpy_scalars(store):
    np = pytest.importorskip("numpy")
    rid = store.create_run({"seed": np.int64(3)})
    store.add_epoch_metrics(rid, 1, 1, {"fq": np.float32(0.25), "n": np.int64(7)})
    r = store.get_run(rid)
    assert r.config.seed == 3 and r.metrics[0].metrics.values == {"fq": 0.25, "n": 7}


def test_finish_statuses_and_errors(store):
    a, b = store.create_run({}), store.create_run({})
    store.finish_run(a, "failed", "FloatingPointError: nan")
    store.finish_run(b, "cancelled")
    with pytest.raises(ValueError, match="finishes as one of"):
        store.finish_run(b, "done")
    assert store.get_run(a).error == "FloatingPointError: nan"
    assert [(r.id, r.status) for r in store.list_runs()] == [(a, "failed"), (b, "cancelled")]
    for call in (lambda: store.get_run(999), lambda: store.finish_run(999, "finished"),
                 lambda: store.add_epoch_metrics(999, 1, 1, {}), lambda: store.set_checkpoint(999, "best", "p", 1),
                 lambda: store.delete_run(999), lambda: store.run_metrics_rows(999)):
        with pytest.raises(KeyError, match="no run with id 999"):
            call()


def test_list_and_delete_runs(store):
    a = store.create_run({"n": 1})
    b = store.create_run({"n": 2})
    store.add_epoch_metrics(a, 1, 1, {"x": 1})
    store.add_epoch_metrics(b, 1, 1, {"x": 2})
    store.set_checkpoint(a, "final", "/a", 1)
    runs = store.list_runs()
    assert [r.config.extra["n"] for r in runs] == [1, 2]
    assert runs[0].metrics[0].metrics.values == {"x": 1} and runs[1].metrics[0].metrics.values == {"x": 2}
    assert runs[0].checkpoints == {"final": Checkpoint(path="/a", epoch=1)} and runs[1].checkpoints == {}
    store.delete_run(a)
    assert [r.id for r in store.list_runs()] == [b]
    assert _rows(store.path, f"SELECT COUNT(*) FROM epoch_metrics WHERE run_id = {a}") == [(0,)]
    assert _rows(store.path, f"SELECT COUNT(*) FROM checkpoints WHERE run_id = {a}") == [(0,)]


def test_mark_stale_leaves_live_and_foreign_runs(store):
    live = store.create_run({})
    done = store.create_run({})
    store.finish_run(done, "finished")
    foreign = store.create_run({})
    conn = sqlite3.connect(store.path)
    with conn:
        conn.execute("UPDATE runs SET hostname = 'elsewhere', pid = 99999999 WHERE id = ?", (foreign,))  # a dead pid
    conn.close()
    assert store.mark_stale_runs() == []
    assert [store.get_run(i).status for i in (live, done, foreign)] == ["running", "finished", "running"]


def test_threads_share_one_store(store):
    _make(store)
    rid = store.create_run({})
    errors = []

    def work(k):
        try:
            for j in range(10):
                store.save_sample_mask("set-a", f"t{k}", "h", [j % 2])
                store.add_epoch_metrics(rid, k * 100 + j, j, {"k": k})
                store.get_mask_set("set-a")
        except Exception as err:  # surfaced below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(store.get_run(rid).metrics) == 40
    assert {f"t{k}" for k in range(4)} <= set(store.get_mask_set("set-a").masks)


# ---------------------------------------------------------------- a writer that dies

CHILD = r"""
import os, sys, time
sys.path.insert(0, {repo!r})
from engine.store import Store
s = Store({path!r})
run = s.create_run({{"loss": "ga"}})
s.add_epoch_metrics(run, 1, 10, {{"forget_quality": 0.25}})
print(run, flush=True)
{tail}
"""

# keeps writing committed epochs, each followed by a transaction that is never committed, until killed
KILL_TAIL = r"""
import sqlite3
epoch = 2
while True:
    s.add_epoch_metrics(run, epoch, epoch * 10, {"forget_quality": 0.1})
    conn = sqlite3.connect(s.path, timeout=30)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO epoch_metrics VALUES (?, ?, 0, '{}', 'x')", (run, -epoch))
    conn.execute("UPDATE runs SET status = 'finished' WHERE id = ?", (run,))
    conn.rollback()
    conn.close()
    epoch += 1
"""

# dies inside an open transaction holding an uncommitted epoch
EXIT_TAIL = r"""
import sqlite3
conn = sqlite3.connect(s.path, timeout=30)
conn.execute("BEGIN IMMEDIATE")
conn.execute("INSERT INTO epoch_metrics VALUES (?, 2, 20, '{\"forget_quality\": 0.9}', 'x')", (run,))
conn.execute("UPDATE runs SET status = 'finished' WHERE id = ?", (run,))
os._exit(1)
"""


def _check_after_crash(path, run):
    s = Store(path)  # reopens a store whose writer died
    assert _rows(path, "PRAGMA integrity_check") == [("ok",)]
    r = s.get_run(run)
    assert r.status == "running"
    assert r.metrics[0] == EpochRecord(epoch=1, step=10, metrics=EpochMetrics(values={"forget_quality": 0.25}),
                                       recorded=r.metrics[0].recorded)
    assert all(m.epoch > 0 for m in r.metrics)  # the uncommitted rows are not there
    assert s.mark_stale_runs() == [run]
    r = s.get_run(run)
    assert r.status == "interrupted" and r.finished and r.error
    assert s.mark_stale_runs() == []
    return r


def test_crash_by_exit_inside_transaction(tmp_path):
    path = str(tmp_path / "store.sqlite")
    proc = subprocess.run([sys.executable, "-c", CHILD.format(repo=str(REPO), path=path, tail=EXIT_TAIL)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    r = _check_after_crash(path, int(proc.stdout.split()[0]))
    assert [m.epoch for m in r.metrics] == [1]


def test_crash_by_sigkill_mid_write_loop(tmp_path):
    path = str(tmp_path / "store.sqlite")
    proc = subprocess.Popen([sys.executable, "-c", CHILD.format(repo=str(REPO), path=path, tail=KILL_TAIL)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        run = int(proc.stdout.readline().split()[0])
        time.sleep(0.3)  # let it write for a while
        assert proc.poll() is None, proc.stderr.read()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    r = _check_after_crash(path, run)
    epochs = [m.epoch for m in r.metrics]
    assert epochs == list(range(1, len(epochs) + 1)) and len(epochs) >= 2


def test_runs_dir_sits_beside_its_store(tmp_path, monkeypatch):
    """Two stores never share run folders: run 1 of one store cannot overwrite run 1 of another."""
    from engine import paths

    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "home"))
    assert paths.runs_dir() == tmp_path / "home" / "runs"
    assert paths.runs_dir(paths.store_path()) == tmp_path / "home" / "runs"
    other = paths.runs_dir(tmp_path / "elsewhere" / "mine.sqlite")
    assert other == tmp_path / "elsewhere" / "mine-runs" and other.is_dir()


# ---------------------------------------------------------------- typed records and the mask-set check

def _labels(tokenizer, samples):
    from engine.tokens import encode_samples

    return encode_samples(tokenizer, samples).label_mask.sum(dim=1).tolist()


def test_masks_for_checks_text_and_tokenizer_once(store, builtin_tokenizer):
    from engine.data import Sample

    samples = [Sample("Who wrote it?", "Ada wrote it.", uid="q1"), Sample("Where?", "In Porto, by the sea.", uid="q2"),
               Sample("When?", "Never.", uid="q3")]
    n1, n2, n3 = _labels(builtin_tokenizer, samples)
    m1 = [0, 1] + [0] * (n1 - 2)
    from engine.fingerprint import tokenizer_fingerprint

    store.create_mask_set("tok", "demo", "demo", tokenizer_fingerprint(builtin_tokenizer), masks={
        "q1": (text_hash("Who wrote it?", "Ada wrote it."), m1),
        "q2": (text_hash("Where?", "In Porto, by the sea."), [1] * n2)})
    ms = store.get_mask_set("tok")
    # as stored (the EOS too), zeros for a sample the set lacks
    assert ms.masks_for(samples, builtin_tokenizer) == [m1, [1] * n2, [0] * n3]
    assert ms.masks_for(samples, builtin_tokenizer, chunk_size=1) == [m1, [1] * n2, [0] * n3]
    assert ms.covered(samples) == 2 and ms.marks_tokens and ms.n_edited == 0

    store.save_sample_mask("tok", "q1", text_hash("Who wrote it?", "Ada wrote it."), m1 + [0])  # another tokenizer
    with pytest.raises(ValueError, match=rf"'tok' has {n1 + 1} label positions for sample q1 but this tokenizer "
                                         rf"gives {n1}: it was made for another tokenizer"):
        store.get_mask_set("tok").masks_for(samples, builtin_tokenizer)
    store.save_sample_mask("tok", "q1", "some-other-text", m1)
    with pytest.raises(ValueError, match=r"'tok' was made for a different text of sample q1 \('Who wrote it\?'…\)"):
        store.get_mask_set("tok").masks_for(samples, builtin_tokenizer)
    assert store.get_mask_set("tok").n_edited == 1


def test_mask_for_takes_anything_with_uid_question_answer(store):
    from types import SimpleNamespace

    _make(store, masks={"s1": (text_hash("q", "a"), [0, 1, 0])})
    ms = store.get_mask_set("set-a")
    assert ms.mask_for(SimpleNamespace(uid="s1", question="q", answer="a"), 3) == [0, 1, 0]
    assert ms.mask_for(SimpleNamespace(uid="s9", question="q", answer="a"), 2) == [0, 0]
    with pytest.raises(ValueError, match="another tokenizer"):
        ms.mask_for(SimpleNamespace(uid="s1", question="q", answer="a"), 4)
    with pytest.raises(ValueError, match="different text of sample s1"):
        ms.mask_for(SimpleNamespace(uid="s1", question="q", answer="b"), 3)
    store.create_mask_set("zeros", "m", "d", "t", masks={"s1": ("h", [0, 0])})
    empty = store.get_mask_set("zeros")
    assert not empty.marks_tokens and empty.covered([SimpleNamespace(uid="s2")]) == 0


def test_run_record_to_dict_is_the_json_shape(store):
    rid = store.create_run({"loss": "ga"})
    store.add_epoch_metrics(rid, 1, 4, {"forget_quality": 0.5})
    store.set_checkpoint(rid, "final", "/ck", 1)
    d = store.get_run(rid).to_dict()
    assert list(d) == ["id", "config", "mask_set_hash", "status", "started", "finished", "error", "pid", "hostname", "folder",
                       "prompt_format", "world_size", "phase_seconds", "metrics", "checkpoints"]
    assert d["metrics"] == [{"epoch": 1, "step": 4, "metrics": {"forget_quality": 0.5},
                             "recorded": d["metrics"][0]["recorded"]}]
    assert d["checkpoints"] == {"final": {"path": "/ck", "epoch": 1}}
    json.dumps(d)
