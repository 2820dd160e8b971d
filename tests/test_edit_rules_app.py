"""The Edit tab's set-wide tools and Compare's leak check through gradio_client, on the built-in
model and demo/forget01 (10 samples, every answer names the author "Neindshoapind Hesla"):
phrase-rule precedence, the review queue's order and counter, span / word-list import and export,
live accuracy, and the leak rate of a checkpoint against the target model."""
from __future__ import annotations

import json
import math
import re

import pytest

DATA = "demo/forget01"
NAME = "Neindshoapind Hesla"


@pytest.fixture(scope="module")
def forget(ctx):
    """(samples, label offsets) of demo/forget01 under the built-in tokenizer."""
    from engine.masks import label_offsets

    samples = ctx.explore.samples(DATA, "forget")
    return samples, label_offsets(ctx.explore.model("demo")[1], samples)


def call(client, api, *args):
    return client.predict(*args, api_name=f"/{api}")


def masks_of(ctx, name, samples):
    ms = ctx.store.get_mask_set(name)
    return [ms.masks[s.uid].mask for s in samples]


def covered(answer, offsets, phrase):
    """Label positions whose token overlaps a case-insensitive occurrence of `phrase` (by hand)."""
    hits = [(m.start(), m.end()) for m in re.finditer(re.escape(phrase), answer, re.IGNORECASE)]
    return {j for j, (a, b) in enumerate(offsets) if a >= 0 and any(a < e and b > s for s, e in hits)}


# ---------------------------------------------------------------- phrase rules

def test_phrase_rules_precedence_hand_edits_and_removal(client, ctx, forget):
    samples, offsets = forget
    call(client, "mask_set_create", "rules", "oracle", "demo", DATA)
    oracle = masks_of(ctx, "rules", samples)
    name_tokens = [covered(s.answer, o, NAME) for s, o in zip(samples, offsets)]
    hesla = [covered(s.answer, o, "Hesla") for s, o in zip(samples, offsets)]
    assert all(name_tokens) and all(h < n for h, n in zip(hesla, name_tokens))

    # 1. a target rule, typed with other case and spacing: the name is a target in all ten answers
    *_, status = call(client, "rules_add_target", "rules", "neindshoapind   HESLA", False)
    assert "added" in status
    after = masks_of(ctx, "rules", samples)
    for i, m in enumerate(after):
        assert {j for j, v in enumerate(m) if v} == {j for j, v in enumerate(oracle[i]) if v} | name_tokens[i]

    # 2. a hand edit on a name token of sample 3 (turned off) beats the rule
    j0 = min(name_tokens[3] - hesla[3])
    assert call(client, "edit_apply", "rules", 3, "toggle", j0, j0, None)["mask"][j0] == 0

    # 3. a later "never" rule beats the earlier target rule on the tokens both cover
    call(client, "rules_add_never", "rules", "Hesla", True)
    m = masks_of(ctx, "rules", samples)
    assert all(m[i][j] == 0 for i in range(10) for j in hesla[i])
    assert all(m[i][j] == 1 for i in range(10) for j in name_tokens[i] - hesla[i] if (i, j) != (3, j0))
    assert m[3][j0] == 0
    listed = call(client, "rules_list", "rules")
    assert [r["phrase"] for r in listed["rules"]] == ["neindshoapind   HESLA", "Hesla"]
    rows = listed["table"]
    assert rows[0]["tokens matched"] == sum(map(len, name_tokens))
    assert rows[1]["tokens matched"] == sum(map(len, hesla)) and rows[1]["samples"] == 10
    # the first rule decides its tokens that neither the later rule nor the hand edit take
    assert rows[0]["tokens decided"] == sum(map(len, name_tokens)) - sum(map(len, hesla)) - 1

    # 4. removing the later rule removes its effect; the hand edit stays
    call(client, "rules_remove", "rules", 1)
    m = masks_of(ctx, "rules", samples)
    for i in range(10):
        want = {j for j, v in enumerate(oracle[i]) if v} | name_tokens[i]
        assert {j for j, v in enumerate(m[i]) if v} == (want - {j0} if i == 3 else want)

    # 5. removing the last rule gives back the selector's masks, plus the hand edit
    call(client, "rules_remove", "rules", 0)
    m = masks_of(ctx, "rules", samples)
    assert [x for i, x in enumerate(m) if i != 3] == [x for i, x in enumerate(oracle) if i != 3]
    assert ctx.store.get_rules("rules") is None


def test_rules_survive_a_new_server_and_bad_rules_change_nothing(client, ctx, app_env, forget):
    from gradio_client import Client

    import app
    from benchmarks.harness import serve

    samples, _ = forget
    call(client, "mask_set_create", "kept", "oracle", "demo", DATA)
    call(client, "rules_add_target", "kept", "Riga", True)
    before = masks_of(ctx, "kept", samples)
    *_, status = call(client, "rules_add_target", "kept", "   ", False)
    assert "not added" in status and "visible character" in status
    *_, status = call(client, "rules_remove", "kept", 5)
    assert "no rule #6" in status.replace("\\", "")  # statuses escape Markdown
    assert masks_of(ctx, "kept", samples) == before and len(json.loads(ctx.store.get_rules("kept"))) == 1
    with serve(app.build_demo(app_env[2] / "store.sqlite")) as url:
        listed = Client(url, verbose=False).predict("kept", api_name="/rules_list")
    assert [r["phrase"] for r in listed["rules"]] == ["Riga"] and listed["table"][0]["samples"] == 2


# ---------------------------------------------------------------- review queue

def _entropy(p: float) -> float:
    return 0.0 if p in (0.0, 1.0) else -p * math.log2(p) - (1 - p) * math.log2(1 - p)


def test_review_queue_order_and_accept_and_next(client, ctx, forget):
    from engine.masks.votes import selector_label_masks
    from ui.review_queue import VOTERS

    samples, _ = forget
    call(client, "mask_set_create", "review", "all", "demo", DATA)
    q = call(client, "review_queue", "review")
    assert "atwu" in q["unavailable"] and "oracle" not in VOTERS
    model, tok = ctx.explore.model("demo")
    votes, _ = selector_label_masks(model, tok, samples, [v for v in VOTERS if v not in q["unavailable"]])
    current = masks_of(ctx, "review", samples)
    dis = [sum(_entropy(sum(votes[v][i][t] for v in votes) / len(votes)) for t in range(len(current[i])))
           for i in range(10)]
    want = sorted(range(10), key=lambda i: (-round(dis[i], 9), sum(current[i]), i))
    assert [it["index"] for it in q["queue"]] == want
    assert [round(it["disagreement"], 6) for it in q["queue"]] == [round(dis[i], 6) for i in want]

    index, counter, _ = call(client, "review_next", "review", 0)
    assert index == want[0] and 'data-reviewed="0" data-total="10"' in counter
    index, counter, _ = call(client, "review_accept", "review", index)
    assert index == want[1] and 'data-reviewed="1"' in counter
    call(client, "review_accept", "review", want[5])  # accepting out of order skips it later
    index, counter, _ = call(client, "review_accept", "review", index)
    assert index == want[2] and 'data-reviewed="3"' in counter
    assert ctx.store.reviewed("review") == {samples[i].uid for i in (want[0], want[1], want[5])}


# ---------------------------------------------------------------- interop and live accuracy

def test_span_and_word_list_round_trip(client, ctx, forget, tmp_path):
    from gradio_client import handle_file

    samples, _ = forget
    call(client, "mask_set_create", "io", "oracle", "demo", DATA)
    call(client, "edit_apply", "io", 2, "brush", 0, 2, None)
    path, status = call(client, "masks_export", "io", "character spans")
    rows = [json.loads(line) for line in open(path, encoding="utf-8")]
    assert len(rows) == 10 and rows[0]["spans"] == [{"start": 15, "end": 34}]  # the oracle's name span
    _, status = call(client, "masks_import", handle_file(path), "character spans", "io-back", True, False, "demo", DATA)
    assert "imported" in status
    assert masks_of(ctx, "io-back", samples) == masks_of(ctx, "io", samples)

    wpath, _ = call(client, "masks_export", "io", "word lists (target_words)")
    words = [json.loads(line)["target_words"] for line in open(wpath, encoding="utf-8")]
    assert words[0] == ["Neindshoapind", "Hesla"] and words[1] == ["Riga", "Latvia"]
    call(client, "masks_import", handle_file(wpath), "word lists (target_words)", "io-words", True, False, "demo", DATA)
    wpath2, _ = call(client, "masks_export", "io-words", "word lists (target_words)")
    assert open(wpath2, encoding="utf-8").read() == open(wpath, encoding="utf-8").read()

    # a bad file names its line and field, and nothing is written
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(rows[0]) + "\n" + json.dumps({"question": rows[1]["question"],
                                                             "answer": rows[1]["answer"]}) + "\n")
    n_sets = len(ctx.store.list_mask_sets())
    _, status = call(client, "masks_import", handle_file(str(bad)), "character spans", "bad", True, True, "demo", DATA)
    assert "not imported" in status and "bad.jsonl:2" in status and "'spans'" in status
    bad.write_text(json.dumps({**rows[0], "answer": "another answer", "spans": []}) + "\n")
    _, status = call(client, "masks_import", handle_file(str(bad)), "character spans", "bad", True, True, "demo", DATA)
    assert "bad.jsonl:1" in status and "no forget sample" in status
    assert len(ctx.store.list_mask_sets()) == n_sets
    assert call(client, "edit_accuracy", "io")["source"] == "the data's ground-truth spans"


def test_live_accuracy_follows_edits_and_imported_truth(client, ctx, forget):
    from gradio_client import handle_file

    samples, offsets = forget
    call(client, "mask_set_create", "acc", "oracle", "demo", DATA)
    acc = call(client, "edit_accuracy", "acc")["accuracy"]
    n_pos = sum(1 for s, o in zip(samples, offsets) for a, b in o
                if a >= 0 and any(a < sp.end and b > sp.start for sp in s.spans))
    assert acc["token"] == {"tp": n_pos, "fp": 0, "fn": 0, "precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert set(acc["by_type"]) == {"name", "place", "date", "occupation", "genre", "title", "award"}
    # one wrong token: precision n/(n+1), F1 2n/(2n+1), by hand
    r = call(client, "edit_apply", "acc", 6, "toggle", 0, 0, None)
    assert r["mask"][0] == 1 and 0 not in covered(samples[6].answer, offsets[6], "horror")
    acc = call(client, "edit_accuracy", "acc")["accuracy"]["token"]
    assert (acc["tp"], acc["fp"], acc["fn"]) == (n_pos, 1, 0)
    assert acc["f1"] == pytest.approx(2 * n_pos / (2 * n_pos + 1))
    # spans imported as ground truth replace the data's: sample 0's name span only
    path, _ = call(client, "masks_export", "acc", "character spans")
    rows = [json.loads(line) for line in open(path, encoding="utf-8")]
    truth = [{**row, "spans": row["spans"] if i == 0 else []} for i, row in enumerate(rows)]
    tpath = path.replace(".jsonl", ".truth.jsonl")
    with open(tpath, "w", encoding="utf-8") as fh:
        fh.write("".join(json.dumps(t) + "\n" for t in truth))
    _, status = call(client, "masks_import", handle_file(tpath), "character spans", "", False, True, "demo", DATA)
    assert "ground truth" in status
    got = call(client, "edit_accuracy", "acc")
    name0 = len(covered(samples[0].answer, offsets[0], NAME))
    assert got["source"] == "imported spans" and got["accuracy"]["by_type"] == {}
    assert (got["accuracy"]["token"]["tp"], got["accuracy"]["token"]["fp"]) == (name0, n_pos + 1 - name0)


# ---------------------------------------------------------------- leak check

def test_leak_rate_of_a_checkpoint_and_the_target_model(client, ctx, app_env, forget):
    from engine.store import Store

    retain = app_env[2] / "builtin" / "retain"  # a model that never saw the forget facts, as a "checkpoint"
    store: Store = ctx.store
    run_id = store.create_run({"model": "demo", "data": DATA, "loss": "npo", "selector": "all"})
    store.set_checkpoint(run_id, "final", str(retain), 1)
    store.finish_run(run_id, "finished")
    summary, rows, status = call(client, "leak_check", f"{run_id}:final", "ground-truth spans", 10, 24)
    assert "leak check of 2 models" in status
    table = {r[0]: r for r in summary["data"]}
    assert set(table) == {"target model (demo)", f"run {run_id} · final (epoch 1)"}
    per = rows["data"]
    assert len(per) == 20
    for label, r in table.items():
        mine = [x for x in per if x[0] == label]
        n_targets = sum(len(x[4].split(" | ")) for x in mine if x[4])
        distinct = sum(len({s.answer[sp.start:sp.end].lower() for sp in s.spans}) for s in forget[0])
        assert r[3] == n_targets == distinct  # each distinct fact of an answer counted once
        assert r[4] == pytest.approx(round(sum(x[6] for x in mine) / n_targets, 4))
        assert r[5] == pytest.approx(round(sum(x[5] for x in mine) / n_targets, 4))
    assert table["target model (demo)"][4] > table[f"run {run_id} · final (epoch 1)"][4]
