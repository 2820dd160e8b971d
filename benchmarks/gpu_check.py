"""One script for a GPU machine (H100/H200): the device, a 1-epoch LoRA and a 1-epoch full run of the
built-in model on cuda (bf16 weights, `engine.train.unlearn(device='cuda')`), and, on a ~1B-parameter
random-initialised Llama-style model, the peak memory of evaluation, DTO scoring (exact and
first-order), one LoRA and one full training step, each in the precision the engine runs it in
(`memory_cases`), against `engine.memory_plan`'s estimates (the plan's commit is printed).

    python benchmarks/gpu_check.py              # cuda, ~1B model, < 5 minutes on an H100
    python benchmarks/gpu_check.py --tiny       # CPU, a small config: checks the script itself

Measured: torch.cuda.max_memory_allocated above what was allocated before the call (CPU: the
profiler's tensor allocations, see benchmarks/memory_plan.py). Compared: the plan's total minus
the weights (resident before the call). Prints a markdown table; writes $OUT/gpu_check.json when
OUT is set.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)

import torch  # noqa: E402

from engine.memory_plan import ModelShape, estimate_dto, estimate_forward, estimate_training  # noqa: E402

_spec = importlib.util.spec_from_file_location("memory_plan_bench", ROOT / "benchmarks" / "memory_plan.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

# name: (vocab, hidden, layers, heads, inner)
CONFIGS = {"1B": (32000, 2048, 16, 16, 5632), "tiny": (512, 64, 2, 4, 176)}


def build(name: str, device: str, dtype: torch.dtype):
    from transformers import LlamaConfig, LlamaForCausalLM

    vocab, hidden, layers, heads, inner = CONFIGS[name]
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                      num_key_value_heads=heads, intermediate_size=inner, max_position_embeddings=512,
                      tie_word_embeddings=False, attn_implementation="sdpa")
    torch.manual_seed(0)
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = LlamaForCausalLM(cfg)
    finally:
        torch.set_default_dtype(old)
    return model.eval()


def engine_runs(device: str, tiny: bool) -> list[dict]:
    """1-epoch LoRA and full runs of the built-in model (tiny: 2 steps, small evaluation, CPU)."""
    import tempfile

    from engine.store import Store
    from engine.train import RunConfig, unlearn

    out = []
    small = {"max_steps": 2, "retain_eval_size": 8, "eval_max_new_tokens": 4} if tiny else {}
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "store.sqlite")
        for lora in (True, False):
            if device.startswith("cuda"):
                torch.cuda.reset_peak_memory_stats()
            cfg = RunConfig(epochs=1, device=device, lora=lora, save_checkpoints=False, **small)
            r = unlearn(cfg, store)
            last = r.history[-1] if r.history else {}
            out.append({"run": "lora" if lora else "full", "status": r.status, "error": r.error,
                        "seconds": round(r.seconds, 2), "forget_quality": last.get("forget_quality"),
                        "model_utility": last.get("model_utility"),
                        "peak_mib": torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else None})
            print(f"engine run {out[-1]['run']}: {r.status} in {r.seconds:.1f} s, FQ {last.get('forget_quality')}, "
                  f"MU {last.get('model_utility')}" + (f", error {r.error}" if r.error else ""), flush=True)
    return out


def memory_cases(model, device: str, seq: int, batch: int, probe: int) -> list[dict]:
    """Each method in the precision the engine runs it in (`engine.models.device.precision_for`):
    evaluation on the weights as loaded (bf16 on cuda); DTO's probe in fp32 (the weights cast up
    for the call); a full and a LoRA (r = 8, all-linear) GA step on fp32 master weights under bf16
    autocast (cuda; fp32 on the CPU). The plan's estimate of each is taken with the same settings."""
    from peft import LoraConfig, get_peft_model

    from engine.models.device import computing_in, precision_for
    from engine.selectors import dto as dto_selector

    shape = ModelShape.from_model(model)
    b = next(model.parameters()).element_size()
    rows = bench.make_batch(shape.vocab, batch, seq, device)
    probe_rows = bench.make_batch(shape.vocab, probe, seq, device)
    args = (probe_rows.input_ids, probe_rows.label_mask, probe_rows.answer_mask)
    train = precision_for("train", device)
    out = []

    def forward():
        with torch.no_grad():
            bench.per_token_nll(bench.forward_logits(model, rows), rows)

    def dto(first_order: bool):
        return lambda: dto_selector._probe_vmap(model, *args, 1e-2, first_order=first_order)

    def measure(label, terms, fn):
        est = sum(terms.values()) - terms["weights"]
        t = time.perf_counter()
        try:
            peak = bench.peak_bytes(fn, device)
            err = None
        except torch.OutOfMemoryError as e:
            peak, err = None, f"out of memory: {e}"[:200]
        row = {"case": label, "estimate_mib": est / 2**20, "measured_mib": None if peak is None else peak / 2**20,
               "ratio": None if not peak else est / peak, "seconds": round(time.perf_counter() - t, 2), "error": err,
               "terms_mib": {k: round(v / 2**20, 1) for k, v in terms.items()}}
        out.append(row)
        print(f"  {label}: plan {row['estimate_mib']:.0f} MiB, measured "
              f"{'-' if peak is None else f'{peak / 2**20:.0f}'} MiB" + (f" ({err})" if err else ""), flush=True)
        print("    plan terms (MiB): " + ", ".join(f"{k} {v}" for k, v in row["terms_mib"].items()), flush=True)
        if device.startswith("cuda"):
            torch.cuda.empty_cache()

    dtype = str(next(model.parameters()).dtype).replace("torch.", "")
    measure(f"evaluation forward ({dtype} weights), batch {batch}", estimate_forward(shape, batch, seq, b), forward)
    with computing_in(model, torch.float32):  # as `select_dto` probes
        for first_order, name in ((False, "exact"), (True, "first-order")):
            measure(f"DTO {name} (fp32 probe), probe batch {probe}",
                    estimate_dto(shape, probe, seq, 4, "first_order" if first_order else "exact"), dto(first_order))
        step_kw = {"autocast": train.autocast, "device": device}
        label = "fp32 weights, bf16 autocast" if train.autocast else "fp32"
        measure(f"full step (ga, {label}), batch {batch}", estimate_training(shape, batch, seq, 4, **step_kw),
                lambda: bench.train_step(model, rows, "ga", autocast=train.context()))
        model.zero_grad(set_to_none=True)
        lora = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear",
                                                task_type="CAUSAL_LM"))
        measure(f"LoRA step (ga, r=8, {label}), batch {batch}",
                estimate_training(ModelShape.from_model(lora), batch, seq, 4, **step_kw),
                lambda: bench.train_step(lora, rows, "ga", autocast=train.context()))
    return out


def plan_version() -> str:
    """The last commit of engine/memory_plan/ (git), '+changes' when the package differs from it."""
    import subprocess

    def git(*cmd):
        return subprocess.run(["git", *cmd], cwd=ROOT, capture_output=True, text=True, timeout=10)

    try:
        commit = git("log", "-1", "--format=%h", "--", "engine/memory_plan").stdout.strip() or "unknown"
        return commit + ("+changes" if git("diff", "--quiet", "HEAD", "--", "engine/memory_plan").returncode else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="CPU and a small config (checks the script)")
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--probe", type=int, default=2)
    ap.add_argument("--skip-runs", action="store_true")
    a = ap.parse_args()
    started = time.time()
    cuda = torch.cuda.is_available() and not a.tiny
    device = "cuda" if cuda else "cpu"
    name = torch.cuda.get_device_name(0) if cuda else "cpu"
    import transformers

    print(f"device: {name}; torch {torch.__version__}, transformers {transformers.__version__}", flush=True)
    if not cuda and not a.tiny:
        print("no cuda device: rerun with --tiny for the CPU check")
        sys.exit(2)
    report = {"device": name, "torch": torch.__version__, "transformers": transformers.__version__}
    report["engine_runs"] = [] if a.skip_runs else engine_runs(device, a.tiny)
    dtype = torch.bfloat16 if cuda else torch.float32
    model = build("tiny" if a.tiny else "1B", device, dtype)
    seq = min(a.seq, 64) if a.tiny else a.seq
    shape = ModelShape.from_model(model)
    print(f"random Llama-style model: {shape.params / 1e9:.3f} B parameters, {dtype}, seq {seq}", flush=True)
    report["model_params"] = shape.params
    report["plan_version"] = plan_version()
    report["memory"] = memory_cases(model, device, seq, a.batch, a.probe)
    report["seconds"] = round(time.time() - started, 1)
    lines = [f"| case ({shape.params / 1e9:.2f} B params, {name}, plan {report['plan_version']}) | plan MiB "
             "| measured MiB | plan / measured |", "|---|---|---|---|"]
    for r in report["memory"]:
        meas = "OOM" if r["measured_mib"] is None else f"{r['measured_mib']:.0f}"
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}"
        lines.append(f"| {r['case']} | {r['estimate_mib']:.0f} | {meas} | {ratio} |")
    for r in report["engine_runs"]:
        peak = "" if r["peak_mib"] is None else f"{r['peak_mib']:.0f}"
        lines.append(f"| engine 1-epoch {r['run']} run: {r['status']}, {r['seconds']} s | | {peak} | |")
    print("\n" + "\n".join(lines))
    print(f"\ntotal {report['seconds']} s")
    out = os.environ.get("OUT")
    if out:
        Path(out, "gpu_check.json").write_text(json.dumps(report, indent=2))
        print(f"wrote {out}/gpu_check.json")


if __name__ == "__main__":
    main()
