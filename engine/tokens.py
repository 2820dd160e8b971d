"""Prompts (formats: engine.prompts), tokenisation with answer offsets, and every per-token quantity.

This is the one place where the label shift lives: `_predicting` pairs the logits at t-1
with the label at t. Everything returned here is (B, T), aligned with `Batch.input_ids`,
and zero outside `Batch.label_mask`. Selectors, losses and metrics call these functions;
nobody else slices `[:, :-1]`.
"""
from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .prompts import PLAIN_TEMPLATE, PromptFormat, format_of  # noqa: F401  (PLAIN_TEMPLATE: re-exported)


def format_prompt(tokenizer, question: str) -> str:
    """The prompt for `question` under the model's prompt format (`engine.prompts.format_of`):
    chosen when the model was loaded; for a tokenizer built in memory its chat template when it
    has one, `Question: …\nAnswer: ` otherwise."""
    return format_of(tokenizer).render(tokenizer, question)


def _prompt_tokens(tokenizer, fmt: PromptFormat, prompts: list[str]) -> list[list[int]]:
    """Token ids of prompt texts, with the special tokens the tokenizer puts BEFORE a text (its BOS)
    when the format adds them; any it appends after the text (an EOS) is dropped, as a prompt
    never ends an answer. An appended token is one after the last token with characters."""
    if not fmt.special_tokens:
        return tokenizer(prompts, add_special_tokens=False, **_QUIET)["input_ids"]
    enc = tokenizer(prompts, add_special_tokens=True, return_offsets_mapping=True, **_QUIET)
    out = []
    for ids, offs in zip(enc["input_ids"], enc["offset_mapping"]):
        last = max((j for j, (s, e) in enumerate(offs) if e > s), default=len(ids) - 1)
        out.append(list(ids[:last + 1]))
    return out


def prompt_ids(tokenizer, questions: list[str]) -> list[list[int]]:
    """Token ids of each question's prompt, with the format's special tokens (e.g. BOS) when it adds them."""
    fmt = format_of(tokenizer)
    return _prompt_tokens(tokenizer, fmt, [fmt.render(tokenizer, q) for q in questions])


@dataclass
class Batch:
    """Right-padded token ids with label positions.

    input_ids, attention_mask: (B, T). label_mask: (B, T) bool, answer tokens + closing EOS.
    eos_mask: (B, T) bool, the closing EOS. offsets: (B, T, 2) character offsets of answer
    tokens inside the answer text, -1 elsewhere. answers: the answer strings.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    label_mask: torch.Tensor
    eos_mask: torch.Tensor
    offsets: torch.Tensor
    answers: list[str]
    prompt_lengths: list[int]

    def to(self, device: str | torch.device) -> "Batch":
        return Batch(self.input_ids.to(device), self.attention_mask.to(device), self.label_mask.to(device),
                     self.eos_mask.to(device), self.offsets, self.answers, self.prompt_lengths)

    @property
    def answer_mask(self) -> torch.Tensor:
        """Label positions without the closing EOS: the only default forget targets."""
        return self.label_mask & ~self.eos_mask


_QUIET = {"verbose": False}  # over-long rows are reported by engine.context / `encode`, not by the tokenizer


def _apart(tokenizer, fmt: PromptFormat, prompts: list[str], answers: list[str]):
    """(prompt ids, answer ids, answer offsets) per row, prompt and answer tokenised separately."""
    p_ids = _prompt_tokens(tokenizer, fmt, prompts)
    a_enc = tokenizer(answers, add_special_tokens=False, return_offsets_mapping=True, **_QUIET)
    return p_ids, a_enc["input_ids"], [[tuple(x) for x in o] for o in a_enc["offset_mapping"]]


def _joint(tokenizer, fmt: PromptFormat, prompts: list[str], answers: list[str]):
    """(prompt ids, answer ids, answer offsets) per row from `prompt + answer` tokenised as one text.

    A token is an answer token when its character span ends inside the answer (end > len(prompt));
    a token that straddles the boundary (e.g. ' The' after 'Answer:') is an answer token whose
    offset starts at answer character 0. Offsets are shifted to the answer: (max(s − P, 0), e − P).
    """
    enc = tokenizer([p + a for p, a in zip(prompts, answers)], add_special_tokens=fmt.special_tokens,
                    return_offsets_mapping=True, **_QUIET)
    p_ids, a_ids, a_offs = [], [], []
    for ids, offs, p in zip(enc["input_ids"], enc["offset_mapping"], prompts):
        P = len(p)
        first = next((j for j, (_, e) in enumerate(offs) if e > P), len(ids))
        answer = [(j, s, e) for j, (s, e) in enumerate(offs) if j >= first and e > P]  # trailing specials dropped
        p_ids.append(list(ids[:first]))
        a_ids.append([ids[j] for j, _, _ in answer])
        a_offs.append([(max(s - P, 0), e - P) for _, s, e in answer])
    return p_ids, a_ids, a_offs


def split_tokens(tokenizer, questions: list[str], answers: list[str]):
    """(prompt ids, answer ids, answer offsets) per pair, exactly as `encode` tokenises them under
    the model's prompt format (apart, or `_joint`); `engine.context` counts tokens with it."""
    fmt = format_of(tokenizer)
    prompts = [fmt.render(tokenizer, q) for q in questions]
    return (_joint if fmt.joint else _apart)(tokenizer, fmt, prompts, list(answers))


def encode(tokenizer, questions: list[str], answers: list[str], max_length: int | None = None) -> Batch:
    """Tokenise `prompt(q) + a + <eos>` per pair under the model's prompt format: prompt and answer
    apart, or as one text when the format is `joint` (`_joint`).

    The answer's tokens keep their character offsets inside the answer. Long answers are cut
    to fit `max_length` (the tokenizer's model_max_length, which `load_model` sets to the
    model's context), with a warning naming the question; a prompt alone too long is an error.
    """
    if len(questions) != len(answers):
        raise ValueError(f"{len(questions)} questions but {len(answers)} answers")
    if not questions:
        raise ValueError("encode needs at least one question/answer pair")
    max_length = max_length or getattr(tokenizer, "model_max_length", 10**9)
    max_length = min(max_length, 10**9)
    p_ids, a_ids, a_offs = split_tokens(tokenizer, questions, answers)
    eos = tokenizer.eos_token_id
    rows, offs = [], []
    for p, a, o, q in zip(p_ids, a_ids, a_offs, questions):
        room = max_length - len(p) - 1
        if room < 1:
            raise ValueError(f"the prompt for question {q[:60]!r}… has {len(p)} tokens, more than the "
                             f"model's context of {max_length}")
        if len(a) > room:  # reported, never cut silently (`engine.context.check_fits` refuses up front)
            warnings.warn(f"the answer to {q[:60]!r} has {len(a)} tokens but only {room} fit in the context of "
                          f"{max_length} after its {len(p)}-token prompt and the EOS: it is cut", stacklevel=2)
        a, o = a[:room], o[:room]
        rows.append(p + a + [eos])
        offs.append([(-1, -1)] * len(p) + list(o) + [(-1, -1)])
    T = max(len(r) for r in rows)
    B = len(rows)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    input_ids = torch.full((B, T), pad, dtype=torch.long)
    attention = torch.zeros((B, T), dtype=torch.long)
    label = torch.zeros((B, T), dtype=torch.bool)
    eos_mask = torch.zeros((B, T), dtype=torch.bool)
    offsets = torch.full((B, T, 2), -1, dtype=torch.long)
    for i, (r, o, p) in enumerate(zip(rows, offs, p_ids)):
        n = len(r)
        input_ids[i, :n] = torch.tensor(r)
        attention[i, :n] = 1
        label[i, len(p):n] = True
        eos_mask[i, n - 1] = True
        offsets[i, :n] = torch.tensor(o)
    return Batch(input_ids, attention, label, eos_mask, offsets, list(answers), [len(p) for p in p_ids])


def encode_samples(tokenizer, samples, max_length: int | None = None) -> Batch:
    """`encode` on Samples' questions and answers."""
    return encode(tokenizer, [s.question for s in samples], [s.answer for s in samples], max_length)


def _swapped_prompts(tokenizer, batch: Batch, question: str) -> list[list[int]]:
    """Per row, the prompt ids of `question` as they precede that row's answer: the prompt alone
    when the format tokenises apart; under a `joint` format the prompt part of `prompt + answer`
    tokenised as one text (`_joint`), which can differ from the prompt alone at the boundary
    (e.g. 'Answer: ' + 'The' → 'Answer', ':', ' The', never a lone ' ')."""
    fmt = format_of(tokenizer)
    if not fmt.joint:
        return prompt_ids(tokenizer, [question]) * batch.input_ids.shape[0]
    return split_tokens(tokenizer, [question] * len(batch.answers), batch.answers)[0]


def with_prompt(tokenizer, batch: Batch, question: str) -> Batch:
    """The same answer tokens (and closing EOS) behind another question's prompt, right-padded.

    Label positions keep their order and number per row, so `relocate(values, src, dst)` maps
    per-label values between the two batches. Used to score answers "with the question masked".
    The new prompt is tokenised as `encode` would tokenise it before each answer (`_swapped_prompts`).
    """
    prompts = _swapped_prompts(tokenizer, batch, question)
    rows = [p + batch.input_ids[i][batch.label_mask[i]].tolist() for i, p in enumerate(prompts)]
    T = max(len(r) for r in rows)
    B = len(rows)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    input_ids = torch.full((B, T), pad, dtype=torch.long)
    attention = torch.zeros((B, T), dtype=torch.long)
    label = torch.zeros((B, T), dtype=torch.bool)
    eos_mask = torch.zeros((B, T), dtype=torch.bool)
    offsets = torch.full((B, T, 2), -1, dtype=torch.long)
    for i, (r, p) in enumerate(zip(rows, prompts)):
        n = len(r)
        input_ids[i, :n] = torch.tensor(r)
        attention[i, :n] = 1
        label[i, len(p):n] = True
        eos_mask[i, n - 1] = True
        offsets[i, len(p):n] = batch.offsets[i][batch.label_mask[i].cpu()]
    out = Batch(input_ids, attention, label, eos_mask, offsets, list(batch.answers), [len(p) for p in prompts])
    return out.to(batch.input_ids.device)


def relocate(values: torch.Tensor, src: Batch, dst: Batch) -> torch.Tensor:
    """Move per-label-position values (B, T_src) of `src` onto the label positions of `dst`
    (B, T_dst); both batches must hold the same answer tokens (see `with_prompt`)."""
    out = torch.zeros(dst.label_mask.shape, dtype=values.dtype, device=values.device)
    out[dst.label_mask] = values[src.label_mask]  # row-major order: row by row, label by label
    return out


def label_rows(values: torch.Tensor, batch: Batch) -> list[torch.Tensor]:
    """Split a (B, T) tensor into per-row 1-D CPU tensors over each row's label positions."""
    return [values[i][batch.label_mask[i]].detach().cpu() for i in range(values.shape[0])]


def gather_rows(rows: list[torch.Tensor], indices: list[int], batch: Batch, dtype=torch.float32) -> torch.Tensor:
    """(B, T) tensor of samples `indices`' per-label-position rows placed on the batch's label
    positions (row-major, so one scatter), 0 elsewhere. Inverse of `label_rows`."""
    out = torch.zeros(batch.label_mask.shape, dtype=dtype, device=batch.label_mask.device)
    out[batch.label_mask] = torch.cat([rows[i] for i in indices]).to(out.device, dtype)
    return out


def spans_to_mask(offsets: torch.Tensor, spans_per_row: list[list[tuple[int, int]]]) -> torch.Tensor:
    """(B, T) bool: token (a, b) is inside span [s, e) when a < e and b > s (SPEC §1)."""
    start, end = offsets[..., 0], offsets[..., 1]  # (B, T)
    mask = torch.zeros(start.shape, dtype=torch.bool)
    for i, spans in enumerate(spans_per_row):
        for s, e in spans:
            mask[i] |= (start[i] >= 0) & (start[i] < e) & (end[i] > s)
    return mask


def fact_mask(batch: Batch, samples, span_type: str | None = None) -> torch.Tensor:
    """(B, T) bool on CPU: answer tokens (not the EOS) overlapping the samples' ground-truth fact
    spans (`Sample.spans`), only spans of `span_type` when given."""
    spans = [[(sp.start, sp.end) for sp in s.spans if span_type is None or sp.type == span_type] for s in samples]
    return spans_to_mask(batch.offsets, spans) & batch.answer_mask.cpu()


def forward(model, batch: Batch, **kwargs):
    """The model's output on a batch, without a KV cache (`use_cache=False`): nothing here
    generates, and a cache only costs memory. In train mode autograd keeps the cache's keys and
    values (copies made by its concatenation) beside the attention's own: 2·H more elements per
    token per layer. kwargs go to the model (e.g. output_hidden_states)."""
    return model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False, **kwargs)


def forward_logits(model, batch: Batch) -> torch.Tensor:
    """Model logits (B, T, V) for a batch on the model's device (`forward`)."""
    return forward(model, batch).logits


def _predicting(logits: torch.Tensor, input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """THE label shift: logits at t-1 (B, T-1, V) paired with the label at t (B, T-1)."""
    return logits[:, :-1], input_ids[:, 1:]


def _next_tokens(input_ids: torch.Tensor) -> torch.Tensor:
    """The same shift without slicing the logits: (B, T), column t holds y_{t+1}, the label the
    logits at t predict. The last column predicts nothing; it holds y_0, a valid id whose value
    `_to_positions(x[:, :-1], …)` drops (and so its gradient is zero)."""
    return torch.roll(input_ids, -1, dims=1)


def _to_positions(x: torch.Tensor, label_mask: torch.Tensor) -> torch.Tensor:
    """(B, T-1) values for labels 1..T-1 -> (B, T) aligned with labels, 0 off label positions."""
    return F.pad(x, (1, 0)) * label_mask


NLL_CHUNK_ELEMENTS = 2**24  # vocabulary-sized fp32 elements per chunk of per_token_nll (64 MiB) [choice]


def per_token_nll(logits: torch.Tensor, batch: Batch) -> torch.Tensor:
    """ℓ_t = −log p(y_t | y_<t) = logsumexp_v z_{t-1,v} − z_{t-1,y_t}, (B, T), float32 (float64 for
    float64 logits), 0 off label positions. Naive form: logsumexp(z[:, :-1]) − z[:, :-1] gathered at
    y[:, 1:] (tests/test_eval_cost.py, tests/test_training_memory.py: values and gradients).

    F.cross_entropy on the unsliced logits (`_next_tokens`), over chunks of ≤ NLL_CHUNK_ELEMENTS
    logits and always at least two (N = B·T tokens, `split`), so that
      - only one chunk is ever upcast to fp32: no full-vocabulary fp32 copy of bf16 logits;
      - with a backward, autograd keeps cross-entropy's fp32 log-softmax, not the logits (freed
        once the caller drops them), and the backward makes one chunk's gradient at a time, joined
        once by `split`'s backward: at most 2 vocabulary-sized tensors live (with one chunk, 3:
        the log-softmax, the gradient of the log-softmax and that of the logits). No (B, T−1, V)
        slice copy and no logsumexp temporaries.
    """
    B, T, V = logits.shape
    flat = logits.flatten(0, 1)  # (N, V), a view of contiguous logits
    target = _next_tokens(batch.input_ids).flatten()  # (N,)
    per_chunk = max(1, min(NLL_CHUNK_ELEMENTS // V, (flat.shape[0] + 1) // 2))
    up = torch.promote_types(logits.dtype, torch.float32)  # bf16 -> fp32; fp32, fp64 stay
    parts = [F.cross_entropy(z.to(up), y, reduction="none")  # (n,)
             for z, y in zip(flat.split(per_chunk), target.split(per_chunk))]
    nll = torch.cat(parts).view(B, T)  # nll[:, t] = −log p(y_{t+1} | y_≤t)
    return _to_positions(nll[:, :-1], batch.label_mask)


def label_logit(logits: torch.Tensor, batch: Batch) -> torch.Tensor:
    """z_t: the raw logit of the label token at label position t, (B, T), 0 off labels (TPO)."""
    z = logits.gather(-1, _next_tokens(batch.input_ids).unsqueeze(-1)).squeeze(-1)  # (B, T), no full-size copy
    return _to_positions(z[:, :-1].to(torch.promote_types(z.dtype, torch.float32)), batch.label_mask)


def label_logits(logits: torch.Tensor, batch: Batch) -> torch.Tensor:
    """The whole logit vector that predicts each label position t (the logits at t−1), (B, T, V),
    at least float32, zero rows off label positions (UNDIAL, CE-U). One (B, T, V) copy: computed
    only for a loss that asks for `logits` / `ref_logits`."""
    pred, _ = _predicting(logits, batch.input_ids)  # (B, T-1, V)
    z = F.pad(pred.to(torch.promote_types(pred.dtype, torch.float32)), (0, 0, 1, 0))  # (B, T, V)
    return z.masked_fill(~batch.label_mask.unsqueeze(-1), 0.0)


def label_ids(batch: Batch) -> torch.Tensor:
    """y_t, the label token at each label position, (B, T) long, 0 off label positions: the
    targets of `label_logits` (no shift: label position t holds input token t)."""
    return batch.input_ids * batch.label_mask


def entropy(logits: torch.Tensor, batch: Batch) -> torch.Tensor:
    """H_t = −Σ_v p(v|y_<t) log p(v|y_<t) of the distribution that predicts label t, (B, T)."""
    pred, _ = _predicting(logits, batch.input_ids)
    logp = F.log_softmax(pred.float(), dim=-1)
    return _to_positions(-(logp.exp() * logp).sum(-1), batch.label_mask)


def greedy_hit(logits: torch.Tensor, batch: Batch) -> torch.Tensor:
    """(B, T) bool: the greedy (argmax) prediction at label position t equals the label y_t."""
    pred, target = _predicting(logits, batch.input_ids)
    hit = (pred.argmax(-1) == target).float()  # (B, T-1)
    return _to_positions(hit, batch.label_mask).bool()


def kl_ref(ref_logits: torch.Tensor, logits: torch.Tensor, batch: Batch) -> torch.Tensor:
    """KL(p_ref ‖ p_θ) per label position, (B, T), summed over the vocabulary."""
    ref, _ = _predicting(ref_logits, batch.input_ids)
    cur, _ = _predicting(logits, batch.input_ids)
    ref_logp = F.log_softmax(ref.float(), dim=-1)
    kl = (ref_logp.exp() * (ref_logp - F.log_softmax(cur.float(), dim=-1))).sum(-1)  # (B, T-1)
    return _to_positions(kl, batch.label_mask)


def iter_batches(items: list, batch_size: int):
    """Consecutive chunks of a list."""
    for i in range(0, len(items), batch_size):
        yield items[i:i + batch_size]


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module):
    """Switch `model` to eval mode for the block, then restore its training flag (even on error)."""
    was = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was)


@torch.no_grad()
def per_token_rows(model, tokenizer, samples, fns: dict, batch_size: int = 64) -> dict[str, list[torch.Tensor]]:
    """{name: per-sample 1-D CPU tensors over label positions} with fns[name](logits, batch) → (B, T),
    from one batched eval-mode forward per chunk of `batch_size` samples, no gradients."""
    device = next(model.parameters()).device
    rows: dict[str, list[torch.Tensor]] = {k: [] for k in fns}
    with eval_mode(model):
        for chunk in iter_batches(list(samples), batch_size):
            batch = encode_samples(tokenizer, chunk).to(device)
            logits = forward_logits(model, batch)  # (B, T, V)
            for k, fn in fns.items():
                rows[k] += label_rows(fn(logits, batch), batch)
    return rows
