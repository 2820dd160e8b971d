"""JSON-lines files of the masks package (rules, spans, word lists): one object per line, blank
lines skipped, every problem a `MaskFileError("<file>:<line>: field '<f>': <what>")`."""
from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..json_lines import JsonLineError, json_lines


class MaskFileError(ValueError):
    """A rules/spans/word-list file that cannot be used; the message names file, line and field."""


def fail(source: str, line: int | None, field: str | None, what: str) -> MaskFileError:
    where = source + (f":{line}" if line is not None else "")
    return MaskFileError(f"{where}: " + (f"field '{field}': " if field else "") + what)


def read_jsonl(path: str | Path) -> list[tuple[int, dict]]:
    """(line number, object) for every non-blank line of a JSON-lines file."""
    path = Path(path)
    if not path.is_file():
        raise MaskFileError(f"{path}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise fail(str(path), None, None, f"not UTF-8 text ({err.reason} at byte {err.start})") from None
    return parse_jsonl(text, str(path))


def parse_jsonl(text: str, source: str = "<text>") -> list[tuple[int, dict]]:
    """`read_jsonl` on a string; `source` names it in errors."""
    try:
        rows = json_lines(text)
    except JsonLineError as err:
        raise fail(source, err.line, None, err.what) from None
    for number, row in rows:
        if not isinstance(row, dict):
            raise fail(source, number, None, f"expected a JSON object, got {type(row).__name__}")
    return rows  # type: ignore[return-value]  (every value checked to be a dict)


def to_jsonl(rows: Iterable[dict]) -> str:
    """JSON lines (UTF-8 kept readable), one object per line, trailing newline."""
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def text_field(row: dict, key: str, source: str, line: int) -> str:
    """A required non-empty string field."""
    value: Any = row.get(key)
    if value is None:
        raise fail(source, line, key, "missing")
    if not isinstance(value, str):
        raise fail(source, line, key, f"expected a string, got {type(value).__name__}")
    if not value.strip():
        raise fail(source, line, key, "empty")
    return value


def bool_field(row: dict, key: str, default: bool, source: str, line: int) -> bool:
    """An optional true/false field."""
    value = row.get(key, default)
    if not isinstance(value, bool):
        raise fail(source, line, key, f"expected true or false, got {value!r}")
    return value
