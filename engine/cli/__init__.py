"""`python -m engine <command>`: thin commands over the same engine code the app uses.

Each command is one module with NAME, HELP, add_arguments(parser) and run(args) -> exit code;
a new command is one new file plus one line in COMMANDS.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from pathlib import Path

from ..atomic import write_text_atomic
from ..data.tofu_layout import roles_help
from ..params import parse_params  # noqa: F401  (the commands import it from here)
from . import prompt_format
from .checks import check_not_symlink
from .errors import UserError, describe  # noqa: F401  (the commands import UserError from here)
from .prompt_format import applied

COMMANDS = ["setup", "finetune", "eval", "score", "selector-report", "unlearn", "runs", "fit-scorer", "leak-check",
            "export", "masks"]

NAMES_HELP = f"""built-in names:
  models: demo (target model), demo-retain (retain model), or a local HF model directory
  data:   demo (= demo/forget10), demo/forget01, demo/forget05, demo/forget10,
          tofu/forget01, tofu/forget05, tofu/forget10, tofu/forget10-dev (the real TOFU
          benchmark shipped in data/tofu, sha256-checked at load),
          or a TOFU-layout directory (optionally DIR/<forget file stem>)
  TOFU's file names, and the role each plays (N = 01, 05, 10):
{roles_help()}
  On that layout evaluation follows open-unlearning's protocol by default (all 400 forget10 and
  retain_perturbed rows, batch 32, 200 new tokens; `--protocol tofu`: TOFU's published first 300
  of each, batch 30); any other layout scores every forget question ('all')."""


def check_output(path: str | None, flag: str) -> None:
    """Refuse now, before any work, an output path that cannot be written: its folder is missing
    or not writable, the path is a folder or a symbolic link. None (no output asked for) passes."""
    if not path:
        return
    target = Path(path).expanduser()
    folder = target.parent

    check_not_symlink(path, flag)  # an atomic write would replace the link itself: left alone, refused
    if target.is_dir():
        raise UserError(f"{flag} {path}: is a directory; give a file path")
    if not folder.is_dir():
        raise UserError(f"{flag} {path}: no such directory: {folder}; create it first or choose another path")
    if not os.access(folder, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise UserError(f"{flag} {path}: not writable (permission denied); choose another path")


def write_json(path: str | None, payload: dict) -> None:
    """Write payload to `path` as JSON when a path is given (atomically: whole or absent)."""
    if path:
        write_text_atomic(Path(path).expanduser(), json.dumps(payload, indent=2))
        print(f"wrote {path}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m engine", description="Token-level unlearning workbench.",
                                     epilog=NAMES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error (also WORKBENCH_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"engine.cli.{name.replace('-', '_')}")
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP, epilog=NAMES_HELP,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        if module.NAME in prompt_format.COMMANDS:  # `--prompt-format NAME` (engine.cli.prompt_format)
            prompt_format.add_argument(p)
        p.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command behind the error boundary (`engine.cli.errors`): bad input is one line
    and exit 2, a store or OS failure one line and exit 1, Ctrl-C "cancelled" and exit 130;
    `--debug` (or WORKBENCH_DEBUG=1) lets the traceback through instead."""
    args = build_parser().parse_args(argv)
    if args.debug or os.environ.get("WORKBENCH_DEBUG") == "1":
        with applied(args):
            return int(args.run(args) or 0)
    try:
        with applied(args):
            return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print("cancelled", file=sys.stderr)
        return 130
    except Exception as err:  # the one boundary: every failure becomes one line, never a traceback
        message, code = describe(err, getattr(args, "store", None))
        print(f"error: {message}", file=sys.stderr)
        return code
