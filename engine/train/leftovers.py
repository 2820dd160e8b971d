"""Leftovers of a killed run, cleaned at the next start (issue 25): a checkpoint write killed
mid-way leaves `<kind>.tmp` (a partial copy, never used) and, killed during the swap,
`<kind>.old` (the previous whole checkpoint, renamed aside: engine.train.checkpoint._swap_into_place).

`clean_leftovers(store)`: in the folder of every run that is not running (a live process's
folder is never touched), remove `*.tmp` folders, and put a `<kind>.old` back as `<kind>` when
`<kind>` is missing (else remove it). Returns the paths it removed or restored."""
from __future__ import annotations

import shutil
from pathlib import Path

from .. import paths


def clean_leftovers(store) -> list[Path]:
    try:
        store.mark_stale_runs()  # a run whose process is gone is 'interrupted', not 'running'
    except Exception:  # noqa: BLE001 - a read-only store: its 'running' runs are left as they are
        pass
    root = paths.runs_dir(store.path)
    running = {r.folder or str(r.id) for r in store.list_runs() if r.status == "running"}
    done: list[Path] = []
    if not root.is_dir():
        return done
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and p.name not in running):
        for tmp in sorted(folder.glob("*.tmp")):
            if tmp.is_dir() and not tmp.is_symlink():
                shutil.rmtree(tmp, ignore_errors=True)
                done.append(tmp)
        for old in sorted(folder.glob("*.old")):
            if not old.is_dir() or old.is_symlink():
                continue
            whole = old.with_name(old.name[: -len(".old")])
            try:
                if whole.exists():
                    shutil.rmtree(old, ignore_errors=True)
                else:
                    old.rename(whole)
            except OSError:  # another process cleaned it first
                continue
            done.append(old)
    return done
