"""`masks`: mask sets from the command line, through the same service as the Edit tab
(engine.mask_sets.MaskSets): list, create from a selector, apply a selector to every sample,
add or remove a phrase rule, export and import."""
from __future__ import annotations

import json
from pathlib import Path

from .. import paths
from ..atomic import write_text_atomic
from ..masks.rules import Rule
from ..store import Store
from . import UserError, check_output

NAME = "masks"
HELP = ("mask sets, as the Edit tab makes them: list; --create NAME --selector S; --apply NAME --selector S "
        "[--keep-edited]; --add-rule NAME --phrase P [--never] [--whole-words]; --remove-rule NAME --rule N; "
        "--export NAME --json FILE; --import FILE [--name NAME]")


def add_arguments(p) -> None:
    what = p.add_mutually_exclusive_group()
    what.add_argument("--create", metavar="NAME", help="a new mask set from --selector's default masks")
    what.add_argument("--apply", metavar="NAME", help="apply --selector's default mask to every sample of the set")
    what.add_argument("--add-rule", metavar="NAME", help="add a phrase rule (--phrase) to the set, last")
    what.add_argument("--remove-rule", metavar="NAME", help="remove rule number --rule (1-based) and its effect")
    what.add_argument("--export", metavar="NAME", help="write the set as JSON (--json FILE)")
    what.add_argument("--import", dest="import_file", metavar="FILE", help="import an exported mask-set JSON file")
    p.add_argument("--model", default="demo", help="with --create: model name or local HF directory (default: demo)")
    p.add_argument("--data", default="demo", help="with --create: data name or TOFU directory (default: demo)")
    p.add_argument("--selector", default=None, help="with --create / --apply: the selector")
    p.add_argument("--keep-edited", action="store_true", help="with --apply: keep the hand-edited samples")
    p.add_argument("--phrase", default=None, help="with --add-rule: the phrase (case and spacing ignored)")
    p.add_argument("--never", action="store_true", help="with --add-rule: 'never a target' (default: a target)")
    p.add_argument("--whole-words", action="store_true", help="with --add-rule: match whole words only")
    p.add_argument("--rule", type=int, default=None, help="with --remove-rule: the rule's number (1-based)")
    p.add_argument("--json", metavar="FILE", help="with --export: the output file")
    p.add_argument("--name", default=None, help="with --import: the new set's name (default: the file's)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--store", default=None, help="SQLite store (default: the workbench's)")


def _need(value, flag: str, action: str):
    if value is None or value == "":
        raise UserError(f"{action} needs {flag}")
    return value


def run(args) -> int:
    from ..explore import ExploreService  # deferred: torch
    from ..mask_sets import MaskSets  # deferred: torch

    if args.export:
        check_output(_need(args.json, "--json FILE", "--export"), "--json")
    store = Store(Path(args.store) if args.store else paths.store_path())
    masks = MaskSets(store, ExploreService(device=args.device))
    if args.create:
        n = masks.create(args.create, _need(args.selector, "--selector", "--create"), args.model, args.data)
        print(f"mask set {args.create!r} created from {args.selector} ({n} samples)")
    elif args.apply:
        written, total = masks.bulk_apply(args.apply, _need(args.selector, "--selector", "--apply"), args.keep_edited)
        print(f"{args.selector} applied to {len(written)} of {total} samples"
              + (" (hand-edited samples kept)" if args.keep_edited else ""))
    elif args.add_rule:
        rule = Rule(_need(args.phrase, "--phrase", "--add-rule").strip(), not args.never, args.whole_words)
        written = masks.add_rule(args.add_rule, rule)
        print(f"rule {rule.phrase!r} ({'never a target' if args.never else 'target'}) added: "
              f"{len(written)} sample(s) changed")
    elif args.remove_rule:
        number = _need(args.rule, "--rule N", "--remove-rule")
        rule, written = masks.remove_rule(args.remove_rule, number - 1)
        print(f"rule {rule.phrase!r} removed: {len(written)} sample(s) changed")
    elif args.export:
        write_text_atomic(Path(args.json).expanduser(), json.dumps(masks.export(args.export), indent=1))
        print(f"wrote {args.json}")
    elif args.import_file:
        name = masks.import_file(Path(args.import_file), args.name)
        print(f"imported {args.import_file} as {name!r}")
    else:
        for m in store.list_mask_sets():
            print(f"{m.name}\t{m.model}\t{m.data}\t{m.source_selector or 'import'}\t"
                  f"{m.n_samples} samples, {m.n_edited} edited\tupdated {m.updated}")
    return 0
