"""Read TOFU-format JSON-lines files (and the built-in benchmark, written in the same layout).

Every problem is reported as `DataError("<file>:<line>: <field>: <what is wrong>")`, never as
a stack trace from deep inside.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from ..json_lines import JsonLineError, json_lines, lone_surrogate
from .sample import PROTOCOLS, Benchmark, Sample, Span


class DataError(ValueError):
    """A data file or directory that cannot be used, with file, line and field named."""


def _fail(path: Path, line: int | None, field: str | None, what: str) -> DataError:
    where = f"{path}" + (f":{line}" if line is not None else "")
    return DataError(f"{where}: " + (f"field '{field}': " if field else "") + what)


def _text(row: dict, key: str, path: Path, line: int, required: bool) -> str | None:
    value = row.get(key)
    if value is None:
        if required:
            raise _fail(path, line, key, "missing")
        return None
    if not isinstance(value, str):
        raise _fail(path, line, key, f"expected a string, got {type(value).__name__}")
    if not value.strip():
        raise _fail(path, line, key, "empty")
    return value


def parse_row(row: object, path: Path, line: int) -> Sample:
    """Validate one decoded JSON object and turn it into a Sample."""
    if not isinstance(row, dict):
        raise _fail(path, line, None, f"expected a JSON object, got {type(row).__name__}")
    question = _text(row, "question", path, line, required=True)
    answer = _text(row, "answer", path, line, required=True)
    paraphrase = _text(row, "paraphrased_answer", path, line, required=False)
    perturbed = row.get("perturbed_answer", [])
    if isinstance(perturbed, str):
        perturbed = [perturbed]
    if not isinstance(perturbed, list) or not all(isinstance(p, str) and p.strip() for p in perturbed):
        raise _fail(path, line, "perturbed_answer", "expected a list of non-empty strings")
    spans = []
    raw_spans = row.get("spans", [])
    if not isinstance(raw_spans, list):
        raise _fail(path, line, "spans", "expected a list of {start, end, type}")
    for i, s in enumerate(raw_spans):
        if not (isinstance(s, dict) and isinstance(s.get("start"), int) and isinstance(s.get("end"), int)):
            raise _fail(path, line, f"spans[{i}]", "expected {start: int, end: int, type: str}")
        if not 0 <= s["start"] < s["end"] <= len(answer):
            raise _fail(path, line, f"spans[{i}]",
                        f"[{s['start']}, {s['end']}) is outside the answer (length {len(answer)})")
        spans.append(Span(s["start"], s["end"], str(s.get("type", "fact"))))
    author = row.get("author")
    return Sample(question=question, answer=answer, paraphrased_answer=paraphrase,
                  perturbed_answers=tuple(perturbed), spans=tuple(spans),
                  author=author if isinstance(author, str) else None, uid=f"{path.stem}:{line}")


def load_file(path: str | Path) -> list[Sample]:
    """Load one TOFU file: JSON lines (one object per line) or a single JSON array."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such data file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise _fail(path, None, None, f"not UTF-8 text ({err.reason} at byte {err.start})") from None
    if text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as err:
            raise _fail(path, err.lineno, None, f"malformed JSON: {err.msg}") from None
        except RecursionError:
            raise _fail(path, None, None, "JSON nested too deeply to read") from None

        for i, row in enumerate(rows if isinstance(rows, list) else []):
            if lone_surrogate(row):
                raise _fail(path, None, None, f"row {i + 1}: {lone_surrogate(row)}")
        samples = [parse_row(row, path, i + 1) for i, row in enumerate(rows)]
    else:
        try:
            rows = json_lines(text)
        except JsonLineError as err:
            raise _fail(path, err.line, None, err.what) from None
        samples = [parse_row(row, path, number) for number, row in rows]
    if not samples:
        raise DataError(f"{path}: no question/answer rows")
    return samples


def write_file(path: str | Path, samples: list[Sample]) -> None:
    """Write samples as TOFU JSON lines."""
    with open(path, "w", encoding="utf-8") as fh:
        for s in samples:
            fh.write(json.dumps(s.to_json(), ensure_ascii=False) + "\n")


def _data_files(directory: Path) -> dict[str, Path]:
    """Stem -> file for every .json/.jsonl file; `x_perturbed` is preferred over `x`."""
    files: dict[str, Path] = {}
    for p in sorted(directory.iterdir()):
        if p.suffix not in (".json", ".jsonl") or not p.is_file():
            continue
        stem = p.stem.removesuffix("_perturbed")
        if stem not in files or p.stem.endswith("_perturbed"):
            files[stem] = p
    return files


def _pick(files: dict[str, Path], prefix: str) -> Path | None:
    matches = [s for s in files if s.startswith(prefix)]
    return files[matches[0]] if len(matches) == 1 else None


def load_benchmark(directory: str | Path, forget: str | None = None, protocol: str | None = None) -> Benchmark:
    """Load a TOFU-layout directory.

    forget: the forget split's file stem (e.g. `forget10`); optional when the directory holds
    exactly one `forget*` file (`forgetN_perturbed.json` is preferred over `forgetN.json`).
    The retain term trains on `retain{100-N}` for `forgetN`, else on the single `retain*` file.
    When `retain_perturbed.json` sits beside a `retain{100-N}` file (TOFU's own layout), model
    utility is evaluated on `retain_perturbed` instead (`Benchmark.retain_eval`).
    `real_authors*` and `world_facts*` are the utility sets.
    protocol: 'tofu', 'open-unlearning' or 'all' (see `Benchmark`); default 'open-unlearning' on
    TOFU's layout, else 'all'.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory}: no such data directory")
    if protocol is not None and protocol not in PROTOCOLS:
        raise DataError(f"protocol {protocol!r}: use one of {', '.join(PROTOCOLS)}")
    files = _data_files(directory)
    forget_stems = sorted(s for s in files if s.startswith("forget"))
    if forget is None:
        if len(forget_stems) != 1:
            raise DataError(f"{directory}: name the forget split, one of {forget_stems or 'none found'}"
                            f" (e.g. {directory}/{forget_stems[0] if forget_stems else 'forget10'})")
        forget = forget_stems[0]
    forget = forget.removesuffix(".json").removesuffix(".jsonl").removesuffix("_perturbed")
    if forget not in files:
        raise DataError(f"{directory}: no split {forget!r}; found {sorted(files)}")
    retain_file = retain_eval_file = None
    m = re.fullmatch(r"forget(\d+)", forget)
    if m and f"retain{100 - int(m.group(1))}" in files:
        retain_file = files[f"retain{100 - int(m.group(1))}"]
        if files.get("retain", Path()).name in ("retain_perturbed.json", "retain_perturbed.jsonl"):
            retain_eval_file = files["retain"]
    elif not m:
        retain_file = _pick(files, "retain")
    real = _pick(files, "real_authors")
    world = _pick(files, "world_facts")
    tofu_layout = retain_eval_file is not None
    forget_samples = load_file(files[forget])
    return Benchmark(
        name=f"{directory.name}/{forget}",
        forget=forget_samples,
        retain=load_file(retain_file) if retain_file else [],
        real_authors=load_file(real) if real else [],
        world_facts=load_file(world) if world else [],
        retain_eval=load_file(retain_eval_file) if retain_eval_file else None,
        protocol=protocol or ("open-unlearning" if tofu_layout else "all"),
        holdout=_holdout(files, m, len(forget_samples)),
    )


def _holdout(files: dict[str, Path], m: re.Match | None, n_forget: int) -> list[Sample]:
    """The holdout split matching `forget`: `holdoutN` for `forgetN` (TOFU's layout), else a single
    `holdout` file cut to the forget split's size (the built-in data: its first authors, as many
    rows as the forget split has); [] when there is none."""
    if m and f"holdout{m.group(1)}" in files:
        return load_file(files[f"holdout{m.group(1)}"])
    if "holdout" in files:
        return load_file(files["holdout"])[:n_forget]
    return []
