"""The model bar's "set up SmolLM2" action (ui/model_setup.py) through gradio_client: the setup runs
as a child process (`python -m engine setup --model smollm2 --progress-lines --gguf PATH`) on a
TINY llama GGUF written here with gguf's writer (tests/test_smollm2_setup.py), so nothing is
downloaded; its progress lines reach the app, the engine's refusal (a wrong hash) is shown, and
`smollm2` is then a model the bar offers. A read-only viewer refuses the setup (tests/test_demo_mode.py)."""
from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("gguf")

from test_smollm2_setup import write_tiny_gguf  # noqa: E402

# the real CLI in the child, with the pinned GGUF hash swapped for the tiny file's (argv[1]): the
# only difference from the app's own command, which the wrong-hash test runs unchanged
CHILD = ("import sys\nimport engine.models.smollm2 as m\nm.GGUF_SHA256 = sys.argv[1]\n"
         "from engine.cli import main\nraise SystemExit(main(sys.argv[2:]))\n")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("gguf") / "tiny.gguf"
    write_tiny_gguf(path)
    return path


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny):
    """(client, the app's SmolSetup, home) of one app on a temporary workbench home."""
    from gradio_client import Client

    import app
    from benchmarks.harness import isolated_home, serve

    with isolated_home(tmp_path_factory.mktemp("home")) as home:
        demo = app.build_demo(home / "store.sqlite")
        with serve(demo) as url:
            yield Client(url, verbose=False), demo.wb_smol_setup, home


def _finish(client, timeout: float = 600) -> str:
    """Poll the status endpoint (as the page's timer does) until the setup has ended; its HTML."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        html = client.predict(api_name="/smollm2_setup_status")[0]
        if "wb-smol-progress" not in html and html:
            return html
        time.sleep(0.5)
    raise AssertionError("the setup did not end")


def test_a_wrong_hash_is_refused_with_the_engines_message_and_nothing_is_offered(served, tiny):
    from engine.resolve import model_choices

    client, setup, home = served
    client.predict(str(tiny), api_name="/smollm2_setup")  # the app's own command: the pinned hash
    html = _finish(client)
    assert "SmolLM2 setup failed" in html and "is not the pinned" in html and str(tiny) in html
    assert not (home / "cache" / "smollm2").exists()
    assert "smollm2" not in model_choices()


def test_a_local_gguf_is_converted_with_progress_and_offered(served, tiny, monkeypatch):
    from engine.resolve import model_choices

    client, setup, home = served
    sha = hashlib.sha256(tiny.read_bytes()).hexdigest()
    monkeypatch.setattr(setup, "command", (sys.executable, "-c", CHILD, sha, "setup", "--model", "smollm2",
                                           "--progress-lines"))
    seen = []
    monkeypatch.setattr(setup, "update", lambda f, m: seen.append((f, m)))
    client.predict(str(tiny), api_name="/smollm2_setup")
    html = _finish(client)
    assert "is set up" in html, html
    out = home / "cache" / "smollm2"
    # the engine's progress lines, relayed from the child: converting the given file, then ready
    assert seen[0] == (0.1, f"converting {tiny}") and seen[-1] == (1.0, f"smollm2 ready at {out}"), seen
    assert (out / "model.safetensors").is_file()
    assert "smollm2" in model_choices()


def test_a_second_click_while_running_starts_no_second_child(tmp_path):
    from ui.model_setup import SmolSetup

    setup = SmolSetup()
    setup.command = (sys.executable, "-c", "import time; time.sleep(3)")
    assert setup.start("") is True
    assert setup.start("") is False  # one at a time
    while setup.running:
        time.sleep(0.1)
    assert setup.finished and setup.error is None


def test_a_viewer_app_refuses_the_setup_in_the_server(tmp_path, tiny):
    import gradio as gr

    import app
    from benchmarks.harness import isolated_home

    with isolated_home(tmp_path / "home") as home:
        demo = app.build_demo(home / "store.sqlite", viewer=True)
        fn = next(f for f in demo.fns.values() if f.api_name == "smollm2_setup")
        with pytest.raises(gr.Error, match="read-only viewer"):
            fn.fn(str(tiny))
        assert not demo.wb_smol_setup.running and not demo.wb_smol_setup.finished  # no child started
        assert not (home / "cache" / "smollm2").exists()


def test_page_load_offers_the_preset_pair_once_it_exists(served):
    from engine.presets import model_paths
    from ui.model_setup import refresh_models

    client, setup, home = served
    assert "smollm2-tofu" not in refresh_models()["choices"]
    paths = model_paths()
    assert str(paths["smollm2-tofu"]).startswith(str(home))  # the temporary home, not the real cache
    for p in paths.values():
        p.mkdir(parents=True)
    choices = refresh_models()["choices"]
    assert "smollm2-tofu" in choices and "smollm2-tofu-retain" in choices
