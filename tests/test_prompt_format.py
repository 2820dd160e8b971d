"""The prompt format as data: chosen once per model, joint tokenisation with exact answer offsets,
TOFU's family defaults with a fixed date, and the format in cache keys and run records."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from engine.prompts import FAMILIES, PLAIN, PromptFormat, generation_length, prompt_format_for, save_format
from engine.tokens import encode

QUESTIONS = ["Who wrote The Tea House?", "Where was Mara Quell born?"]
ANSWERS = ["The Tea House was written by Mara Quell.", "Mara Quell was born in Oslo, in 1961."]


@pytest.fixture(scope="module")
def bpe():
    """A byte-level BPE trained so that ' The' and ' Mara' are single tokens: after 'Answer: '
    the joint text merges the space into the answer's first token, the separate one cannot."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    texts = [f"Question: {q}\nAnswer: {a}" for q, a in zip(QUESTIONS, ANSWERS)] * 50
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=300, special_tokens=["<eos>"],
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<eos>")


def _with(tok, fmt):
    tok.prompt_format = fmt
    return tok


def test_joint_offsets_slice_the_answer_exactly(bpe):
    apart = encode(_with(bpe, PLAIN), QUESTIONS, ANSWERS)
    joint = encode(_with(bpe, FAMILIES["phi"]), QUESTIONS, ANSWERS)  # phi: plain template, joint
    assert apart.input_ids.tolist() != joint.input_ids.tolist()  # this tokenizer tells them apart
    for i, answer in enumerate(ANSWERS):
        ids = joint.input_ids[i][joint.answer_mask[i]].tolist()
        offs = joint.offsets[i][joint.answer_mask[i]].tolist()
        assert "".join(answer[s:e] for s, e in offs) == answer  # every character once, in order
        for t, (s, e) in zip(ids, offs):
            assert bpe.decode([t]).endswith(answer[s:e])  # each token's slice is its own text
        assert bpe.decode([ids[0]]).startswith(" ")  # the first token straddles "Answer: " | "The"
        prompt = joint.input_ids[i][:joint.prompt_lengths[i]].tolist()
        assert bpe.decode(prompt + ids) == f"Question: {QUESTIONS[i]}\nAnswer: {answer}"
        assert joint.eos_mask[i].nonzero().item() == joint.prompt_lengths[i] + len(ids)


def test_builtin_models_keep_separate_plain_tokenisation(builtin):
    from engine.models import load_tokenizer

    tok = load_tokenizer(builtin.target)
    assert tok.prompt_format == PLAIN and not tok.prompt_format.joint
    b = encode(tok, QUESTIONS[:1], ANSWERS[:1])
    p = tok(f"Question: {QUESTIONS[0]}\nAnswer: ", add_special_tokens=False)["input_ids"]
    a = tok(ANSWERS[0], add_special_tokens=False)["input_ids"]
    assert b.input_ids[0].tolist() == p + a + [tok.eos_token_id]


LLAMA3_LIKE = ("{{ '<|start_header_id|>system<|end_header_id|>\\n\\nToday Date: ' + "
               "(date_string if date_string is defined else strftime_now('%d %b %Y')) + '\\n\\n' }}"
               "{% for m in messages %}{% if m.role == 'system' %}{{ m.content + '<|eot_id|>' }}{% else %}"
               "{{ '<|start_header_id|>' + m.role + '<|end_header_id|>\\n\\n' + m.content + '<|eot_id|>' }}"
               "{% endif %}{% endfor %}{% if add_generation_prompt %}"
               "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}")


def test_llama3_family_uses_tofus_system_prompt_and_fixed_date(tmp_path, bpe):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    bpe.chat_template = LLAMA3_LIKE
    try:
        fmt = prompt_format_for(tmp_path, bpe)
        assert fmt.name == "llama3" and fmt.joint
        prompt = fmt.render(bpe, "Who?")
    finally:
        bpe.chat_template = None
    assert "Today Date: 10 Apr 2025" in prompt and "You are a helpful assistant." in prompt
    assert prompt.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    base = prompt_format_for(tmp_path, bpe)  # no chat template: a Llama-2 base model (open-unlearning's Llama-2-7b-hf)
    assert base.name == "llama2-base" and base.special_tokens
    assert base.render(bpe, "Who?") == "Question: Who?\nAnswer: "


def test_stored_format_wins_and_bad_fields_are_named(tmp_path, bpe):
    save_format(tmp_path, PromptFormat("mine", "Q: {question}\nA:", joint=True))
    assert prompt_format_for(tmp_path, bpe).render(bpe, "x") == "Q: x\nA:"
    (tmp_path / "prompt_format.json").write_text(json.dumps({"name": "x", "joint": "yes"}))
    with pytest.raises(ValueError, match=r"prompt_format.json.*'joint'"):
        prompt_format_for(tmp_path, bpe)
    (tmp_path / "prompt_format.json").write_text(json.dumps({"name": "x", "templat": "Q"}))
    with pytest.raises(ValueError, match="unknown field.*templat"):
        prompt_format_for(tmp_path, bpe)


def test_reference_cache_key_follows_the_prompt_format(tmp_path, builtin):
    """Two copies of the retain model that differ only in prompt format get different truth-ratio
    cache keys (they were the same key when only a chat template counted)."""
    from engine.eval.full import prompt_format

    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(builtin.retain, a)
    shutil.copytree(builtin.retain, b)
    (a / "prompt_format.json").unlink(missing_ok=True)
    save_format(b, PromptFormat("plain-joint", joint=True))
    assert prompt_format(a) != prompt_format(b)
    assert prompt_format(b) == prompt_format(b)


def test_generation_length_by_data():
    assert generation_length("demo") == 64 and generation_length("demo/forget05") == 64
    assert generation_length("/data/tofu") == 200


def test_run_record_holds_the_prompt_format(tmp_path, builtin):
    from engine.store import Store
    from engine.train import RunConfig, unlearn

    store = Store(tmp_path / "s.db")
    res = unlearn(RunConfig(model="demo", data="demo/forget01", loss="ga", selector="all", epochs=1, batch_size=4,
                            device="cpu", eval_every_epoch=False, save_checkpoints=False, max_steps=1), store)
    assert store.get_run(res.run_id).prompt_format == PLAIN.to_dict()


def test_swapped_prompt_is_tokenised_as_encode_would_under_a_joint_format(bpe):
    """TokenUnlearn/TIF score answers behind another prompt: under a joint format that prompt must be
    the joint text's prompt part ('Answer:' then ' The'), not the prompt alone (a lone ' ' token)."""
    from engine.tokens import relocate, with_prompt

    tok = _with(bpe, FAMILIES["phi"])
    batch = encode(tok, QUESTIONS, ANSWERS)
    swapped = with_prompt(tok, batch, "")
    again = encode(tok, ["", ""], ANSWERS)  # what the model sees when the question is really empty
    assert swapped.input_ids.tolist() == again.input_ids.tolist()
    assert swapped.prompt_lengths == again.prompt_lengths
    alone = tok("Question: \nAnswer: ", add_special_tokens=False)["input_ids"]
    assert swapped.prompt_lengths[0] == len(alone) - 1  # the trailing ' ' joined the answer's first token
    values = torch.arange(swapped.input_ids.numel(), dtype=torch.float).view_as(swapped.input_ids) * swapped.label_mask
    assert relocate(values, swapped, batch)[batch.label_mask].tolist() == values[swapped.label_mask].tolist()


def test_overflow_counts_tokens_as_encode_makes_them(bpe):
    from engine.context import overflows
    from engine.data import Sample

    tok = _with(bpe, FAMILIES["phi"])
    b = encode(tok, QUESTIONS[:1], ANSWERS[:1])
    n = int(b.attention_mask.sum())  # prompt + answer + EOS, jointly tokenised
    sample = [Sample(QUESTIONS[0], ANSWERS[0])]
    assert overflows(tok, sample, context=n) == []
    (line,) = overflows(tok, sample, context=n - 1)
    assert f"prompt {b.prompt_lengths[0]} + answer {n - 1 - b.prompt_lengths[0]} + EOS = {n} tokens" in line
