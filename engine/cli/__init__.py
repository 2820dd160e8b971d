"""`python -m engine <command>`: thin commands over the same engine code the app uses.

Each command is one module with NAME, HELP, add_arguments(parser) and run(args) -> exit code;
a new command is one new file plus one line in COMMANDS.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys

from ..params import parse_params  # noqa: F401  (the commands import it from here)

COMMANDS = ["setup", "finetune", "eval", "score", "selector-report", "unlearn", "runs", "fit-scorer", "leak-check"]

from ..data.tofu_layout import roles_help

NAMES_HELP = f"""built-in names:
  models: demo (target model), demo-retain (retain model), or a local HF model directory
  data:   demo (= demo/forget10), demo/forget01, demo/forget05, demo/forget10,
          or a TOFU-layout directory (optionally DIR/<forget file stem>)
  TOFU's file names, and the role each plays (N = 01, 05, 10):
{roles_help()}
  On that layout evaluation follows TOFU's published protocol (first 300 forget questions,
  first 300 retain_perturbed rows); any other layout scores every forget question."""


class UserError(Exception):
    """An error caused by the user's input: printed as one line, exit code 2."""


def write_json(path: str | None, payload: dict) -> None:
    """Write payload to `path` as JSON when a path is given."""
    if path:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, indent=2)
        print(f"wrote {path}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m engine", description="Token-level unlearning workbench.",
                                     epilog=NAMES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"engine.cli.{name.replace('-', '_')}")
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP, epilog=NAMES_HELP,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    from ..data import DataError
    from ..models import ModelLoadError

    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except (UserError, DataError, ModelLoadError, KeyError, ValueError) as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"error: {msg}", file=sys.stderr)
        return 2
