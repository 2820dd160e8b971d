"""Reading JSON lines: one value per non-blank line. Callers turn a `JsonLineError` into their own
error class (data files: DataError; mask files: MaskFileError), naming file and line."""
from __future__ import annotations

import json


class JsonLineError(ValueError):
    """Line `line` is not JSON; `what` says why."""

    def __init__(self, line: int, what: str):
        super().__init__(f"line {line}: {what}")
        self.line, self.what = line, what


def json_lines(text: str) -> list[tuple[int, object]]:
    """(line number, decoded value) for every non-blank line of `text`, numbered from 1."""
    rows = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as err:
            raise JsonLineError(number, f"malformed JSON: {err.msg} (column {err.colno})") from None
        except RecursionError:
            raise JsonLineError(number, "JSON nested too deeply to read") from None
        bad = lone_surrogate(value)
        if bad is not None:
            raise JsonLineError(number, bad)
        rows.append((number, value))
    return rows


def lone_surrogate(value: object, depth: int = 0) -> str | None:
    """What is wrong when a decoded JSON value holds a lone UTF-16 surrogate (e.g. the escape
    \\ud800 on its own): not Unicode text, a tokenizer cannot read it. None when clean."""
    if isinstance(value, str):
        for i, ch in enumerate(value):
            if "\ud800" <= ch <= "\udfff":
                return (f"a lone surrogate \\u{ord(ch):04x} at character {i + 1} of {value[:i][-20:]!r}…: not valid "
                        f"Unicode text; fix or remove that escape")
        return None
    if depth > 100:
        return None
    if isinstance(value, dict):
        items = list(value.keys()) + list(value.values())
    elif isinstance(value, list):
        items = value
    else:
        return None
    for item in items:
        found = lone_surrogate(item, depth + 1)
        if found:
            return found
    return None
