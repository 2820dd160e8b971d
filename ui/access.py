"""Who may reach the app and what a viewer may do (issue 25: demos on a network).

- `loopback(host)`: whether an address only this machine can reach (127.0.0.0/8, ::1, localhost).
- `read_auth(auth_file, environ)`: logins from a file (`user:password` per line, `#` comments) or
  the environment variable WORKBENCH_AUTH (`user:password`, several separated by commas); never
  from the command line, where every user of the machine could read it (`ps`).
- `check_exposure(host, logins)`: a non-loopback address without logins is refused.
- `guard_viewer(demo)`: the read-only workbench. Every event handler of the Blocks whose function
  is not on the READ_ONLY list is replaced, in the server, by one that refuses ("read-only
  viewer"), so a writing endpoint refuses whether it is clicked, hidden or called directly (API,
  gradio_client); deny by default, so a handler added later is refused until it is listed here.
  The store is also switched to read-only, a second guard under the first.
"""
from __future__ import annotations

import hmac
import inspect
import ipaddress
import os
import socket
from pathlib import Path
from typing import Callable, Mapping

AUTH_ENV = "WORKBENCH_AUTH"
VIEWER_REFUSAL = "read-only viewer: this workbench is shown to look at; starting runs, editing, deleting and importing are off"

# module.qualname of the handlers a viewer may run: they read the store, render, generate or
# compute, and write nothing (the store, a mask set, a run, a scorer or the retain pairing).
READ_ONLY = frozenset({
    "app._bootstrap_status", "__main__._bootstrap_status",
    "ui.context.retain_box", "ui.context.prompt_format_line",
    "ui.explore_tab.ExploreHandlers.render", "ui.explore_tab.ExploreHandlers.goto",
    "ui.explore_tab.ExploreHandlers.search", "ui.explore_tab._match_index", "ui.explore_tab.build.<locals>.<lambda>",
    "ui.explore_tab.ExploreHandlers.render_live", "ui.explore_tab.ExploreHandlers.export",
    "ui.explore_tab.ExploreHandlers.other_choices", "app._running_top", "ui.context.prompt_format_choice",
    "ui.compare_tab.build.<locals>.<lambda>",
    "ui.edit_tab._with_scale.<locals>.fn(ui.edit_tab.EditHandlers.view)", "ui.edit_tab.EditHandlers.choices", "ui.edit_tab.EditHandlers.export",
    "ui.edit_tab._step", "ui.edit_tab._row_index", "ui.edit_tab._hide", "ui.edit_tab._source",
    "ui.review_queue.ReviewHandlers.counter", "ui.review_queue.ReviewHandlers.api_queue",
    "ui.live_accuracy.AccuracyHandlers.api", "ui.live_accuracy.AccuracyHandlers.panel",
    "ui.edit_rules.RuleHandlers.api_rules",
    "ui.mask_interop.InteropHandlers.export",
    "ui.run_tab.RunHandlers.poll", "ui.run_tab.RunHandlers.status_json", "ui.run_tab.RunHandlers.restore",
    "ui.leak_panel.LeakHandlers.check", "ui.leak_panel.LeakHandlers.target_choices",
    "ui.compare_tab.CompareHandlers.refresh", "ui.compare_tab.CompareHandlers.references",
    "ui.compare_tab.CompareHandlers.csv", "ui.compare_tab.CompareHandlers.before_after",
    "ui.model_setup.poll", "ui.model_setup.refresh_models",
})


def handler_name(fn: Callable | None) -> str:
    """'module.qualname' of an event's function (through functools.partial); a wrapper closing
    over functions names them too, 'wrapper(module.qualname)', so wrapping a writer in a
    read-only wrapper's name does not let it through."""
    base = fn
    while hasattr(base, "func"):
        base = base.func
    name = f"{getattr(base, '__module__', '?')}.{getattr(base, '__qualname__', repr(base))}"
    inner = [handler_name(c.cell_contents) for c in (getattr(base, "__closure__", None) or ())
             if inspect.isfunction(_cell(c)) or inspect.ismethod(_cell(c))]
    return f"{name}({', '.join(inner)})" if inner else name


def _cell(cell):
    try:
        return cell.cell_contents
    except ValueError:  # an empty cell
        return None


def loopback(host: str) -> bool:
    """True for an address only this machine can reach."""
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(ipaddress.ip_address(info[4][0]).is_loopback for info in socket.getaddrinfo(host, None))
        except OSError:
            return False


def _parse_logins(text: str, source: str, sep: str) -> list[tuple[str, str]]:
    logins = []
    for number, line in enumerate(text.split(sep), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, colon, password = line.partition(":")
        where = f"{source}:{number}" if sep == "\n" else source
        if not colon or not user.strip() or not password:
            raise ValueError(f"{where}: expected user:password (a non-empty user and password)")
        logins.append((user.strip(), password))
    return logins


def read_auth(auth_file: str | os.PathLike | None, environ: Mapping[str, str] = os.environ) -> list[tuple[str, str]]:
    """(user, password) pairs from `auth_file` or else $WORKBENCH_AUTH; [] when neither is set."""
    if auth_file:
        path = Path(auth_file).expanduser()
        if not path.is_file():
            raise ValueError(f"--auth-file {auth_file}: no such file (lines of user:password)")
        logins = _parse_logins(path.read_text(encoding="utf-8"), str(path), "\n")
        if not logins:
            raise ValueError(f"--auth-file {auth_file}: no user:password line")
        return logins
    value = environ.get(AUTH_ENV, "")
    return _parse_logins(value, f"${AUTH_ENV}", ",") if value.strip() else []


def checker(logins: list[tuple[str, str]]) -> Callable[[str, str], bool]:
    """Gradio's auth function: constant-time comparison against every login."""
    def check(user: str, password: str) -> bool:
        ok = False
        for u, p in logins:
            ok |= hmac.compare_digest(u.encode(), (user or "").encode()) & hmac.compare_digest(
                p.encode(), (password or "").encode())
        return bool(ok)
    return check


def check_exposure(host: str, logins: list[tuple[str, str]]) -> None:
    """ValueError for a non-loopback address without logins."""
    if not loopback(host) and not logins:
        raise ValueError(f"--host {host} is reachable from other machines: give logins with --auth-file FILE "
                         f"(lines of user:password) or ${AUTH_ENV}=user:password (never a password on the "
                         f"command line), or serve on 127.0.0.1")


def _refuse(name: str) -> Callable:
    def refused(*args, **kwargs):
        import gradio as gr  # deferred: gradio

        raise gr.Error(f"{VIEWER_REFUSAL} ({name.rsplit('.', 1)[-1]})")
    refused.__name__ = "viewer_refused"
    return refused


def guard_viewer(demo, ctx=None) -> list[str]:
    """Make `demo` a read-only viewer in the server: every handler not in READ_ONLY refuses.
    Returns the api names refused; `ctx.store` becomes read-only too."""
    refused = []
    for block_fn in demo.fns.values():
        name = handler_name(block_fn.fn)
        if block_fn.fn is None or name in READ_ONLY:
            continue
        block_fn.fn = _refuse(name)
        refused.append(block_fn.api_name or name)
    if ctx is not None:
        ctx.store.read_only = True
        ctx.store.read_only_reason = "the app serves a read-only viewer (--viewer)"
    demo.wb_viewer = True
    return refused
