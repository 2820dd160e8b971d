"""Prompt format, label positions, offsets and the single label shift."""
import math

import torch
import torch.nn.functional as F

from engine.tokens import (PLAIN_TEMPLATE, encode, entropy, kl_ref, label_logit, per_token_nll,
                           spans_to_mask)


def test_encode_marks_answer_tokens_and_eos(builtin_tokenizer):
    tok = builtin_tokenizer
    batch = encode(tok, ["Where was X born?", "Who?"], ["In Lima.", "Nobody at all, really."])
    prompt_len = len(tok(PLAIN_TEMPLATE.format(question="Who?"), add_special_tokens=False)["input_ids"])
    ans = tok("Nobody at all, really.", add_special_tokens=False)["input_ids"]
    row = batch.input_ids[1]
    assert batch.prompt_lengths[1] == prompt_len
    assert row[prompt_len:prompt_len + len(ans)].tolist() == ans
    assert row[prompt_len + len(ans)].item() == tok.eos_token_id
    assert batch.label_mask[1].nonzero().flatten().tolist() == list(range(prompt_len, prompt_len + len(ans) + 1))
    assert batch.eos_mask[1].nonzero().flatten().tolist() == [prompt_len + len(ans)]
    assert not (batch.answer_mask & batch.eos_mask).any()
    # padding of the shorter row is neither attended nor a label
    n0 = int(batch.attention_mask[0].sum())
    assert not batch.label_mask[0, n0:].any() and batch.label_mask[0, n0 - 1]
    # offsets index into the answer text
    a, b = batch.offsets[1, prompt_len].tolist()
    assert "Nobody at all, really."[a:b].strip() != "" and a == 0


def test_spans_to_mask_uses_offset_overlap():
    offsets = torch.tensor([[[-1, -1], [0, 3], [3, 7], [7, 8], [8, 12], [-1, -1]]])
    # span [4, 8) overlaps tokens (3,7) and (7,8); [11, 12) overlaps (8,12)
    mask = spans_to_mask(offsets, [[(4, 8), (11, 12)]])
    assert mask.tolist() == [[False, False, True, True, True, False]]
    # touching but not overlapping: [3, 3) style edges: token (0,3) vs span [3,5) does not overlap
    assert spans_to_mask(offsets, [[(3, 5)]]).tolist() == [[False, False, True, False, False, False]]


def _toy_batch():
    from engine.tokens import Batch

    ids = torch.tensor([[5, 1, 2, 0]])
    label = torch.tensor([[False, True, True, False]])
    return Batch(ids, torch.ones_like(ids), label, torch.tensor([[False, False, True, False]]),
                 torch.full((1, 4, 2), -1), ["x"], [1])


def test_per_token_quantities_are_shifted_exactly_once():
    batch = _toy_batch()
    logits = torch.randn(1, 4, 7)
    nll = per_token_nll(logits, batch)
    logp = F.log_softmax(logits, -1)
    # label at t=1 (token 1) is predicted from position 0; label at t=2 (token 2) from position 1
    assert torch.allclose(nll[0, 1], -logp[0, 0, 1]) and torch.allclose(nll[0, 2], -logp[0, 1, 2])
    assert nll[0, 0] == 0 and nll[0, 3] == 0
    z = label_logit(logits, batch)
    assert z[0, 1] == logits[0, 0, 1] and z[0, 2] == logits[0, 1, 2] and z[0, 3] == 0
    h = entropy(logits, batch)
    p = logp[0, 1].exp()
    assert torch.allclose(h[0, 2], -(p * p.log()).sum())
    assert torch.allclose(kl_ref(logits, logits, batch), torch.zeros(1, 4), atol=1e-6)


def test_uniform_logits_give_log_vocab():
    batch = _toy_batch()
    nll = per_token_nll(torch.zeros(1, 4, 7), batch)
    assert math.isclose(nll[0, 1].item(), math.log(7), rel_tol=1e-6)
    assert math.isclose(entropy(torch.zeros(1, 4, 7), batch)[0, 2].item(), math.log(7), rel_tol=1e-6)


def test_overlong_answer_is_cut_to_the_context(builtin_tokenizer):
    batch = encode(builtin_tokenizer, ["Who?"], ["word " * 500], max_length=64)
    assert batch.input_ids.shape[1] == 64 and batch.eos_mask[0, 63]
