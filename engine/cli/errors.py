"""The CLI's one error boundary: any exception -> (one line naming the file or parameter and
what to do, exit code).

Exit codes: 2 for bad input (a parameter, a data file, a model folder, an output path: fix the
command and rerun); 1 for a failure of the machine or the store at run time (disk full,
permission, a damaged store, anything unexpected); 130 for Ctrl-C (handled in `main`).
"""
from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

INPUT_ERROR = 2
RUNTIME_ERROR = 1

OS_HINTS = {
    errno.ENOSPC: "no space left on the device; free some space and rerun",
    errno.EDQUOT: "the disk quota is exceeded; free some space and rerun",
    errno.EACCES: "permission denied; check the file's permissions or choose another path",
    errno.EPERM: "operation not permitted; check the file's permissions or choose another path",
    errno.EROFS: "the file system is read-only; choose a writable path",
    errno.ENOENT: "no such file or directory; check the path",
    errno.EISDIR: "is a directory; give a file path",
    errno.ENOTDIR: "a part of the path is not a directory; check the path",
}


def describe_os_error(err: OSError) -> str:
    """'<file>: <what happened and what to do>' for an OSError."""
    where = err.filename if err.filename is not None else "a file"
    if err.filename2 is not None:
        where = f"{err.filename} -> {err.filename2}"
    hint = OS_HINTS.get(err.errno) or (err.strerror or str(err))
    return f"{where}: {hint}"


def describe_store_error(err: sqlite3.Error, store: str | Path | None) -> str:
    """One line for an SQLite failure, naming the store file and what to do."""
    if store is None:
        from .. import paths

        store = paths.store_path()
    text = str(err)
    low = text.lower()
    if "not a database" in low or "malformed" in low or "corrupt" in low:
        todo = "it is damaged or not a workbench store; move it aside and rerun, or pass --store another file"
    elif "readonly" in low or "read-only" in low:
        todo = "it is read-only; make it writable or pass --store a writable copy"
    elif "disk is full" in low or "disk i/o" in low:
        todo = "the disk is full or failing; free some space and rerun"
    elif "unable to open" in low:
        todo = "it cannot be opened (a folder, a missing directory or no permission); check the path"
    elif "locked" in low or "busy" in low:
        todo = "another process holds it; wait for it to finish and rerun"
    else:
        todo = "the store cannot be used; check the file"
    return f"store {store}: {text}: {todo}"


def describe(err: BaseException, store: str | Path | None = None) -> tuple[str, int]:
    """(message, exit code) for an exception that reached the CLI."""
    from ..data import DataError
    from ..models import ModelLoadError
    from . import UserError

    from ..store import StoreError

    if isinstance(err, StoreError):  # already one line naming the store and what to do
        return str(err), err.exit_code
    if isinstance(err, sqlite3.Error):
        return describe_store_error(err, store), RUNTIME_ERROR
    if isinstance(err, OSError):
        return describe_os_error(err), RUNTIME_ERROR
    if isinstance(err, KeyError):
        return str(err.args[0] if err.args else err), INPUT_ERROR
    if isinstance(err, RecursionError):
        return "the input is nested too deeply to read", INPUT_ERROR
    if isinstance(err, (UserError, DataError, ModelLoadError, ValueError)):
        return str(err), INPUT_ERROR
    return (f"{type(err).__name__}: {err} (rerun with `python -m engine --debug …` for the traceback)",
            RUNTIME_ERROR)
