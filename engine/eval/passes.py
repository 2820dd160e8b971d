"""The model work of an evaluation, each prompt run once: its KV cache serves both the scoring of
every answer text given to it and its greedy generation.

An evaluation scores ~7 texts per question (answer, paraphrase, perturbed answers) behind the same
prompt, and the prompt is most of each text's tokens. So prompts are batched (left-padded, so that
every row's last prompt token sits at the same position), run once with the KV cache on, and:

- `continuation_nll`: each text's tokens (+ EOS) run on a copy of its prompt's cache rows; logits
  are made only where a label is predicted, and `per_token_nll` pairs them with the labels.
- `greedy_decode`: one token per step on the cache, finished rows dropped from the batch; a row ends
  at any of the model's EOS ids (`eos_ids`: the tokenizer's and every one its generation config lists).

In exact arithmetic both equal a full forward of `prompt + text` and HF `generate`; in float32 they
differ by rounding only (tests/test_eval_cost.py checks both; the evaluation's metrics stay within
1e-6 of the values before this module, benchmarks/eval_share.py).
"""
from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Callable

import torch
from transformers import DynamicCache

from ..models.loading import model_context
from ..prompts import format_of
from ..tokens import Batch, encode, eval_mode, iter_batches, per_token_nll, prompt_ids


@dataclass
class Prompts:
    """A left-padded batch of P prompts after one forward with the cache on.

    mask, positions: (P, W) attention mask and position ids (left padding: the last column is every
    row's last prompt token). kv: per layer, (keys, values) of shape (P, heads, W, head_dim).
    last_logits: (P, V), the logits that predict each row's first new token."""

    ids: torch.Tensor
    mask: torch.Tensor
    positions: torch.Tensor
    kv: list[tuple[torch.Tensor, torch.Tensor]]
    last_logits: torch.Tensor

    def cache(self, model, rows: torch.Tensor) -> DynamicCache:
        """A fresh cache holding prompt rows `rows` (repeats allowed), for the model to extend."""
        return DynamicCache(ddp_cache_data=[(k[rows], v[rows]) for k, v in self.kv], config=model.config)


def prefill(model, prompts: list[list[int]], pad_id: int) -> Prompts:
    """Run the prompts (token ids) once, left-padded, keeping their KV cache; logits only at the
    last position."""
    device = next(model.parameters()).device
    width = max(len(p) for p in prompts)
    ids = torch.tensor([[pad_id] * (width - len(p)) + p for p in prompts], device=device)  # (P, W)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)  # (P, W)
    positions = (mask.cumsum(1) - 1).clamp(min=0)  # real tokens at 0..len-1, as without padding
    cache = DynamicCache(config=model.config)
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                use_cache=True, logits_to_keep=1)
    kv = [(layer.keys, layer.values) for layer in cache.layers]
    return Prompts(ids, mask, positions, kv, out.logits[:, -1])  # last_logits: (P, V)


@dataclass
class TokenStats:
    """Per label position of one scored text (its tokens + EOS), from the logits that predict it:
    hit (bool): the greedy token is the label; mu, var (float32): mean and variance of log p(v)
    under p over the vocabulary, μ = Σ_v p_v log p_v, σ² = Σ_v p_v (log p_v)² − μ² (Min-K%++)."""

    hit: torch.Tensor
    mu: torch.Tensor
    var: torch.Tensor


def token_stats(logits: torch.Tensor, labels: torch.Tensor) -> TokenStats:
    """TokenStats of one text from its predicting logits (n, V) and its labels (n,)."""
    logp = torch.log_softmax(logits.float(), dim=-1)  # (n, V)
    p = logp.exp()
    mu = (p * logp).sum(-1)
    var = (p * logp.square()).sum(-1) - mu.square()
    return TokenStats((logits.argmax(-1) == labels).cpu(), mu.cpu(), var.cpu())


def continuation_nll(model, prompts: Prompts, rows: list[int], texts: list[list[int]]) -> list[torch.Tensor]:
    """Per-token NLL (1-D, CPU) of each text's tokens `texts[i]` (answer ids + EOS: all labels)
    after prompt row `rows[i]` (`continuation_scores` without token statistics)."""
    return continuation_scores(model, prompts, rows, texts)[0]


def continuation_scores(model, prompts: Prompts, rows: list[int], texts: list[list[int]],
                        stats: list[bool] | None = None) -> tuple[list[torch.Tensor], list[TokenStats | None]]:
    """Per-token NLL (1-D, CPU) of each text's tokens `texts[i]` (answer ids + EOS: all labels)
    after prompt row `rows[i]`, and, where `stats[i]`, its `TokenStats` from the same logits
    (one text at a time: an (n, V) float32 log-softmax, not the batch's).

    The suffix batch holds, per row, the prompt's last token then the text: (B, 1 + L). Its logits
    are the prompt's last logits at position 0 and the model's on the text at 1..n-1 (the closing
    EOS predicts nothing and is not run); `per_token_nll` aligns logits at t-1 with labels at t."""
    B, L = len(texts), max(len(t) for t in texts)
    device = prompts.ids.device
    index = torch.tensor(rows, device=device)
    ids = torch.zeros((B, 1 + L), dtype=torch.long, device=device)  # padding: id 0, masked, never a label
    labels = torch.zeros((B, 1 + L), dtype=torch.bool, device=device)
    ids[:, 0] = prompts.ids[index, -1]
    for i, t in enumerate(texts):
        ids[i, 1:1 + len(t)] = torch.tensor(t, device=device)
        labels[i, 1:1 + len(t)] = True
    parts = [prompts.last_logits[index].unsqueeze(1)]  # (B, 1, V): predicts label 1
    if L > 1:
        inputs, inputs_mask = ids[:, 1:L], labels[:, 1:L].long()  # text tokens but the last: (B, L-1)
        positions = prompts.positions[index, -1:] + 1 + torch.arange(L - 1, device=device)  # (B, L-1)
        # a short text beside a long one is padded past its own end: those positions are masked and
        # predict no label, but must still index the position table (real ones fit: `encode` checks)
        positions = positions.clamp(max=(model_context(model) or 10**6) - 1)
        parts.append(model(input_ids=inputs, attention_mask=torch.cat([prompts.mask[index], inputs_mask], 1),
                           position_ids=positions,
                           past_key_values=prompts.cache(model, index), use_cache=True).logits)  # (B, L-1, V)
    parts.append(torch.zeros_like(parts[0]))  # position L predicts nothing
    logits = torch.cat(parts, 1)  # (B, 1 + L, V)
    suffix = Batch(ids, labels.long(), labels, torch.zeros_like(labels), torch.full((B, 1 + L, 2), -1),
                   [""] * B, [1] * B)
    nll = per_token_nll(logits, suffix)  # (B, 1 + L)
    extra = [token_stats(logits[i, :len(t)], ids[i, 1:1 + len(t)]) if stats is not None and stats[i] else None
             for i, t in enumerate(texts)]  # logits at 0..n-1 predict labels 1..n
    return [nll[i, labels[i]].cpu() for i in range(B)], extra


def eos_ids(model, tokenizer) -> list[int]:
    """Every id that ends an answer of this model: the tokenizer's EOS, then each id of the model's
    generation config's `eos_token_id` (an int or a list, as HF `generate` reads it: SmolLM2-Instruct
    ends a turn with <|im_end|>, Llama-3-Instruct with <|eot_id|> or <|eom_id|>), else its config's."""
    ids = [tokenizer.eos_token_id]
    config = getattr(model, "generation_config", None)
    listed = getattr(config, "eos_token_id", None) if config is not None else None
    if listed is None:
        listed = getattr(getattr(model, "config", None), "eos_token_id", None)
    ids += listed if isinstance(listed, (list, tuple)) else [listed]
    return list(dict.fromkeys(int(i) for i in ids if i is not None))


def greedy_decode(model, prompts: Prompts, rows: list[int], max_new_tokens: int,
                  eos_id: int | list[int]) -> list[list[int]]:
    """Greedy new tokens after prompt rows `rows`, each ending at its first EOS, any of `eos_id`
    (kept), or after `max_new_tokens`. One token per step on the KV cache; a row that has produced
    EOS leaves the batch (HF `generate` would keep feeding it padding: the other rows' tokens are the same)."""
    device = prompts.ids.device
    index = torch.tensor(rows, device=device)
    cache, mask, pos = prompts.cache(model, index), prompts.mask[index], prompts.positions[index, -1]
    logits = prompts.last_logits[index]  # (b, V)
    alive = list(range(len(rows)))  # output row of each batch row
    out: list[list[int]] = [[] for _ in rows]
    stop = torch.tensor([eos_id] if isinstance(eos_id, int) else list(eos_id), device=device)
    for step in range(max_new_tokens):
        nxt = logits.argmax(-1)  # (b,)
        for r, t in zip(alive, nxt.tolist()):
            out[r].append(t)
        going = ~torch.isin(nxt, stop)
        if step == max_new_tokens - 1 or not going.any():
            break
        if not going.all():
            keep = going.nonzero().squeeze(1)
            alive = [alive[i] for i in keep.tolist()]
            nxt, mask, pos = nxt[keep], mask[keep], pos[keep]
            cache.batch_select_indices(keep)
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)  # (b, W + step + 1)
        pos = pos + 1
        logits = model(input_ids=nxt[:, None], attention_mask=mask, position_ids=pos[:, None],
                       past_key_values=cache, use_cache=True).logits[:, -1]
    return out


@dataclass
class Outputs:
    """What `run` returns: question -> greedy answer; (question, text) -> per-token NLL over the
    text's label positions (its tokens + EOS), 1-D CPU float32."""

    generations: dict[str, str] = field(default_factory=dict)
    nll: dict[tuple[str, str], torch.Tensor] = field(default_factory=dict)
    stats: dict[tuple[str, str], TokenStats] = field(default_factory=dict)  # the pairs `run` was asked `stats` for


_WORK: OrderedDict = OrderedDict()  # (tokenizer id, prompt format, questions, pairs) -> (tokenizer, work)
_WORK_ENTRIES = 8  # a run's per-epoch, full and holdout passes, with room to spare


def _work(tokenizer, generate: list[str], score: list[tuple[str, str]]) -> dict[tuple[int, ...], tuple[list, list]]:
    """Prompt ids -> (questions to answer, [(pair, text ids)]): `prompt_ids`' tokens of each
    question to answer, `encode`'s of each scored pair split at its prompt. Tokenisation does not
    change between a run's evaluations, so the last few are kept (keyed by the tokenizer object,
    held by the entry so that its id stays its own, the prompt format's key and the inputs); callers
    only read the result."""
    key = (id(tokenizer), format_of(tokenizer).key(tokenizer), tuple(generate), tuple(score))
    if key in _WORK:
        _WORK.move_to_end(key)
        return _WORK[key][1]
    work: dict[tuple[int, ...], tuple[list, list]] = {}
    for q, ids in zip(generate, prompt_ids(tokenizer, generate) if generate else []):
        work.setdefault(tuple(ids), ([], []))[0].append(q)
    for chunk in iter_batches(score, 256):  # encode's padded tensors stay small
        enc = encode(tokenizer, [q for q, _ in chunk], [t for _, t in chunk])
        for i, pair in enumerate(chunk):
            row = enc.input_ids[i, :int(enc.attention_mask[i].sum())].tolist()
            p = enc.prompt_lengths[i]
            work.setdefault(tuple(row[:p]), ([], []))[1].append((pair, row[p:]))
    _WORK[key] = (tokenizer, work)
    while len(_WORK) > _WORK_ENTRIES:
        _WORK.popitem(last=False)
    return work


@torch.no_grad()
def run(model, tokenizer, generate: list[str], score: list[tuple[str, str]], max_new_tokens: int = 64,
        batch_size: int = 64, progress: Callable[[int, int], None] | None = None,
        stats: list[tuple[str, str]] = ()) -> Outputs:
    """Greedy answers to the questions `generate` and per-token NLLs of the (question, text) pairs
    `score`, each distinct prompt run once (`prefill`), in batches of `batch_size` prompts sorted by
    length, the prompts that are answered before the score-only ones (fewer decode loops); each
    batch's texts are scored in batches of `batch_size` rows sorted by length. Tokenisation comes
    from `_work` (kept between a run's evaluations).

    Tokenisation is `prompt_ids`' for generation and `encode`'s for scoring (a pair's prompt is the
    prompt part of its own `prompt + text + EOS` row, so joint formats stay exact). Prompts that
    are the same token ids run once. progress(done, total): distinct questions whose prompts have
    all run. stats: pairs (scored too) whose `TokenStats` are also wanted (`Outputs.stats`)."""
    out = Outputs()
    want = set(stats)
    work = _work(tokenizer, list(dict.fromkeys(generate)), list(dict.fromkeys([*score, *stats])))
    # prompts with a question to answer first (shortest first), then the score-only ones: a subsampled
    # evaluation's few greedy rows share as few batches (decode loops) as they can; when every prompt
    # is answered (the full protocol) this is the plain length order
    batches = list(iter_batches(sorted(work, key=lambda k: (not work[k][0], len(k))), batch_size))
    last_batch = {}  # question -> the batch after which all of its prompts have run
    for b, keys in enumerate(batches):
        for key in keys:
            last_batch.update({q: b for q in work[key][0] + [pair[0] for pair, _ in work[key][1]]})
    finished_after = Counter(last_batch.values())
    report = progress or (lambda done, total: None)
    done = 0
    report(done, len(last_batch))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    eos = eos_ids(model, tokenizer)
    room = model_context(model) or 10**6
    with eval_mode(model):
        for b, keys in enumerate(batches):
            prompts = prefill(model, [list(k) for k in keys], pad)
            jobs = sorted(((r, pair, text) for r, key in enumerate(keys) for pair, text in work[key][1]),
                          key=lambda job: len(job[2]))
            for part in iter_batches(jobs, batch_size):
                nll, extra = continuation_scores(model, prompts, [r for r, _, _ in part], [t for _, _, t in part],
                                                 [pair in want for _, pair, _ in part])
                out.nll.update(zip([pair for _, pair, _ in part], nll))
                out.stats.update((pair, st) for (_, pair, _), st in zip(part, extra) if st is not None)
            asked = [(r, q) for r, key in enumerate(keys) for q in work[key][0]]
            if asked:
                new = max(1, min(max_new_tokens, room - prompts.ids.shape[1]))
                tokens = greedy_decode(model, prompts, [r for r, _ in asked], new, eos)
                for (_, q), row in zip(asked, tokens):
                    row = row[:-1] if row and row[-1] in eos else row  # a row ends at its first EOS
                    out.generations[q] = tokenizer.decode(row, skip_special_tokens=True).strip()
            done += finished_after[b]
            report(done, len(last_batch))
    return out
