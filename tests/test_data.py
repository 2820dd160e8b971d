"""Loader, validation errors and the built-in benchmark generator."""
import json
from pathlib import Path

import pytest

from engine.data import DataError, load_benchmark, load_file
from engine.data.synthetic import N_PERTURBED, generate

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "tofu_sample"


def _write(tmp_path, name, lines):
    p = tmp_path / name
    p.write_text("\n".join(lines) + "\n")
    return p


def test_loads_real_tofu_sample_as_is():
    bench = load_benchmark(SHARED, "forget_sample")  # the folder holds two forget files: name one
    assert len(bench.forget) == 300 and len(bench.retain) == 300
    assert len(bench.real_authors) == 100 and len(bench.world_facts) == 117
    assert bench.forget[0].answer == "The author's full name is Hsiao Yun-Hwa."
    assert bench.real_authors[0].perturbed_answers == ("Charles Dickens", "Virginia Woolf", "Mark Twain")
    assert bench.forget[0].paraphrased_answer is None and bench.forget[0].spans == ()


def test_real_forget_spans_load_as_ground_truth():
    """forget_spans_dev.json: 120 real forget answers whose fact spans are typed ground truth."""
    bench = load_benchmark(SHARED, "forget_spans_dev")
    assert len(bench.forget) == 120
    first = bench.forget[0]
    assert [(sp.start, sp.end, sp.type) for sp in first.spans] == [(26, 40, "name")]
    assert first.answer[26:40] == "Elvin Mammadov"
    assert sum(len(s.spans) for s in bench.forget) == 275


def test_two_forget_files_must_be_named():
    with pytest.raises(DataError, match="name the forget split, one of \\['forget_sample', 'forget_spans_dev'\\]"):
        load_benchmark(SHARED)


@pytest.mark.parametrize("line, expected", [
    ('{"question": "q?", "answer": ', ":1: malformed JSON"),
    ('{"question": "q?"}', ":1: field 'answer': missing"),
    ('{"question": "q?", "answer": "   "}', ":1: field 'answer': empty"),
    ('{"question": 3, "answer": "a"}', ":1: field 'question': expected a string, got int"),
    ('{"question": "q", "answer": "abc", "spans": [{"start": 1, "end": 9, "type": "x"}]}',
     ":1: field 'spans[0]': [1, 9) is outside the answer (length 3)"),
    ('{"question": "q", "answer": "a", "perturbed_answer": [1]}', "field 'perturbed_answer'"),
    ('"just a string"', ":1: expected a JSON object, got str"),
    ('[{"question": "q", "answer": "a"}, 7]', ":2: expected a JSON object, got int"),
])
def test_bad_rows_name_file_line_and_field(tmp_path, line, expected):
    p = _write(tmp_path, "forget.json", [line])
    with pytest.raises(DataError) as err:
        load_file(p)
    assert str(p) in str(err.value) and expected in str(err.value)


def test_error_points_at_the_right_line(tmp_path):
    good = json.dumps({"question": "q", "answer": "a"})
    p = _write(tmp_path, "forget.json", [good, good, '{"question": "q"}'])
    with pytest.raises(DataError, match=r"forget.json:3: field 'answer': missing"):
        load_file(p)


def test_empty_and_missing_files(tmp_path):
    with pytest.raises(DataError, match="no such data file"):
        load_file(tmp_path / "nope.json")
    with pytest.raises(DataError, match="no question/answer rows"):
        load_file(_write(tmp_path, "empty.json", [""]))
    with pytest.raises(DataError, match="no such data directory"):
        load_benchmark(tmp_path / "absent")


def test_forget_split_pairs_with_its_retain_split(tmp_path):
    row = json.dumps({"question": "q", "answer": "a"})
    for stem in ("forget05", "forget10", "retain90", "retain95"):
        _write(tmp_path, f"{stem}.json", [row] * (2 if stem == "forget10" else 1))
    with pytest.raises(DataError, match="name the forget split"):
        load_benchmark(tmp_path)
    bench = load_benchmark(tmp_path, "forget10")
    assert len(bench.forget) == 2 and bench.retain[0].uid.startswith("retain90")


def test_generator_is_deterministic_and_tofu_shaped():
    a, b = generate(seed=0), generate(seed=0)
    assert [s.to_json() for s in a["forget10"]] == [s.to_json() for s in b["forget10"]]
    assert generate(seed=1)["forget10"][0].to_json() != a["forget10"][0].to_json()
    assert len(a["full"]) == 1000 and len(a["forget10"]) == 100 and len(a["retain90"]) == 900
    assert len(a["forget01"]) == 10 and len(a["forget05"]) == 50 and len(a["holdout"]) == 100
    forget_authors = {s.author for s in a["forget10"]}
    assert len(forget_authors) == 10 and not forget_authors & {s.author for s in a["retain90"]}
    assert not {s.author for s in a["holdout"]} & {s.author for s in a["full"]}
    assert {s.author for s in a["forget01"]} <= {s.author for s in a["forget05"]} <= forget_authors
    for s in a["full"]:
        assert s.paraphrased_answer and s.paraphrased_answer != s.answer
        assert len(s.perturbed_answers) == N_PERTURBED and s.paraphrased_answer not in s.perturbed_answers
        assert s.spans
    for s in a["real_authors"] + a["world_facts"]:
        assert len(s.perturbed_answers) >= 3 and s.answer not in s.perturbed_answers


def test_generator_spans_cover_the_facts():
    s = generate(seed=0)["forget10"]
    birthplace = next(x for x in s if x.uid.endswith(":birthplace"))
    texts = {birthplace.answer[sp.start:sp.end]: sp.type for sp in birthplace.spans}
    assert all(t == "place" for t in texts.values()) and len(texts) == 2
    assert all(name in birthplace.answer for name in texts)
    books = next(x for x in s if x.uid.endswith(":books"))
    assert [sp.type for sp in books.spans] == ["title"] * 3
    assert all(books.answer[sp.start - 1] == '"' and books.answer[sp.end] == '"' for sp in books.spans)
    # the subject's name is context in the question, so it is not a target there
    assert all(sp.type != "name" for sp in birthplace.spans)


def test_written_benchmark_reads_back(tmp_path):
    from engine.data.synthetic import write_benchmark

    write_benchmark(tmp_path)
    bench = load_benchmark(tmp_path, "forget10")
    assert len(bench.forget) == 100 and len(bench.retain) == 900
    assert len(bench.real_authors) == 30 and len(bench.world_facts) == 30
    assert bench.forget[0].spans == generate(seed=0)["forget10"][0].spans
