"""Greedy decoding stops at every EOS id of the model's generation config (`passes.eos_ids`), as HF
`generate` does: SmolLM2-Instruct's generation config ends a turn with <|im_end|>, not only the
tokenizer's EOS. Everything that generates (evaluation, leak check, Compare's before/after) goes
through `passes.run`."""
from __future__ import annotations

import copy

import torch

from engine.eval.passes import eos_ids

QUESTIONS = ["Where was Mara Quell born?", "Who wrote The Tea House?"]


def _free_run(model, tok, question: str, n: int = 12) -> list[int]:
    """HF generate's greedy tokens, stopping only at the tokenizer's EOS."""
    from engine.tokens import prompt_ids

    ids = torch.tensor([prompt_ids(tok, [question])[0]])
    out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, do_sample=False,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    return out[0, ids.shape[1]:].tolist()


def test_eos_ids_reads_an_int_a_list_and_the_tokenizers(tiny_model, builtin_tokenizer):
    tok, model = builtin_tokenizer, copy.deepcopy(tiny_model)
    model.generation_config.eos_token_id = tok.eos_token_id
    assert eos_ids(model, tok) == [tok.eos_token_id]
    model.generation_config.eos_token_id = [7, tok.eos_token_id, 9]
    assert eos_ids(model, tok) == [tok.eos_token_id, 7, 9]  # the tokenizer's first, each once
    model.generation_config.eos_token_id = None
    model.config.eos_token_id = 11
    assert eos_ids(model, tok) == [tok.eos_token_id, 11]  # no generation config id: the model config's


def test_greedy_answer_stops_at_a_second_eos_id(tiny_model, builtin_tokenizer, one_thread):
    """The answer is cut before the first token that the generation config lists as an EOS (it is not
    the tokenizer's EOS), exactly where HF generate with the same list stops; the leak check's
    generations are the same cut answers."""
    from engine.data import Sample
    from engine.eval.metrics import greedy_generate
    from engine.eval.leak_check import leak_check
    from engine.tokens import prompt_ids

    tok, model = builtin_tokenizer, copy.deepcopy(tiny_model)
    model.generation_config.eos_token_id = tok.eos_token_id
    free = _free_run(model, tok, QUESTIONS[0])
    k = next(j for j, t in enumerate(free) if j >= 2 and t not in free[:j] and t != tok.eos_token_id)
    stop = free[k]
    before = greedy_generate(model, tok, QUESTIONS, max_new_tokens=12)
    assert before[0] == tok.decode(free, skip_special_tokens=True).strip()  # runs past `stop` without it

    model.generation_config.eos_token_id = [tok.eos_token_id, stop]
    after = greedy_generate(model, tok, QUESTIONS, max_new_tokens=12)
    assert after[0] == tok.decode(free[:k], skip_special_tokens=True).strip() != before[0]
    ids = torch.tensor([prompt_ids(tok, [QUESTIONS[0]])[0]])
    hf = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=12, do_sample=False,
                        eos_token_id=[tok.eos_token_id, stop], pad_token_id=tok.pad_token_id)[0, ids.shape[1]:].tolist()
    assert hf[:k] == free[:k] and hf[k] == stop and len(hf) == k + 1  # HF stops there too, the stop token last

    samples = [Sample(q, "x") for q in QUESTIONS]
    report = leak_check(model, tok, samples, [[] for _ in samples], max_new_tokens=12)
    assert [r.generation for r in report.rows] == after
