"""TOFU's exact layout: every file plays its role; other layouts keep today's behaviour."""
import json
import shutil
from pathlib import Path

import pytest

from engine.data import Benchmark, DataError, Sample, load_benchmark
from engine.data.synthetic import generate
from engine.data.tofu_layout import write_tofu_layout

TOFU_SAMPLE = Path("/work/shared/data/tofu_sample")
if not TOFU_SAMPLE.is_dir():
    TOFU_SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "tofu_sample"


@pytest.fixture(scope="module")
def tofu_dir(tmp_path_factory):
    return write_tofu_layout(tmp_path_factory.mktemp("tofu"))


def _questions(samples):
    return [s.question for s in samples]


def test_writer_uses_tofus_names_and_fields(tofu_dir):
    names = sorted(p.name for p in tofu_dir.iterdir())
    assert names == sorted(["forget01.json", "forget01_perturbed.json", "forget05.json", "forget05_perturbed.json",
                            "forget10.json", "forget10_perturbed.json", "retain90.json", "retain95.json",
                            "retain99.json", "retain_perturbed.json", "real_authors_perturbed.json",
                            "world_facts_perturbed.json", "full.json"])
    first = lambda name: json.loads((tofu_dir / name).read_text().splitlines()[0])  # noqa: E731
    assert set(first("forget10.json")) == {"question", "answer"}
    assert set(first("retain90.json")) == {"question", "answer"}
    assert set(first("forget10_perturbed.json")) == {"question", "answer", "paraphrased_answer", "perturbed_answer"}
    assert set(first("retain_perturbed.json")) == {"question", "answer", "paraphrased_answer", "perturbed_answer"}
    assert set(first("real_authors_perturbed.json")) == {"question", "answer", "perturbed_answer"}


@pytest.mark.parametrize("n", [1, 5, 10])
def test_every_role_on_tofus_layout(tofu_dir, n):
    splits = generate(0)
    bench = load_benchmark(tofu_dir, f"forget{n:02d}", protocol="tofu")
    assert load_benchmark(tofu_dir, f"forget{n:02d}").protocol == "open-unlearning"  # the default (issue 20)
    # forget: the perturbed file (it has what the truth ratio needs)
    assert _questions(bench.forget) == _questions(splits[f"forget{n:02d}"])
    assert all(s.paraphrased_answer and s.perturbed_answers for s in bench.forget)
    # the retain term trains on retain{100-N}, which has no perturbed answers
    assert _questions(bench.retain) == _questions(splits[f"retain{100 - n}"])
    assert not any(s.perturbed_answers for s in bench.retain)
    # model utility is evaluated on retain_perturbed: 400 rows, the first 300 under TOFU's protocol
    assert _questions(bench.retain_eval) == _questions(splits["retain90"][:400])
    assert _questions(bench.eval_split("retain")) == _questions(splits["retain90"][:300])
    assert all(s.perturbed_answers for s in bench.eval_split("retain"))
    assert _questions(bench.real_authors) == _questions(splits["real_authors"])
    assert _questions(bench.world_facts) == _questions(splits["world_facts"])
    assert len(bench.eval_split("forget")) == min(300, len(splits[f"forget{n:02d}"]))


def test_protocol_all_evaluates_everything(tofu_dir):
    bench = load_benchmark(tofu_dir, "forget10", protocol="all")
    assert len(bench.eval_split("retain")) == 400
    with pytest.raises(DataError, match="protocol 'papers'"):
        load_benchmark(tofu_dir, "forget10", protocol="papers")


def test_tofu_protocol_cuts_forget_to_300():
    rows = [Sample(f"q{i}?", f"a{i}") for i in range(400)]
    bench = Benchmark("x", forget=rows, retain=rows[:10], retain_eval=rows, protocol="tofu")
    assert _questions(bench.eval_split("forget")) == [f"q{i}?" for i in range(300)]
    assert _questions(bench.eval_split("retain")) == [f"q{i}?" for i in range(300)]
    assert len(Benchmark("x", forget=rows).eval_split("forget")) == 400
    with pytest.raises(ValueError, match="protocol"):
        Benchmark("x", forget=rows, protocol="TOFU")


def test_builtin_layout_keeps_todays_roles(tmp_path):
    from engine.data.synthetic import write_benchmark

    bench = load_benchmark(write_benchmark(tmp_path), "forget10")
    assert bench.protocol == "all" and bench.retain_eval is None
    assert bench.eval_split("retain") is bench.retain and all(s.perturbed_answers for s in bench.retain)


def test_tofu_sample_copied_into_tofus_layout(tmp_path):
    for src, dst in (("forget_sample.json", "forget10.json"), ("retain_sample.json", "retain90.json"),
                     ("real_authors_perturbed.json", "real_authors_perturbed.json"),
                     ("world_facts_perturbed.json", "world_facts_perturbed.json")):
        shutil.copy(TOFU_SAMPLE / src, tmp_path / dst)
    bench = load_benchmark(tmp_path)
    assert bench.name == f"{tmp_path.name}/forget10"
    assert len(bench.forget) == 300 and len(bench.retain) == 300
    assert bench.forget[0].question.startswith("What is the full name of the author born in Taipei")
    assert len(bench.real_authors) == 100 and len(bench.world_facts) == 117
    assert bench.protocol == "all"  # no retain_perturbed.json: not TOFU's full layout
    shutil.copy(tmp_path / "retain90.json", tmp_path / "retain_perturbed.json")  # stand-in, to see the switch
    bench = load_benchmark(tmp_path)
    assert bench.protocol == "open-unlearning" and len(bench.eval_split("retain")) == 300  # all of the 300 copied
    assert len(load_benchmark(tmp_path, protocol="tofu").eval_split("forget")) == 300
