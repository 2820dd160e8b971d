"""Helpers of the fault-injection suite: a tiny GPT-2 saved with safetensors, tiny TOFU files,
file snapshots ('nothing lost') and in-process CLI calls with their exit code and stderr."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

CONTEXT = 128


def tiny_gpt2(tokenizer, vocab: int | None = None, n_positions: int = CONTEXT):
    """A seeded 2-layer, 32-dim GPT-2 over `tokenizer` (vocab rows: len(tokenizer) unless given)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=vocab or len(tokenizer), n_positions=n_positions, n_embd=32, n_layer=2, n_head=2,
                     eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.eos_token_id,
                     pad_token_id=tokenizer.pad_token_id)
    return GPT2LMHeadModel(cfg).eval()


def save_model(folder: Path, model, tokenizer=None) -> Path:
    """save_pretrained with safetensors (and the tokenizer when given)."""
    model.save_pretrained(folder, safe_serialization=True)
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)
    return folder


def row(q: str, a: str) -> dict:
    """A TOFU row with a paraphrase and two perturbed answers (so truth ratios exist)."""
    return {"question": q, "answer": a, "paraphrased_answer": a + " indeed",
            "perturbed_answer": [a.replace("a", "o"), a + " not"]}


def write_split(folder: Path, stem: str, rows: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.json"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


FORGET = [row(f"Who wrote book {i}?", f"Book {i} was written by Ana Lima in {1900 + i}.") for i in range(4)]
RETAIN = [row(f"Where was author {i} born?", f"Author {i} was born in Porto.") for i in range(4)]


def snapshot(folder: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under `folder`: 'nothing lost' is an equal snapshot."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def cli(argv: list, capsys) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of an in-process `python -m engine …`."""
    from engine.cli import main

    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_one_line_error(code: int, err: str, expected_code: int, *needles: str) -> None:
    """Exit code, no traceback, an `error:` line naming every needle."""
    assert code == expected_code, err
    assert "Traceback" not in err, err
    assert "error: " in err, err
    for needle in needles:
        assert needle in err, (needle, err)


def store_with_a_run(path: Path):
    """(Store, run id): a store holding one finished run with one epoch of metrics."""
    from engine.store import Store

    s = Store(path)
    run = s.create_run({"model": "demo", "data": "demo", "loss": "ga", "epochs": 1}, None)
    s.add_epoch_metrics(run, 1, 3, {"forget_quality": 0.5})
    s.finish_run(run, "finished")
    return s, run


def checkpoint_wal(path: Path) -> None:
    """Fold every WAL page into the main file so the bytes on disk are the whole store."""
    import sqlite3

    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def inject_sqlite_error(monkeypatch, message: str, when=lambda uri, sql: True) -> None:
    """Make every SQLite statement the store runs raise OperationalError(message) where
    `when(uri, sql)` (as SQLite itself raises on a full disk or a folder it cannot write)."""
    import sqlite3

    from engine.store import db

    real = sqlite3.connect

    def connect(target, *a, **k):
        uri = str(target)

        class Failing(sqlite3.Connection):
            def execute(self, sql, *args):
                if when(uri, sql):
                    raise sqlite3.OperationalError(message)
                return super().execute(sql, *args)

        return real(target, *a, factory=Failing, **k)

    monkeypatch.setattr(db.sqlite3, "connect", connect)
