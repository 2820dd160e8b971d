"""Prompt formats across architectures: tiny random models of 17 configurations (Llama-2 chat/base,
Llama-3, Mistral, zephyr, Qwen2, Qwen3, Phi, Phi-3, Gemma, Gemma2, GPT-NeoX, OPT, GPT-2, Falcon, OLMo,
OLMo2), built in the test session with the built-in tokenizer plus a chat template and a BOS where
the family has them. Each goes through score, unlearn (full and LoRA, one step), checkpoint reload
and eval; the recorded format must be open-unlearning's for its family (engine/prompts.py), a
checkpoint's the same as its base's, and BOS must be kept where the tokenizer adds it."""
from __future__ import annotations

import copy
import json

import pytest
import torch

from engine.prompts import FAMILIES, FORMAT_FILE

SPECIALS = ["<bos>", "<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|im_start|>",
            "<|im_end|>", "<|user|>", "<|assistant|>", "<|system|>", "<|end|>", "<start_of_turn>", "<end_of_turn>"]

# the official templates' shapes (Llama-2-chat, Llama-3.1-Instruct, zephyr-7b-beta, Phi-3.5-mini-instruct,
# Qwen2.5 / SmolLM2 ChatML, gemma-it), small enough to read
LLAMA2_CHAT = ("{{ bos_token }}{% for m in messages %}{% if m.role == 'user' %}{{ '[INST] ' + m.content + ' [/INST]' }}"
               "{% elif m.role == 'assistant' %}{{ ' ' + m.content + ' ' + eos_token }}{% endif %}{% endfor %}")
LLAMA3 = ("{{ bos_token }}{% for m in messages %}{% if m.role == 'system' %}"
          "{{ '<|start_header_id|>system<|end_header_id|>\\n\\nCutting Knowledge Date: December 2023\\nToday Date: ' + "
          "(date_string if date_string is defined else strftime_now('%d %b %Y')) + '\\n\\n' + m.content + '<|eot_id|>' }}"
          "{% else %}{{ '<|start_header_id|>' + m.role + '<|end_header_id|>\\n\\n' + m.content + '<|eot_id|>' }}"
          "{% endif %}{% endfor %}{% if add_generation_prompt %}"
          "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}")
ZEPHYR = ("{% for m in messages %}{% if m.role == 'user' %}{{ '<|user|>\\n' + m.content + eos_token }}"
          "{% elif m.role == 'system' %}{{ '<|system|>\\n' + m.content + eos_token }}"
          "{% elif m.role == 'assistant' %}{{ '<|assistant|>\\n' + m.content + eos_token }}{% endif %}"
          "{% if loop.last and add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}{% endfor %}")
PHI3 = ("{% for m in messages %}{% if m.role == 'system' and m.content %}{{ '<|system|>\\n' + m.content + '<|end|>\\n' }}"
        "{% elif m.role == 'user' %}{{ '<|user|>\\n' + m.content + '<|end|>\\n' }}{% elif m.role == 'assistant' %}"
        "{{ '<|assistant|>\\n' + m.content + '<|end|>\\n' }}{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% else %}{{ eos_token }}{% endif %}")
CHATML = ("{% for m in messages %}{% if loop.first and m.role != 'system' %}"
          "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM<|im_end|>\\n' }}{% endif %}"
          "{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
GEMMA = ("{{ bos_token }}{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('no system role') }}"
         "{% endif %}{{ '<start_of_turn>' + ('model' if m.role == 'assistant' else m.role) + '\\n' + m.content + "
         "'<end_of_turn>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}")


def _llama_like(cls_name: str, **extra):
    def make(vocab: int, ids: dict):
        import transformers

        return getattr(transformers, cls_name)(vocab_size=vocab, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                               num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
                                               **ids, **extra)
    return make


def _cfg(cls_name: str, **kwargs):
    def make(vocab: int, ids: dict):
        import transformers

        return getattr(transformers, cls_name)(vocab_size=vocab, **kwargs, **ids)
    return make


# id: (config factory, BOS token the tokenizer adds or None, chat template or None, expected family)
ARCHS = {
    "llama2-chat": (_llama_like("LlamaConfig"), "<bos>", LLAMA2_CHAT, "llama2-chat"),
    "llama2-base": (_llama_like("LlamaConfig"), "<bos>", None, "llama2-base"),
    "llama3": (_llama_like("LlamaConfig"), "<|begin_of_text|>", LLAMA3, "llama3"),
    "mistral": (_llama_like("MistralConfig"), "<bos>", None, "base"),
    "zephyr": (_llama_like("MistralConfig"), "<bos>", ZEPHYR, "zephyr"),
    "qwen2": (_llama_like("Qwen2Config"), None, CHATML, "qwen2.5"),
    "qwen3": (_llama_like("Qwen3Config", head_dim=8), None, CHATML, "chat"),
    "phi": (_cfg("PhiConfig", hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                 max_position_embeddings=256), None, None, "phi"),
    "phi3": (_llama_like("Phi3Config", pad_token_id=None), None, PHI3, "phi3"),
    "gemma": (_llama_like("GemmaConfig", head_dim=8), "<bos>", GEMMA, "gemma-it"),
    "gemma2": (_llama_like("Gemma2Config", head_dim=8, sliding_window=64), "<bos>", None, "base"),
    "gpt-neox": (_cfg("GPTNeoXConfig", hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                      max_position_embeddings=256), None, None, "base"),
    "opt": (_cfg("OPTConfig", hidden_size=16, ffn_dim=32, num_hidden_layers=1, num_attention_heads=2,
                 word_embed_proj_dim=16, max_position_embeddings=256), None, None, "base"),
    "gpt2": (_cfg("GPT2Config", n_embd=16, n_layer=1, n_head=2, n_positions=256), None, None, "base"),
    "falcon": (_cfg("FalconConfig", hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                    max_position_embeddings=256), None, None, "base"),
    "olmo": (_llama_like("OlmoConfig"), None, None, "base"),
    "olmo2": (_llama_like("Olmo2Config"), None, CHATML, "chat"),  # SmolLM2-Instruct's ChatML on another body
}


@pytest.fixture(scope="module")
def world(tmp_path_factory, builtin):
    """(root, data dir, base tokenizer with the chat specials): 4 forget and 4 retain rows of the
    built-in data (with perturbed answers) and 3 rows of each utility set."""
    from transformers import AutoTokenizer

    root = tmp_path_factory.mktemp("matrix")
    data = root / "data"
    data.mkdir()
    src = builtin.data
    for name, out, n in (("forget01", "forget", 4), ("retain99", "retain", 4), ("real_authors", "real_authors", 3),
                         ("world_facts", "world_facts", 3)):
        rows = (src / f"{name}.json").read_text().splitlines()[:n]
        (data / f"{out}.json").write_text("\n".join(rows) + "\n")
    tok = AutoTokenizer.from_pretrained(str(builtin.target))
    tok.add_special_tokens({"additional_special_tokens": SPECIALS})
    return root, data, tok


def _tokenizer(base, bos: str | None, template: str | None):
    from tokenizers import processors

    tok = copy.deepcopy(base)
    if bos is not None:
        bos_id = tok.convert_tokens_to_ids(bos)
        tok.bos_token = bos
        tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A $B", special_tokens=[(bos, bos_id)])
    tok.chat_template = template
    return tok


def build(world, arch: str):
    """The model directory of `arch` (built once per module), saved with its tokenizer."""
    root, _, base = world
    out = root / "models" / arch
    if out.is_dir():
        return out
    make, bos, template, _ = ARCHS[arch]
    tok = _tokenizer(base, bos, template)
    ids = {"eos_token_id": tok.eos_token_id, "bos_token_id": tok.bos_token_id if bos else tok.eos_token_id}
    config = make(len(tok), ids)
    if getattr(config, "pad_token_id", None) is None or config.pad_token_id >= len(tok):
        config.pad_token_id = tok.pad_token_id
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out


@pytest.fixture()
def env(tmp_path, monkeypatch, one_thread):
    from engine import paths

    runs = tmp_path / "runs"
    runs.mkdir()
    monkeypatch.setattr(paths, "store_path", lambda: tmp_path / "store.sqlite")
    monkeypatch.setattr(paths, "runs_dir", lambda store=None: runs)
    from engine.prompts import clear_choices

    clear_choices()
    yield tmp_path
    clear_choices()


def _unlearn(model_dir, data, store, lora: bool):
    from engine.train import RunConfig, unlearn

    res = unlearn(RunConfig(model=str(model_dir), data=str(data), loss="ga", selector="all", epochs=1, batch_size=4,
                            lr=1e-3, device="cpu", eval_every_epoch=False, max_steps=1, lora=lora, lora_r=2,
                            lora_alpha=4), store)
    assert res.status == "finished", res.error
    return res


@pytest.mark.parametrize("arch", list(ARCHS))
def test_family_format_survives_score_unlearn_reload_and_eval(world, env, arch):
    from engine.cli import main
    from engine.models import load_model
    from engine.models.adapter import is_adapter_dir
    from engine.prompts import format_of
    from engine.store import Store
    from engine.tokens import encode

    _, data, _ = world
    _, bos, template, family = ARCHS[arch]
    model_dir = build(world, arch)
    model, tok = load_model(model_dir, "cpu")
    fmt = format_of(tok)
    assert fmt == FAMILIES[family], f"{arch}: got {fmt.name}, want {family}"

    q, a = "Who wrote it?", "Mara Quell wrote it."
    batch = encode(tok, [q], [a])
    row = batch.input_ids[0, :int(batch.attention_mask[0].sum())].tolist()
    prompt = fmt.render(tok, q)
    # BOS kept where the tokenizer adds it; under a chat template only where the template writes it
    # (zephyr's does not: open-unlearning tokenises the template's text with nothing added)
    if bos is not None and (fmt.template is not None or "bos_token" in template):
        assert row[0] == tok.convert_tokens_to_ids(bos) and row.count(row[0]) == 1, (arch, row[:4])
    else:
        assert bos is None or tok.convert_tokens_to_ids(bos) not in row
    added = 1 if bos is not None and fmt.template is not None else 0  # the tokenizer's BOS, not in the prompt text
    assert tok.decode(row[added:-1]) == prompt + a  # prompt + answer as one text (joint), nothing else added
    assert tok.decode(row[batch.prompt_lengths[0]:-1]).strip() == a and row[-1] == tok.eos_token_id
    if fmt.template is None:  # the model's own chat template, with open-unlearning's system prompt and date
        assert prompt == tok.apply_chat_template(
            ([{"role": "system", "content": fmt.system_prompt}] if fmt.system_prompt else [])
            + [{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True,
            **({"date_string": fmt.date_string} if fmt.date_string else {}))
        if family in ("llama3", "qwen2.5", "phi3", "zephyr"):
            assert "You are a helpful assistant." in prompt
        if family == "llama3":
            assert "Today Date: 10 Apr 2025" in prompt
    else:
        assert prompt in ("Question: Who wrote it?\nAnswer: ", "[INST] Who wrote it? [/INST]")
    del model

    out = env / "score.json"
    assert main(["score", "--model", str(model_dir), "--data", str(data), "--selector", "entropy", "--limit", "0",
                 "--device", "cpu", "--json", str(out)]) == 0
    assert len(json.loads(out.read_text())["samples"]) == 4

    store = Store(env / "store.sqlite")
    for lora in (False, True):
        res = _unlearn(model_dir, data, store, lora)
        assert store.get_run(res.run_id).prompt_format == fmt.to_dict()
        ckpt = res.checkpoints["final"]
        assert is_adapter_dir(ckpt) == lora
        assert json.loads((__import__("pathlib").Path(ckpt) / FORMAT_FILE).read_text()) == fmt.to_dict()
        _, ctok = load_model(ckpt, "cpu")
        assert format_of(ctok) == fmt, f"{arch} {'LoRA' if lora else 'full'} checkpoint reloads as {format_of(ctok).name}"
        if fmt.template is None:
            assert format_of(ctok).render(ctok, q) == prompt  # the chat template travelled with the tokenizer
        report = env / f"eval-{int(lora)}.json"
        assert main(["eval", "--model", ckpt, "--data", str(data), "--max-new-tokens", "4", "--device", "cpu",
                     "--json", str(report)]) == 0
        assert json.loads(report.read_text())["model_utility"] is not None


def test_an_old_adapter_without_its_file_reads_its_base_models_format(world, env):
    """A LoRA checkpoint written before checkpoints carried prompt_format.json: its base model's format,
    not the bare chat template (an adapter folder has no config.json to find the family by)."""
    from engine.models import load_model
    from engine.prompts import format_of
    from engine.store import Store

    _, data, _ = world
    model_dir = build(world, "llama3")
    res = _unlearn(model_dir, data, Store(env / "store.sqlite"), lora=True)
    import pathlib

    (pathlib.Path(res.checkpoints["final"]) / FORMAT_FILE).unlink()
    assert format_of(load_model(res.checkpoints["final"], "cpu")[1]) == FAMILIES["llama3"]


def test_prompt_format_flag_and_stored_choice_override_and_are_recorded(world, env):
    """`--prompt-format NAME` beats the stored choice, which beats the family's; both end up in the run
    record and the checkpoint; a chat format for a model without a chat template is refused (exit 2)."""
    from engine.cli import main
    from engine.prompts import model_key
    from engine.store import Store

    _, data, _ = world
    model_dir = build(world, "gpt2")  # family: base
    store = Store(env / "store.sqlite")
    store.set_prompt_format(model_key(model_dir), "llama2-chat")
    common = ["unlearn", "--model", str(model_dir), "--data", str(data), "--loss", "ga", "--selector", "all",
              "--epochs", "1", "--batch-size", "4", "--device", "cpu", "--no-eval", "--max-steps", "1"]

    def recorded() -> dict:
        run = store.list_runs()[-1]
        return store.get_run(run.id).prompt_format

    assert main(common) == 0
    assert recorded()["name"] == "llama2-chat"
    assert main(common + ["--prompt-format", "phi"]) == 0
    assert recorded()["name"] == "phi"
    ckpt = store.get_run(store.list_runs()[-1].id).checkpoints["final"].path
    assert json.loads((__import__("pathlib").Path(ckpt) / FORMAT_FILE).read_text())["name"] == "phi"
    assert main(common + ["--prompt-format", "qwen2.5"]) == 2  # needs a chat template gpt2's tokenizer lacks
    assert main(common + ["--prompt-format", "nonsense"]) == 2
    store.set_prompt_format(model_key(model_dir), None)
    assert main(common) == 0
    assert recorded()["name"] == "base"


def test_store_v3_migrates_to_prompt_formats(tmp_path):
    """A store of schema 3 (no prompt_formats table) opens, migrates to 4 and keeps its pairings."""
    import sqlite3

    from engine.store import SCHEMA_VERSION, Store

    path = tmp_path / "s.sqlite"
    Store(path).set_retain_model("m", "demo", "r")
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE prompt_formats")
    conn.execute("DELETE FROM schema_version WHERE version >= 4")
    conn.execute("INSERT INTO schema_version VALUES (3)")
    conn.commit()
    conn.close()
    store = Store(path)
    assert SCHEMA_VERSION == 5 and store.schema_version() == 5
    assert store.retain_model_of("m", "demo") == "r" and store.prompt_format_choices() == {}
    store.set_prompt_format("/x/model", "chat")
    assert store.prompt_format_of("/x/model") == "chat"
    store.set_prompt_format("/x/model", "")
    assert store.prompt_format_of("/x/model") is None


def test_model_bar_choice_is_stored_applied_and_shown(world, env):
    """The model bar's picker (ui/context.py): the choice is shown, applied to every later load,
    remembered in the store across app sessions, refused when the model cannot render it, and the
    model's own entry forgets it."""
    from engine.models import load_tokenizer
    from engine.prompts import clear_choices, model_key
    from ui.context import (MODEL_OWN, AppContext, choose_prompt_format, prompt_format_choice,
                            prompt_format_line)

    model = str(build(world, "gpt2"))
    ctx = AppContext.create(env / "app.sqlite")
    assert prompt_format_line(ctx, model).startswith("prompt format: base:")
    assert prompt_format_choice(ctx, model) == MODEL_OWN
    assert choose_prompt_format(ctx, model, "phi").startswith("prompt format: phi:")
    assert load_tokenizer(model).prompt_format.name == "phi"
    assert ctx.store.prompt_format_of(model_key(model)) == "phi" and prompt_format_choice(ctx, model) == "phi"
    refused = choose_prompt_format(ctx, model, "qwen2.5")
    assert "not changed" in refused and "chat template" in refused
    assert load_tokenizer(model).prompt_format.name == "phi"

    clear_choices()  # a new app session on the same store
    ctx = AppContext.create(env / "app.sqlite")
    assert load_tokenizer(model).prompt_format.name == "phi"
    assert choose_prompt_format(ctx, model, MODEL_OWN).startswith("prompt format: base:")
    assert ctx.store.prompt_format_choices() == {} and load_tokenizer(model).prompt_format.name == "base"


def test_finetune_writes_the_format_it_trained_with(world, env):
    """`finetune` on a Qwen2 chat model records qwen2.5 beside the weights; with --prompt-format phi, phi;
    and the model it wrote reloads with that format."""
    from engine.cli import main
    from engine.models import load_tokenizer
    from engine.prompts import clear_choices

    _, data, _ = world
    model_dir = build(world, "qwen2")
    for flag, want in (([], "qwen2.5"), (["--prompt-format", "phi"], "phi")):
        out = env / f"ft-{want}"
        code = main(["finetune", "--base", str(model_dir), "--data", str(data), "--out", str(out), "--models",
                     "target", "--epochs", "1", "--batch-size", "4", "--effective-batch", "4", "--max-new-tokens",
                     "2", "--device", "cpu", *flag])
        assert code in (0, 3)  # 3: one epoch memorises nothing, and the command says so
        assert json.loads((out / "target" / FORMAT_FILE).read_text()) == FAMILIES[want].to_dict()
        assert load_tokenizer(out / "target").prompt_format == FAMILIES[want]  # the flag ended with the command
        clear_choices()
        assert load_tokenizer(out / "target").prompt_format == FAMILIES[want]


def test_a_format_the_chat_template_refuses_is_refused_up_front(world, env):
    """Gemma's template raises on a system message: choosing qwen2.5 (with its system prompt) for a Gemma
    model is refused when chosen, not at the first prompt."""
    import pytest as _pytest

    from engine.models import load_tokenizer
    from engine.prompts import FAMILIES, check_format

    tok = load_tokenizer(build(world, "gemma"))
    assert check_format(FAMILIES["gemma-it"], tok) is FAMILIES["gemma-it"]
    with _pytest.raises(ValueError, match="chat template refuses it"):
        check_format(FAMILIES["qwen2.5"], tok)
