"""Shared fixtures: the built-in models (built once per run, cached under WORKBENCH_HOME) and a
tiny GPT-2 (2 layers, 32 dims) with the built-in tokenizer, built in memory for unit tests."""
from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest
import torch


@pytest.fixture(scope="session")
def builtin():
    """BuiltinPaths of the cached built-in benchmark and models (built on first use)."""
    from engine.models.builtin import ensure_builtin

    return ensure_builtin(progress=lambda f, m: None)


@pytest.fixture(scope="session")
def builtin_tokenizer(builtin):
    from engine.models import load_tokenizer

    return load_tokenizer(builtin.target)


@pytest.fixture()
def tiny_model(builtin_tokenizer):
    """A fresh, seeded 2-layer, 32-dim GPT-2 over the built-in tokenizer (eval mode, CPU)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    tok = builtin_tokenizer
    cfg = GPT2Config(vocab_size=len(tok), n_positions=128, n_embd=32, n_layer=2, n_head=2,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                     eos_token_id=tok.eos_token_id, bos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    return GPT2LMHeadModel(cfg).eval()


@pytest.fixture(scope="module")
def app_env(tmp_path_factory):
    """(client, context, home) of one app launched in-process per test module, on a free port, with a
    temporary workbench home that links to the cached built-in models (benchmarks/harness.py)."""
    from gradio_client import Client

    import app
    from benchmarks.harness import isolated_home, serve

    with isolated_home(tmp_path_factory.mktemp("home")) as home:
        demo = app.build_demo(home / "store.sqlite")
        with serve(demo) as url:
            yield Client(url, verbose=False), demo.wb_context, home


@pytest.fixture(scope="module")
def client(app_env):
    return app_env[0]


@pytest.fixture(scope="module")
def ctx(app_env):
    return app_env[1]


@pytest.fixture()
def one_thread():
    """torch on one thread for the test: figures compared to 1e-6 must not depend on the thread
    count, and on a shared CPU a second spinning thread makes a tiny model's steps much slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture()
def tiny_env(tmp_path, monkeypatch, tiny_model, builtin_tokenizer, one_thread):
    """(model_dir, tmp_path): `tiny_model` saved with the built-in tokenizer; the store and run
    directories redirected into tmp_path (the CLI suites)."""
    from engine import paths

    model_dir = tmp_path / "tiny"
    tiny_model.save_pretrained(model_dir, safe_serialization=True)
    builtin_tokenizer.save_pretrained(model_dir)
    runs = tmp_path / "runs"
    runs.mkdir()
    monkeypatch.setattr(paths, "store_path", lambda: tmp_path / "store.sqlite")
    monkeypatch.setattr(paths, "runs_dir", lambda store=None: runs)
    return model_dir, tmp_path


@pytest.fixture(scope="module")
def target():
    """(model, tokenizer, benchmark, the retain model's truth ratios) of the built-in target on `demo`, one thread."""
    from engine.eval.full import reference_truth_ratios
    from engine.models import load_model
    from engine.resolve import load_data, model_path

    torch.set_num_threads(1)
    model, tok = load_model(model_path("demo"), "cpu")
    bench = load_data("demo")
    return model, tok, bench, reference_truth_ratios(model_path("demo-retain"), bench, "cpu")

