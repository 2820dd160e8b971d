"""Files that are either whole or absent: written to a temporary sibling, then renamed over the
target (`os.replace` is atomic on one file system), and cache files read back as None when
they are missing or unreadable, so the caller rebuilds them instead of failing."""
from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Callable


def replace_atomic(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call write(tmp) on a temporary file beside `path`, fsync it, then rename it to `path`.
    A crash or a full disk leaves the old file (or none), never a truncated one."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically."""
    return replace_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def read_json_or_none(path: str | Path):
    """The decoded JSON of a cache file, or None when it is missing or unreadable (a warning names
    the file; the caller rebuilds it)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        warnings.warn(f"{path}: unreadable cache file ({type(err).__name__}); ignoring it and rebuilding",
                      stacklevel=2)
        return None
