"""The memory plan's estimates (`engine/memory_plan/`) against measured peaks, per method, on
random-initialised GPT-2 models of ~1M, ~10M and ~100M parameters (fp32, CPU); `--family llama`:
Llama-style models of the same sizes and the real SmolLM2-135M-Instruct (`135M`, the converted
model of `python -m engine setup --model smollm2`, loaded in fp32).

Measured: the peak of the running sum of tensor allocations and frees that the torch profiler
records (`profile_memory=True`, its raw allocation events, see `peak_bytes`) during one call,
above what was live before it: tensor memory only, not the process's RSS (which also holds
libraries, allocator caches and freed pages). On cuda, torch.cuda.max_memory_allocated above
the memory allocated before the call.
Compared: that peak against the plan's total minus the terms already resident before the call
(the weights). Training cases measure the first step, when gradients and AdamW states appear.

    python benchmarks/memory_plan.py [--family gpt2|llama] [--sizes 1M,10M,100M[,135M]] [--seq 64]
                                     [--batch 8] [--cases TEXT ...] [--markdown FILE]

Target: every ratio estimate / measured within 0.75–1.25.
"""
from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parent.parent)  # repo root; benchmarks/selectors.py shadows nothing

import torch  # noqa: E402

from engine.losses import LOSSES  # noqa: E402
from engine.memory_plan import ModelShape, estimate_dto, estimate_forward, estimate_training  # noqa: E402
from engine.selectors import dto as dto_selector  # noqa: E402
from engine.tokens import Batch, forward_logits, kl_ref, per_token_nll  # noqa: E402

# name: (vocab, hidden, layers, heads)
SIZES = {"1M": (2048, 128, 4, 4), "10M": (8192, 256, 10, 4), "100M": (32000, 768, 12, 12)}
REAL = {"135M": "smollm2"}  # llama family only: a real model by its built-in name (engine.resolve)
DEFAULT_SIZES = {"gpt2": "1M,10M,100M", "llama": "1M,10M,100M,135M"}


def peak_bytes(fn, device: str) -> int:
    """Peak tensor bytes allocated during fn(), above what was live before it (see module doc).

    CPU: the profiler's raw allocation events (every allocation and free with its own size and
    time), summed in time order. Not the per-op `self_cpu_memory_usage` of `prof.events()`: that
    books each op's net memory at the op's start, so frees inside an op land before the
    allocations they follow, and the running sum under-counts a peak (a forward and backward of
    y = tanh(x·W), 4 MiB W, 1 MiB x and y, y held: 6 MiB instead of 7; the engine's GA step 25.5
    MiB instead of 30.6). benchmarks/memory_plan.py figures before issue 15's plan rework used that.
    """
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    deltas, stack = [], list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        event = stack.pop()
        stack.extend(event.children)
        fields = event.extra_fields
        if type(fields).__name__ == "_ExtraFields_Allocation" and fields.device.type == "cpu":
            deltas.append((event.start_time_ns, fields.alloc_size))  # negative for a free
    live = peak = 0
    for _, delta in sorted(deltas):
        live += delta
        peak = max(peak, live)
    return peak


def make_model(size: str, device: str, family: str = "gpt2"):
    """A random-initialised GPT-2 (or, family 'llama', a Llama-style model of the same sizes with
    I = 8H/3 rounded to 16 and H_kv = H/2: grouped-query attention), fp32, no dropout."""
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    if size in REAL:
        return real_model(size, device, family)
    vocab, hidden, layers, heads = SIZES[size]
    torch.manual_seed(0)
    if family == "llama":
        cfg = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=(8 * hidden // 3 + 15) // 16 * 16,
                          num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads // 2,
                          max_position_embeddings=256, tie_word_embeddings=False, attn_implementation="sdpa")
        return LlamaForCausalLM(cfg).to(device)
    cfg = GPT2Config(vocab_size=vocab, n_positions=256, n_embd=hidden, n_layer=layers, n_head=heads,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(cfg).to(device)


def real_model(size: str, device: str, family: str):
    """The real model `REAL[size]` (fp32, eval mode); SystemExit naming the setup command when it
    is not set up. Only in the llama family (SmolLM2 is a LlamaForCausalLM)."""
    from engine.resolve import SETUP_HINT, real_models

    name = REAL[size]
    if family != "llama":
        raise SystemExit(f"--sizes {size}: {name} is a Llama-family model; use --family llama")
    path = real_models()[name]
    if not path.is_dir():
        raise SystemExit(f"{name} is not set up: run `{SETUP_HINT[name]}` first (see README)")
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32).to(device).eval()


def make_batch(vocab: int, rows: int, seq: int, device: str) -> Batch:
    """Random ids; the second half of each row are label positions, the last one the closing EOS."""
    g = torch.Generator().manual_seed(rows * 1000 + seq)
    ids = torch.randint(0, vocab, (rows, seq), generator=g)
    label = torch.zeros((rows, seq), dtype=torch.bool)
    label[:, seq // 2:] = True
    eos = torch.zeros_like(label)
    eos[:, -1] = True
    offsets = torch.full((rows, seq, 2), -1, dtype=torch.long)
    return Batch(ids, torch.ones_like(ids), label, eos, offsets, [""] * rows, [seq // 2] * rows).to(device)


def train_step(model, batch: Batch, loss: str, retain: Batch | None = None, reference=None,
               checkpointing: bool = False, autocast=None):
    """One step the way `engine.train.step` takes it: forward (under `autocast`, a context, when
    given), per-token inputs (the logits dropped once they are used, as `loss_inputs` does), loss,
    backward, clip, AdamW (created here: its states appear in the first step)."""
    import contextlib

    from engine.models.device import adamw

    if checkpointing:  # as `engine.train.state.prepare` turns it on
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    opt = adamw([p for p in model.parameters() if p.requires_grad], lr=1e-5)  # the engine's optimiser
    with autocast or contextlib.nullcontext():
        logits = forward_logits(model, batch)
        inputs = {"nll": per_token_nll(logits, batch), "weights": batch.answer_mask.float(),
                  "answer_mask": batch.answer_mask}
        if reference is not None:
            with torch.no_grad():
                ref_logits = forward_logits(reference, batch)
            inputs["kl"] = kl_ref(ref_logits, logits, batch)
            del ref_logits
        del logits
        if retain is not None:
            inputs["retain_nll"] = per_token_nll(forward_logits(model, retain), retain)
            inputs["retain_mask"] = retain.label_mask
        spec = LOSSES[loss]
        value, _ = spec(**{k: v for k, v in inputs.items() if k in spec.inputs}, **spec.params({}))
    value.backward()
    del value, inputs
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    del opt
    if checkpointing:
        model.activation_checkpointing_disable()


def cases(vocab: int, seq: int, batch: int, probe: int):
    """(label, estimate terms, fn) per method; fn runs the method once on a fresh model state."""
    s_batch = make_batch(vocab, batch, seq, "cpu")
    retain = make_batch(vocab, batch, seq, "cpu")
    probe_rows = make_batch(vocab, probe, seq, "cpu")
    args = (probe_rows.input_ids, probe_rows.label_mask, probe_rows.answer_mask)

    def forward(m):
        with torch.no_grad():
            m.eval()
            per_token_nll(forward_logits(m, s_batch), s_batch)

    def dto(form):
        def run(m):
            m.eval()
            if form == "loop":
                dto_selector._probe_in_place(m, *args, 1e-2)
            else:
                dto_selector._probe_vmap(m, *args, 1e-2, first_order=form == "first_order")
        return run

    def dto_run(m):  # the reference copy is made inside the measured call, as `prepare` does
        train_step(m, s_batch, "dto", reference=copy.deepcopy(m).eval())

    def lora_run(m):  # the adapters (r·L·(…) parameters, a few hundred kB) are made inside the call
        from peft import LoraConfig, get_peft_model

        conv1d = any(type(x).__name__ == "Conv1D" for x in m.modules())
        lm = get_peft_model(m, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear",
                                          task_type="CAUSAL_LM", fan_in_fan_out=conv1d))
        train_step(lm, s_batch, "ga")

    return [
        (f"evaluation forward, batch {batch}", lambda s: estimate_forward(s, batch, seq, 4), forward),
        (f"dto probe exact, vmap k={probe}", lambda s: estimate_dto(s, probe, seq, 4, "exact"), dto("exact")),
        (f"dto probe first-order, vmap k={probe}", lambda s: estimate_dto(s, probe, seq, 4, "first_order"),
         dto("first_order")),
        ("dto probe exact, in-place loop", lambda s: estimate_dto(s, 1, seq, 4, "loop"), dto("loop")),
        (f"train ga, batch {batch}", lambda s: estimate_training(s, batch, seq, 4),
         lambda m: train_step(m, s_batch, "ga")),
        ("train ga + checkpointing", lambda s: estimate_training(s, batch, seq, 4, checkpointing=True),
         lambda m: train_step(m, s_batch, "ga", checkpointing=True)),
        ("train ga, LoRA r=8", lambda s: estimate_training(s.with_lora(8), batch, seq, 4), lora_run),
        ("train graddiff (retain in graph)", lambda s: estimate_training(s, batch, seq, 4, retain=True),
         lambda m: train_step(m, s_batch, "graddiff", retain=retain)),
        ("train dto loss (+reference copy)", lambda s: estimate_training(s, batch, seq, 4, reference_copy=True),
         dto_run),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default=None, help="comma-separated; default 1M,10M,100M (gpt2), "
                    "1M,10M,100M,135M (llama; 135M: SmolLM2-135M-Instruct, set up first)")
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--probe", type=int, default=2, help="DTO probe batch measured")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--family", default="gpt2", choices=("gpt2", "llama"))
    ap.add_argument("--cases", action="append", default=None, help="only the cases whose label contains "
                    "this text (repeat for several)")
    ap.add_argument("--terms", action="store_true", help="print each estimate's terms (MiB)")
    ap.add_argument("--markdown", default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    rows = ["| model | params | method | estimate MiB | measured MiB | est/meas |", "|---|---|---|---|---|---|"]
    print(rows[0]), print(rows[1])
    worst = 0.0
    t0 = time.time()
    wanted = a.cases
    for size in (a.sizes or DEFAULT_SIZES[a.family]).split(","):
        model = make_model(size, "cpu", a.family)
        shape = ModelShape.from_model(model)
        for label, estimate, fn in cases(model.config.vocab_size, a.seq, a.batch, a.probe):
            if wanted and not any(w in label for w in wanted):
                continue
            terms = estimate(shape)
            est = sum(terms.values()) - terms["weights"]  # the weights are resident before the call
            work = copy.deepcopy(model)
            measured = peak_bytes(lambda: fn(work), "cpu")
            del work
            ratio = est / measured
            worst = max(worst, abs(ratio - 1))
            name = size if a.family == "gpt2" else f"{size} {a.family}"
            line = (f"| {name} | {shape.params / 1e6:.2f}M | {label} | {est / 2**20:.1f} | {measured / 2**20:.1f} "
                    f"| {ratio:.2f} |")
            rows.append(line)
            print(line, flush=True)
            if a.terms:
                print("    " + ", ".join(f"{k} {v / 2**20:.1f}" for k, v in terms.items() if k != "weights"))
    print(f"\nworst |estimate/measured − 1| = {worst:.2f} (target ≤ 0.25); {time.time() - t0:.0f} s")
    if a.markdown:
        Path(a.markdown).write_text("\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
