"""The real TOFU benchmark, shipped in the project (`data/tofu/`, MIT, LICENSE beside it), as
built-in data names checked against `SHA256SUMS` every time they are loaded.

Names (TOFU's own pairing, Maini et al. 2024, locuslab/TOFU):
- `tofu/forget01|05|10`: forget = `forgetN_perturbed.json` (question, answer, paraphrased and
  5 perturbed answers), retain term = `retain{100-N}.json`, model utility on
  `retain_perturbed.json`, plus `real_authors_perturbed.json`, `world_facts_perturbed.json` and
  `holdoutN.json` (authors no model saw: membership-inference baselines).
- `tofu/forget10-dev`: forget10 rows 40-159 (`DEV_ROWS`; full.json rows 3640-3759, 6 authors),
  exactly the 120 answers of `forget10_dev_spans.jsonl` (the project's hand-marked fact spans,
  one annotator, 275 spans; its guideline is in data/tofu/README.md), spans attached, with
  forget10's retain files: the CPU preset's forget split, so the real-text selector table and the
  oracle selector run on its target model.

`WORKBENCH_TOFU_DIR` points the names at another copy (tests use a tampered one).
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from pathlib import Path

from ..paths import REPO_ROOT
from .loader import DataError, load_benchmark, load_file
from .sample import Benchmark

DATA_NAMES = ("tofu/forget01", "tofu/forget05", "tofu/forget10", "tofu/forget10-dev")
DEV_ROWS = (40, 160)  # forget10[40:160] = full.json[3640:3760] = forget_spans_dev.json's 120 rows
SUMS_FILE = "SHA256SUMS"
DEV_SPANS = "forget10_dev_spans.jsonl"


def tofu_dir() -> Path:
    """The shipped TOFU files (`<repo>/data/tofu`), or `$WORKBENCH_TOFU_DIR`."""
    return Path(os.environ.get("WORKBENCH_TOFU_DIR", REPO_ROOT / "data" / "tofu")).expanduser()


def is_tofu_name(spec: str) -> bool:
    return str(spec).startswith("tofu/")


def read_sums(directory: Path) -> dict[str, str]:
    """{file name: sha256 hex} from `SHA256SUMS` (`<hex>  <name>` lines)."""
    sums_path = directory / SUMS_FILE
    if not sums_path.is_file():
        raise DataError(f"{sums_path}: missing; the built-in TOFU files cannot be checked")
    sums = {}
    for line in sums_path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            sums[name.lstrip("*")] = digest.lower()
    return sums


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify(directory: Path, names: list[str]) -> None:
    """Raise DataError naming the first file whose sha256 differs from `SHA256SUMS` (or is missing)."""
    sums = read_sums(directory)
    for name in names:
        path = directory / name
        if name not in sums:
            raise DataError(f"{path}: not listed in {directory / SUMS_FILE}")
        if not path.is_file():
            raise DataError(f"{path}: missing from the built-in TOFU data")
        got = sha256_file(path)
        if got != sums[name]:
            raise DataError(f"{path}: sha256 {got} differs from {sums[name]} in {SUMS_FILE}: the file was "
                            f"changed or damaged; restore it (git checkout -- data/tofu)")


def files_for(forget: str) -> list[str]:
    """The files a `forgetN` split reads (what `load_benchmark` opens, plus holdoutN)."""
    n = int(forget.removeprefix("forget"))
    return [f"{forget}_perturbed.json", f"retain{100 - n}.json", "retain_perturbed.json",
            "real_authors_perturbed.json", "world_facts_perturbed.json", f"holdout{n:02d}.json"]


def with_spans(samples: list, marked: list) -> list:
    """`samples` with the spans of `marked` (the same questions and answers, in order)."""
    if len(samples) != len(marked):
        raise DataError(f"{DEV_SPANS}: {len(marked)} rows, expected {len(samples)}")
    for i, (s, m) in enumerate(zip(samples, marked)):
        if (s.question, s.answer) != (m.question, m.answer):
            raise DataError(f"{DEV_SPANS}:{i + 1}: question/answer differ from forget10 row {DEV_ROWS[0] + i}")
    return [replace(s, spans=m.spans) for s, m in zip(samples, marked)]


def load_tofu(spec: str, protocol: str | None = None) -> Benchmark:
    """A built-in TOFU name as a Benchmark (files checked first); DataError for an unknown name."""
    if spec not in DATA_NAMES:
        raise DataError(f"unknown built-in TOFU split {spec!r}; use one of {', '.join(DATA_NAMES)}")
    split = spec.split("/", 1)[1]
    forget = split.removesuffix("-dev")
    directory = tofu_dir()
    files = files_for(forget)
    dev = split.endswith("-dev")
    verify(directory, files + ([DEV_SPANS] if dev else []))
    bench = load_benchmark(directory, forget, protocol)
    bench.holdout = load_file(directory / files[-1])
    if dev:
        bench.forget = with_spans(bench.forget[DEV_ROWS[0]:DEV_ROWS[1]], load_file(directory / DEV_SPANS))
    bench.name = spec
    return bench
