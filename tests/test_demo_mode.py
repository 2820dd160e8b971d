"""Issue 25, point 5: a demo mode that is safe on a network (ui/access.py, app.py).

- a non-loopback --host without logins is refused (exit 2); logins come from --auth-file or
  $WORKBENCH_AUTH, never the command line;
- with logins on, every API route refuses a request without a session (HTTP to 127.0.0.1);
- --viewer: every writing endpoint refuses in the server even when called directly through
  gradio_client, the read endpoints answer, and the store is left byte-identical;
- in a real browser, a viewer cannot start a run.
The server is always bound to 127.0.0.1 here.
"""
from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import pytest

# the writing endpoints of the app today (the guard is deny-by-default: any handler not listed
# as read-only in ui/access.READ_ONLY refuses, these included)
WRITING = ["run_start", "run_stop", "mask_set_create", "mask_set_duplicate", "mask_set_rename", "mask_set_delete",
           "mask_set_import", "mask_set_bulk", "masks_import", "edit_apply", "review_accept", "review_next",
           "rules_add_target", "rules_add_never", "rules_remove", "retain_model_set", "fit_atwu",
           "smollm2_setup"]
READING = ["explore_render", "compare_refresh", "run_status", "mask_sets"]


# ---------------------------------------------------------------- exposure and logins

@pytest.mark.parametrize("host,expected", [("127.0.0.1", True), ("127.8.9.1", True), ("::1", True),
                                           ("localhost", True), ("0.0.0.0", False), ("192.168.1.20", False),
                                           ("::", False)])
def test_loopback_addresses(host, expected):
    from ui.access import loopback

    assert loopback(host) is expected


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::"])
def test_a_network_address_without_logins_is_refused_before_anything_starts(host, capsys, monkeypatch):
    import app

    monkeypatch.delenv("WORKBENCH_AUTH", raising=False)
    monkeypatch.setattr(app, "build_demo", lambda **k: pytest.fail("the app must not be built"))
    assert app.main(["--host", host]) == 2
    err = capsys.readouterr().err
    assert f"--host {host}" in err and "--auth-file" in err and "WORKBENCH_AUTH" in err


def test_no_password_option_on_the_command_line(capsys):
    import app

    with pytest.raises(SystemExit):
        app.parse_args(["--password", "x"])
    assert "--password" not in app.parse_args.__doc__ if app.parse_args.__doc__ else True


def test_logins_from_a_file_and_from_the_environment(tmp_path):
    from ui.access import checker, read_auth

    f = tmp_path / "logins"
    f.write_text("# demo accounts\nguest:se:cret\n\nlead:pw2\n")
    assert read_auth(f, {}) == [("guest", "se:cret"), ("lead", "pw2")]
    assert read_auth(None, {"WORKBENCH_AUTH": "a:b,c:d"}) == [("a", "b"), ("c", "d")]
    assert read_auth(None, {}) == []
    check = checker(read_auth(f, {}))
    assert check("guest", "se:cret") and check("lead", "pw2")
    assert not check("guest", "pw2") and not check("", "") and not check("guest", "se:cre")


@pytest.mark.parametrize("text", ["nocolon\n", ":pw\n", "user:\n", "# only a comment\n"])
def test_a_bad_auth_file_names_file_and_line(tmp_path, text):
    from ui.access import read_auth

    f = tmp_path / "logins"
    f.write_text(text)
    with pytest.raises(ValueError, match=str(f)):
        read_auth(f, {})


# ---------------------------------------------------------------- served apps (127.0.0.1 only)

LOGIN = ("guest", "s3cret-demo")


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    from benchmarks.harness import isolated_home

    with isolated_home(tmp_path_factory.mktemp("home")) as h:
        yield h


def _serve(demo, logins=None):
    import app
    from benchmarks.harness import free_port

    port = free_port()
    _, url, _ = app.launch(demo, port=port, host="127.0.0.1", logins=logins, prevent_thread_lock=True, quiet=True)
    return url.rstrip("/")


@pytest.fixture(scope="module")
def auth_app(home):
    import app

    demo = app.build_demo(home / "auth.sqlite")
    url = _serve(demo, [LOGIN])
    try:
        yield url, demo
    finally:
        demo.close()


def _status(url: str, method: str = "GET", body: dict | None = None, cookie: str | None = None) -> int:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    if cookie:
        req.add_header("Cookie", cookie)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status
    except urllib.error.HTTPError as err:
        return err.code


def test_with_logins_every_api_route_refuses_an_unauthenticated_request(auth_app):
    url, demo = auth_app
    names = sorted({f.api_name for f in demo.fns.values() if f.api_name})
    assert set(WRITING + READING) <= set(names)
    refused = {}
    for name in names:
        for route in (f"/gradio_api/call/{name}", f"/gradio_api/run/{name}"):
            refused[route] = _status(url + route, "POST", {"data": []})
    for route, method, body in [("/gradio_api/info", "GET", None), ("/config", "GET", None),
                                ("/gradio_api/queue/join", "POST", {"data": [], "fn_index": 0, "session_hash": "x"}),
                                ("/gradio_api/upload", "POST", {}), ("/gradio_api/file=app.py", "GET", None)]:
        refused[route] = _status(url + route, method, body)
    allowed = {route: code for route, code in refused.items() if code not in (401, 403)}
    assert allowed == {}, allowed


def test_with_logins_a_logged_in_client_gets_through(auth_app):
    from gradio_client import Client

    url, _ = auth_app
    with pytest.raises(Exception):
        Client(url, verbose=False, auth=("guest", "wrong"))
    client = Client(url, verbose=False, auth=LOGIN)
    assert "run" in json.dumps(client.predict(api_name="/run_status"))


@pytest.fixture(scope="module")
def viewer_app(home):
    import app
    from engine.store import Store

    path = home / "viewer.sqlite"
    s = Store(path)  # something to show: one finished run and one mask set
    run = s.create_run({"model": "demo", "data": "demo", "loss": "ga", "epochs": 1}, None)
    s.add_epoch_metrics(run, 1, 3, {"forget_quality": 0.5})
    s.finish_run(run, "finished")
    s.create_mask_set("shown-set", "demo", "demo", "fp", "all", {"demo:1": ("h", [0, 1, 1])})
    import sqlite3

    conn = sqlite3.connect(path)  # the whole store in the main file: its bytes are the state
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    demo = app.build_demo(path, viewer=True)
    url = _serve(demo)
    try:
        yield url, demo, path
    finally:
        demo.close()


def _args_for(demo, api_name: str) -> int:
    fn = next(f for f in demo.fns.values() if f.api_name == api_name)
    return len(fn.inputs)


def test_viewer_refuses_every_writing_endpoint_called_directly(viewer_app):
    from gradio_client import Client

    from ui.access import READ_ONLY, handler_name

    url, demo, path = viewer_app
    before = path.read_bytes()
    client = Client(url, verbose=False)
    public = {f.api_name for f in demo.fns.values() if f.api_name and f.api_visibility == "public"}
    writing = sorted(public - set(READING) - {n for n in public if _reads(demo, n)})
    assert set(WRITING) <= set(writing)
    outcomes = {}
    for name in writing:
        try:
            client.predict(*[None] * _args_for(demo, name), api_name=f"/{name}")
            outcomes[name] = "answered"
        except Exception as err:  # noqa: BLE001 - the refusal arrives as the client's AppError
            outcomes[name] = "refused" if "read-only viewer" in str(err) else f"other: {err}"
    assert {n: o for n, o in outcomes.items() if o != "refused"} == {}
    from engine.store import Store

    assert path.read_bytes() == before  # nothing written: no run, no mask-set change, no pairing
    assert [r.status for r in Store(path).list_runs()] == ["finished"]
    assert READ_ONLY and all(handler_name(f.fn) != "x" for f in demo.fns.values())


def _reads(demo, name: str) -> bool:
    """True when the endpoint's handler (as built, before the guard) is a read-only one: read
    from the list itself, so the test covers exactly what the guard lets through."""
    fn = next(f for f in demo.fns.values() if f.api_name == name)
    return getattr(fn.fn, "__name__", "") != "viewer_refused"


def test_viewer_still_explores_compares_and_lists(viewer_app):
    from gradio_client import Client

    url, demo, _ = viewer_app
    client = Client(url, verbose=False)
    status = client.predict(api_name="/run_status")
    assert "finished" in json.dumps(status)
    sets = client.predict(None, api_name="/mask_sets")
    assert "shown-set" in json.dumps(sets)


def test_viewer_store_refuses_writes_even_below_the_handlers(viewer_app):
    from engine.store import StoreError

    _, demo, _ = viewer_app
    with pytest.raises(StoreError, match="read-only viewer"):
        demo.wb_context.store.create_run({"model": "demo"}, None)


# ---------------------------------------------------------------- a real browser

CHROMIUM = "/usr/bin/chromium"


@pytest.mark.skipif(not Path(CHROMIUM).exists() and not shutil.which("chromium"), reason="no system chromium")
def test_a_viewer_cannot_start_a_run_in_the_browser(viewer_app):
    from playwright.sync_api import expect, sync_playwright

    url, demo, path = viewer_app
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
                              args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            page = b.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(90_000)
            page.goto(url)
            page.wait_for_selector("text=read-only viewer")
            page.get_by_role("tab", name="Run").click()
            page.wait_for_selector("#run-start", state="visible")
            page.click("#run-start")
            expect(page.get_by_text("read-only viewer", exact=False).last).to_be_visible()
        finally:
            b.close()
    from engine.store import Store

    assert [r.id for r in Store(path).list_runs()] == [1]  # the one run recorded before: none started


def test_a_writer_wrapped_in_a_read_only_wrapper_is_not_let_through():
    from ui.access import READ_ONLY, handler_name
    from ui.edit_tab import EditHandlers, _with_scale

    assert handler_name(_with_scale(EditHandlers.view)) in READ_ONLY
    assert handler_name(_with_scale(EditHandlers.create)) not in READ_ONLY
