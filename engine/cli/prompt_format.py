"""`--prompt-format NAME` on every command that loads a model, and the store's per-model choices.

Before a command runs (`apply`): the choices remembered in its store (`--store`, else the
workbench's, when it exists; the app's model bar writes them) apply to the models they name, and
`--prompt-format NAME` (a family of engine.prompts.FAMILIES) overrides every model the command
loads, checkpoints included (it replaces the format recorded beside them, for this command only).
"""
from __future__ import annotations

import contextlib
import sqlite3
import sys
from pathlib import Path

from .. import paths
from ..prompts import choose_format, clear_choices, family_names, force_format, restore_choices, saved_choices
from ..store import Store, StoreError
from .errors import UserError

COMMANDS = {"finetune", "eval", "score", "selector-report", "unlearn", "fit-scorer", "leak-check", "export"}


def add_argument(parser) -> None:
    parser.add_argument("--prompt-format", default=None, metavar="NAME",
                        help="prompt format for every model this command loads, instead of the one recorded beside "
                             "it, chosen in the app or found for its family: " + ", ".join(family_names()))


@contextlib.contextmanager
def applied(args):
    """`apply` for the command, then this process's choices as they were before it (tests and the app
    run commands in-process)."""
    before = saved_choices()
    try:
        apply(args)
        yield
    finally:
        restore_choices(before)


def apply(args) -> None:
    """Reset this process's choices, then load the store's and the flag's (UserError: an unknown name)."""
    clear_choices()
    if not hasattr(args, "prompt_format"):  # a command that loads no model
        return
    _remember_stored(getattr(args, "store", None))
    try:
        force_format(getattr(args, "prompt_format", None))
    except ValueError as err:
        raise UserError(f"--prompt-format: {err}") from None


def _remember_stored(store: str | None) -> None:
    """`choose_format` for every choice in the store; a store that will not open is skipped (the
    command reports it itself when it needs the store)."""
    path = Path(store).expanduser() if store else paths.store_path()
    if not path.is_file():
        return
    try:
        choices = Store(path, create=False).prompt_format_choices()
    except (StoreError, sqlite3.Error, OSError):
        return
    for model, name in choices.items():
        try:
            choose_format(model, name)
        except ValueError as err:
            print(f"warning: stored prompt format for {model}: {err}; its own format is used", file=sys.stderr)
