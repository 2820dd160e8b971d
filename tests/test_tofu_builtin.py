"""The real TOFU benchmark shipped in data/tofu as built-in data names (engine.data.tofu_builtin):
every name loads with TOFU's pairing, the files are checked against SHA256SUMS, a tampered copy is
refused naming the file, and the CLI and the app's picker take the names."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from engine.data import DataError
from engine.data.tofu_builtin import DATA_NAMES, DEV_ROWS, tofu_dir
from engine.resolve import data_choices, load_data

SHARED_DEV = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "tofu_sample" / "forget_spans_dev.json"


def _rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (tofu_dir() / name).read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.mark.parametrize("name, forget, retain", [("tofu/forget01", 40, 3960), ("tofu/forget05", 200, 3800),
                                                  ("tofu/forget10", 400, 3600), ("tofu/forget10-dev", 120, 3600)])
def test_each_name_loads_with_tofus_pairing(name, forget, retain):
    bench = load_data(name)
    assert bench.name == name and bench.protocol == "open-unlearning"  # the default on TOFU's files (issue 20)
    assert (len(bench.forget), len(bench.retain), len(bench.retain_eval)) == (forget, retain, 400)
    assert (len(bench.real_authors), len(bench.world_facts)) == (100, 117)
    n = name.split("/")[1].removesuffix("-dev")
    assert len(bench.holdout) == {"forget01": 40, "forget05": 200, "forget10": 400}[n]
    # forget rows carry the perturbed file's fields; retain rows are retain{100-N}.json's
    full = _rows("full.json")
    offset = 4000 - {"forget01": 40, "forget05": 200, "forget10": 400}[n] + (DEV_ROWS[0] if "dev" in name else 0)
    assert bench.forget[0].question == full[offset]["question"]
    assert bench.forget[0].paraphrased_answer and len(bench.forget[0].perturbed_answers) == 5
    assert bench.retain[-1].question == full[retain - 1]["question"]
    forget_q = {s.question for s in bench.forget}
    assert not forget_q & {s.question for s in bench.retain}
    assert bench.retain_eval[0].question == full[0]["question"]
    assert bench.eval_split("forget") == bench.forget  # open-unlearning: every row (TOFU's protocol: the first 300)


def test_dev_split_holds_exactly_the_hand_marked_answers():
    if not SHARED_DEV.is_file():
        pytest.skip("the shared forget_spans_dev.json is not on this machine")
    dev = [json.loads(line) for line in SHARED_DEV.read_text(encoding="utf-8").splitlines() if line.strip()]
    bench = load_data("tofu/forget10-dev")
    assert [(s.question, s.answer) for s in bench.forget] == [(r["question"], r["answer"]) for r in dev]
    # the hand-marked spans come with them (the oracle selector and the selector table need them)
    assert [[(p.start, p.end, p.type) for p in s.spans] for s in bench.forget] == \
        [[(p["start"], p["end"], p["type"]) for p in r["spans"]] for r in dev]
    assert sum(len(s.spans) for s in bench.forget) == 275
    assert bench.forget[0].answer[26:40] == "Elvin Mammadov" and bench.forget[0].spans[0].type == "name"


def test_tampered_copy_is_refused_naming_the_file(tmp_path, monkeypatch):
    copy = tmp_path / "tofu"
    shutil.copytree(tofu_dir(), copy)
    target = copy / "retain90.json"
    target.chmod(0o644)
    data = bytearray(target.read_bytes())
    data[1000] ^= 0x01  # one flipped bit
    target.write_bytes(bytes(data))
    monkeypatch.setenv("WORKBENCH_TOFU_DIR", str(copy))
    load_data("tofu/forget01")  # retain99 is intact: forget01 does not read retain90
    with pytest.raises(DataError, match=r"retain90\.json: sha256 [0-9a-f]{64} differs"):
        load_data("tofu/forget10")
    (copy / "world_facts_perturbed.json").unlink()
    with pytest.raises(DataError, match="world_facts_perturbed.json: missing"):
        load_data("tofu/forget01")


def test_unknown_tofu_split_is_refused():
    with pytest.raises(DataError, match="tofu/forget10-dev"):
        load_data("tofu/forget20")


def test_picker_and_cli_take_the_names(monkeypatch, tmp_path, capsys):
    from engine.cli import main

    assert set(DATA_NAMES) <= set(data_choices())
    assert "tofu/forget10" in main.__globals__["NAMES_HELP"]
    copy = tmp_path / "tofu"
    shutil.copytree(tofu_dir(), copy)
    (copy / "forget01_perturbed.json").chmod(0o644)
    (copy / "forget01_perturbed.json").write_text("{}\n")
    monkeypatch.setenv("WORKBENCH_TOFU_DIR", str(copy))
    code = main(["eval", "--model", "demo", "--data", "tofu/forget01"])
    assert code == 2 and "forget01_perturbed.json: sha256" in capsys.readouterr().err
