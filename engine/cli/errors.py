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

from .. import paths
from ..data import DataError
from ..store import StoreError
from ..store.db import classify_sqlite_error

class UserError(Exception):
    """An error caused by the user's input: printed as one line, exit code 2."""


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
        store = paths.store_path()
    text = str(err)

    kind = classify_sqlite_error(err)
    if kind == "corrupt":
        todo = ("it may be damaged: run `python -m engine runs --store` on it (a quick_check at open says whether "
                "it is, and what to restore) before moving anything")
    elif kind == "full":
        todo = "the disk is full (not damage): free some space and rerun"
    elif kind == "readonly":
        todo = "it is read-only (not damage): make it writable or pass --store a writable path"
    elif kind == "permission":
        todo = "permission denied (not damage): check the permissions of the file and its folder"
    elif kind == "busy":
        todo = "another process holds it; wait for it to finish and rerun"
    elif kind == "io":
        todo = ("an I/O error (not damage): check free space and that its folder is writable, or pass --store a "
                "writable path")
    else:
        todo = "the store cannot be used; check the file"
    return f"store {store}: {text}: {todo}"


def describe(err: BaseException, store: str | Path | None = None) -> tuple[str, int]:
    """(message, exit code) for an exception that reached the CLI."""
    from ..models import ModelLoadError  # deferred: torch

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
