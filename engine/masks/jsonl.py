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


MAX_FILE_BYTES = 20 * 1024 * 1024  # the mask-set import's cap (engine.store.transfer.MAX_IMPORT_BYTES)


def read_jsonl(path: str | Path, max_bytes: int = MAX_FILE_BYTES, name: str | None = None) -> list[tuple[int, dict]]:
    """(line number, object) for every non-blank line of a JSON-lines file of at most `max_bytes`
    (20 MB); bytes that are not UTF-8 are named by line and byte. name: the file's name in errors
    (an upload's own name rather than its temporary path)."""
    path = Path(path)
    shown = name or str(path)
    if not path.is_file():
        raise MaskFileError(f"{path}: no such file")
    size = path.stat().st_size
    if size > max_bytes:
        raise fail(shown, None, None, f"{size / 2**20:.1f} MB is over the limit of {max_bytes / 2**20:.0f} MB "
                                          f"for a rules, span or word-list file; split it")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        column = err.start - (raw.rfind(b"\n", 0, err.start) + 1) + 1
        raise fail(shown, line, None, f"not UTF-8 text ({err.reason} at byte {err.start}, column {column}); "
                                          f"save the file as UTF-8") from None
    return parse_jsonl(text, shown)


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
