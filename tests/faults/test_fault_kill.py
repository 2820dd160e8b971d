"""kill -9 in each phase of an unlearning run (scoring, step-0 evaluation, training, checkpoint
write) and Ctrl-C once / twice, each in a real process running the CLI (`engine.cli.main`).

Each child patches the function at its phase boundary to write a marker file and wait (no hook
in the product code); the test then kills it. One parent imports the engine once and forks the
children (ZYGOTE), so six runs cost about one start-up. Afterwards: the store opens and passes
`quick_check`, the killed run is marked 'interrupted' by `mark_stale_runs`, and the earlier run,
its checkpoint folder and the mask set are byte-identical."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from faultkit import snapshot

REPO = Path(__file__).resolve().parents[2]

# One process imports the engine once, then forks a child per phase: each child sets its own
# WORKBENCH_HOME and output files, patches its phase boundary and runs the CLI; the parent
# writes each child's wait status to <home>/status when it ends.
ZYGOTE = r"""
import json, os, sys, time
import torch
torch.set_num_threads(1)
import engine.train.checkpoint, engine.train.loop, engine.selectors
from engine.cli import build_parser, main
build_parser()  # imports every command module
from transformers import GPT2LMHeadModel  # noqa: F401

def hold(marker, phase):
    def wait(*args, **kwargs):
        open(marker, "w").write(phase)
        while True:
            time.sleep(0.05)
    return wait

def child(phase, home, argv):
    os.environ["WORKBENCH_HOME"] = home
    for fd, name in ((1, "out.txt"), (2, "err.txt")):
        os.dup2(os.open(os.path.join(home, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
    marker = os.path.join(home, "marker")
    if phase == "scoring":
        engine.selectors.select = hold(marker, phase)
    elif phase == "eval0":
        engine.train.loop.evaluate_state = hold(marker, phase)
    elif phase in ("training", "ctrl-c-twice"):
        engine.train.loop.step = hold(marker, phase)
    elif phase == "checkpoint":
        engine.train.checkpoint._swap_into_place = hold(marker, phase)
    elif phase == "ctrl-c-once":
        real = engine.train.loop.step

        def slow(state, micro):
            open(marker, "w").write(phase)
            time.sleep(0.2)
            return real(state, micro)

        engine.train.loop.step = slow
    code = main(argv)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)

jobs = json.loads(sys.argv[1])
pids = {}
for phase, home, argv in jobs:
    pid = os.fork()
    if pid == 0:
        child(phase, home, argv)
    pids[pid] = home
    open(os.path.join(home, "pid"), "w").write(str(pid))
while pids:
    pid, status = os.wait()
    home = pids.pop(pid)
    code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    open(os.path.join(home, "status"), "w").write(str(code))
"""

PHASES = ["scoring", "eval0", "training", "checkpoint", "ctrl-c-once", "ctrl-c-twice"]


def _earlier_state(home: Path) -> dict:
    """A finished run with a checkpoint folder and a mask set, as an earlier session left them."""
    from engine.store import Store

    store = Store(home / "store.sqlite")
    run = store.create_run({"model": "old", "data": "old", "loss": "ga", "epochs": 1}, None)
    store.add_epoch_metrics(run, 1, 2, {"forget_quality": 0.5})
    folder = home / "runs" / store.run_folder(run)
    (folder / "final").mkdir(parents=True)
    (folder / "final" / "model.safetensors").write_bytes(os.urandom(4096))
    store.set_checkpoint(run, "final", str(folder / "final"), 1)
    store.finish_run(run, "finished")
    store.create_mask_set("kept", "old", "old", "fp", masks={"a": ("h", [0, 1, 1, 0])})
    return {"run": store.get_run(run), "folder": folder, "files": snapshot(folder),
            "mask_set": store.export_mask_set("kept")}


@pytest.fixture(scope="module")
def killed(tmp_path_factory, model_dir):
    """{phase: (home, earlier state, exit code, stdout, stderr)} after each child was stopped."""
    from faultkit import FORGET, RETAIN, write_split

    jobs, homes = [], {}
    for phase in PHASES:
        home = tmp_path_factory.mktemp(phase)
        write_split(home / "data", "forget10", FORGET)
        write_split(home / "data", "retain90", RETAIN)
        homes[phase] = (home, _earlier_state(home))
        argv = ["unlearn", "--model", model_dir, "--data", home / "data", "--loss", "ga", "--device", "cpu",
                "--batch-size", "2", "--epochs", "40" if phase.startswith("ctrl") else "1"]
        if phase != "eval0":
            argv.append("--no-eval")
        jobs.append([phase, str(home), [str(a) for a in argv]])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    zygote = subprocess.Popen([sys.executable, "-c", ZYGOTE, json.dumps(jobs)], cwd=REPO, env=env)
    try:
        deadline = time.time() + 240
        pending = dict(homes)
        while pending:
            assert time.time() < deadline, f"never reached: {sorted(pending)}"
            assert zygote.poll() is None or not pending, "the parent of the runs ended early"
            for phase, (home, _) in list(pending.items()):
                if (home / "status").exists():
                    pending.pop(phase)  # ended by itself: the test of its phase reports it
                elif (home / "marker").exists():
                    pending.pop(phase)
                    _stop(phase, int((home / "pid").read_text()), home)
            time.sleep(0.1)
        zygote.wait(timeout=60)
    finally:
        if zygote.poll() is None:
            for home, _ in homes.values():
                if (home / "pid").exists() and not (home / "status").exists():
                    os.kill(int((home / "pid").read_text()), signal.SIGKILL)
            zygote.kill()
            zygote.wait()
    return {phase: (home, before, int((home / "status").read_text()), (home / "out.txt").read_text(),
                    (home / "err.txt").read_text()) for phase, (home, before) in homes.items()}


def _stop(phase: str, pid: int, home: Path) -> None:
    if not phase.startswith("ctrl"):
        os.kill(pid, signal.SIGKILL)
        return
    os.kill(pid, signal.SIGINT)
    if phase == "ctrl-c-twice":
        deadline = time.time() + 30
        while "cancelling" not in (home / "err.txt").read_text() and time.time() < deadline:
            time.sleep(0.05)
        os.kill(pid, signal.SIGINT)


def _nothing_lost(home: Path, before: dict):
    import sqlite3

    from engine.store import Store

    conn = sqlite3.connect(home / "store.sqlite")
    assert conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    conn.close()
    store = Store(home / "store.sqlite")
    assert store.get_run(before["run"].id) == before["run"]
    assert snapshot(before["folder"]) == before["files"]
    assert store.export_mask_set("kept") == before["mask_set"]
    return store


@pytest.mark.parametrize("phase", ["scoring", "eval0", "training", "checkpoint"])
def test_kill_9_in_each_phase_loses_nothing(killed, phase):
    home, before, code, out, err = killed[phase]
    assert code == -signal.SIGKILL, err
    store = _nothing_lost(home, before)
    runs = store.list_runs()
    if phase == "scoring":  # killed before the run was recorded
        assert [r.id for r in runs] == [before["run"].id] and store.mark_stale_runs() == []
        return
    new = runs[-1]
    assert new.status == "running" and store.mark_stale_runs() == [new.id]
    assert store.get_run(new.id).status == "interrupted"
    if phase == "eval0":
        assert new.metrics == []  # killed inside the step-0 evaluation: nothing half-recorded
    if phase == "checkpoint":  # the new checkpoint was complete in final.tmp, never visible as final
        folder = home / "runs" / new.folder
        assert (folder / "final.tmp" / "model.safetensors").is_file() and not (folder / "final").exists()
        assert new.checkpoints == {}


def test_ctrl_c_once_cancels_at_the_next_step_and_says_so(killed):
    home, before, code, out, err = killed["ctrl-c-once"]
    assert code == 130 and "Traceback" not in err, err
    assert "cancelling: the run stops before its next step (press Ctrl-C again to stop at once)" in err
    store = _nothing_lost(home, before)
    new = store.list_runs()[-1]
    assert f"run {new.id}: cancelled" in out and new.status == "cancelled"
    assert len(new.metrics) < 40  # it did not run on to the end


def test_ctrl_c_twice_stops_at_once(killed):
    """The second press stops a step that would never end; the run is recorded as cancelled."""
    home, before, code, out, err = killed["ctrl-c-twice"]
    assert code == 130 and "Traceback" not in err, err
    assert err.rstrip().endswith("cancelled")
    store = _nothing_lost(home, before)
    new = store.list_runs()[-1]
    assert new.status == "cancelled" and new.error == "stopped at once (Ctrl-C twice)"
