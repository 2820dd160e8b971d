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
            rows.append((number, json.loads(raw)))
        except json.JSONDecodeError as err:
            raise JsonLineError(number, f"malformed JSON: {err.msg} (column {err.colno})") from None
        except RecursionError:
            raise JsonLineError(number, "JSON nested too deeply to read") from None
    return rows
