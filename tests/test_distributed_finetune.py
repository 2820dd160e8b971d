"""`finetune` under torchrun: two CPU processes (gloo) train the same model as one process with the
same global batch (--effective-batch) and seed, with DDP and with FSDP; rank 0 alone saves and
reports. The runs use --staged, so the hand-over between stages (rank 0's weights to every rank)
is on the path, and an odd number of micro-batches, so the last step's padding is too."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from engine.data.synthetic import generate
from engine.models.finetune import rank_share

ROOT = Path(__file__).resolve().parent.parent
ARGS = ["--models", "target", "--staged", "--epochs", "2", "--vocab-size", "300", "--batch-size", "2",
        "--effective-batch", "4", "--lr", "3e-3", "--max-new-tokens", "4", "--device", "cpu"]


def test_rank_share_splits_a_step_and_pads_the_short_rank():
    group = [[0, 1], [2, 3], [4]]
    assert rank_share(group, 0, 2) == [([0, 1], 2), ([4], 2)]
    assert rank_share(group, 1, 2) == [([2, 3], 2), ([0, 1], 0)]  # padded: weight 0, same number of passes
    assert rank_share(group, 0, 1) == [([0, 1], 1), ([2, 3], 1), ([4], 1)]  # one process: the plain mean
    # the weights over both ranks, averaged by DDP, give each micro-batch 1 / len(group)
    per_batch = {}
    for r in (0, 1):
        for idx, w in rank_share(group, r, 2):
            per_batch[tuple(idx)] = per_batch.get(tuple(idx), 0) + w / len(group) / 2
    assert per_batch == {(0, 1): pytest.approx(1 / 3), (2, 3): pytest.approx(1 / 3), (4,): pytest.approx(1 / 3)}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tofu")
    rows = generate(0)
    for name, samples in (("forget10.json", rows["forget10"][:7]), ("retain90.json", rows["retain90"][:7])):
        (folder / name).write_text("".join(json.dumps({"question": s.question, "answer": s.answer}) + "\n"
                                           for s in samples))
    return folder


def _finetune(data: Path, out: Path, nproc: int, extra: list[str] = ()) -> subprocess.CompletedProcess:
    argv = ["finetune", "--data", str(data), "--out", str(out), *ARGS, *extra]
    cmd = [sys.executable, "-m", "engine", *argv] if nproc == 1 else \
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
         "-m", "engine", *argv]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def one_process(data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("one") / "models"
    done = _finetune(data, out, 1)
    assert (out / "target" / "model.safetensors").is_file(), done.stdout[-2000:] + done.stderr[-3000:]
    return out


def _initial(out: Path) -> dict:
    """The seeded fresh tiny GPT-2 every run starts from, rebuilt from the saved tokenizer and context."""
    from engine.models.finetune import tiny_gpt2
    from engine.models.loading import load_tokenizer

    tok = load_tokenizer(out / "target")
    n_ctx = json.loads((out / "target" / "config.json").read_text())["n_positions"]
    return {k: v.detach() for k, v in tiny_gpt2(tok, n_ctx).state_dict().items()}


@pytest.mark.parametrize("sharding", ["ddp", "fsdp"])
def test_two_processes_train_what_one_process_trains(data, one_process, tmp_path, sharding):
    out = tmp_path / "models"
    done = _finetune(data, out, 2, ["--sharding", sharding])
    assert (out / "target" / "model.safetensors").is_file(), done.stdout[-2000:] + done.stderr[-3000:]
    info = json.loads((out / "target" / "finetune.json").read_text())
    assert info["processes"] == 2 and info["sharding"] == sharding
    assert info["settings"]["grad_accum"] == 1  # effective batch 4 = 2 per micro-batch × 1 × 2 processes
    assert json.loads((one_process / "target" / "finetune.json").read_text())["settings"]["grad_accum"] == 2
    assert (out / "memorisation.json").is_file()  # rank 0 reported
    assert done.stdout.count("target model on the forget set") == 1  # once: the other rank does not report
    w1, w2 = load_file(str(one_process / "target" / "model.safetensors")), load_file(str(out / "target" / "model.safetensors"))
    assert set(w1) == set(w2)
    worst = max(float((w1[k] - w2[k]).abs().max()) for k in w1)
    assert worst <= 1e-4, worst
    start = _initial(one_process)
    moved = max(float((w1[k] - start[k]).abs().max()) for k in w1 if k in start)
    assert moved > 1e-3  # both trained: equal untrained weights would prove nothing
