"""The app's first-start bootstrap runs `python -m engine setup --progress-lines` in a child
process and relays its progress lines (issue 12: the in-process build shared the GIL with the
server). The child here is a stand-in script, so the test takes a second, not a build."""
from __future__ import annotations

import sys

from engine.cli.setup import PROGRESS_PREFIX
from ui.context import Bootstrap

CHILD = f"""
import sys
print("{PROGRESS_PREFIX}0.2500 training target model: epoch 1/20", flush=True)
print("some other output", flush=True)
print("{PROGRESS_PREFIX}0.7500 training retain model", flush=True)
sys.exit(int(sys.argv[1]))
"""


def test_child_progress_lines_are_relayed():
    seen = []
    b = Bootstrap()
    b.command = (sys.executable, "-c", CHILD, "0")
    b.update = lambda fraction, message: seen.append((fraction, message))
    b._build_in_child()
    assert seen == [(0.25, "training target model: epoch 1/20"), (0.75, "training retain model")]


def test_a_failing_child_is_reported_with_its_last_error_line(monkeypatch):
    import ui.context as context

    monkeypatch.setattr(context, "builtin_is_current", lambda: False)
    b = Bootstrap()
    b.command = (sys.executable, "-c", CHILD + "\n", "3")
    b.update = lambda fraction, message: None
    b._build()
    assert b.done and b.error is not None and "exited with 3" in b.error
