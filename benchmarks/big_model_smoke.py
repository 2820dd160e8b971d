"""Issue 15's "done when": a ~100M-parameter model goes through Explore (every registered selector)
and a 1-epoch DTO run on a 2-core CPU machine without swapping. Prints a Markdown table of seconds
and peak memory per stage, and whether swap was used.

    OMP_NUM_THREADS=2 python benchmarks/big_model_smoke.py [--layers 14] [--samples 8]
        [--atwu-steps 5] [--retain-eval-size 200] [--max-steps N] [--work DIR] [--json FILE]

1. Model: a random-initialised GPT-2 (config only, nothing downloaded): the built-in tokenizer's
   vocabulary (2,048), n_embd 768, n_head 12, n_positions 256, `--layers` blocks (14: 101.0 M
   parameters incl. embeddings, 12: 86.8 M), saved as a safetensors HF directory with the built-in
   tokenizer and the plain prompt format (what `engine.models.load_model` accepts).
2. Explore, the way the Explore tab calls it (`engine.explore.ExploreService`, device cpu): the
   first chunk of the built-in forget split (`--samples` rows = the service's chunk size), its
   tokens and probabilities (`info`), then every selector's row (`selector_row`, the chunk scored
   in one batched call). ATWU has no scorer for a new model: its row is "unavailable" until the
   tab's "fit" button runs `engine.train.fit_atwu_scorer` (`--atwu-steps` model steps; the scorer
   steps every 5) and drops the cached atwu rows; both are timed. TIF uses its default predictor,
   the target model itself (no extra model).
3. The cached Explore models are released (the app's `JobManager(before_run=…)` hook), then one
   `engine.train.unlearn` run: loss `dto`, selector `dto`, 1 epoch, cpu, checkpoints into a
   temporary store. FQ's gold standard: the built-in retain model `demo-retain`
   (`resolve.retain_model_for` picks it for the built-in data). It has another architecture
   (1 M parameters) but the same tokenizer and data, and FQ only compares per-question truth
   ratios, so FQ is available.

The workbench cache (step-0 evaluations, ATWU scorers, reference truth ratios) is a fresh folder
in the work directory, so every stage runs cold, as on a first visit.

Memory: peak resident set per stage from /proc/self/status VmHWM, reset before each stage by
writing 5 to /proc/self/clear_refs (Linux ≥ 4.0; where that fails the peak is cumulative and the
table says so), plus the whole process's ru_maxrss. Swap: SwapTotal/SwapFree of /proc/meminfo and
pswpin/pswpout of /proc/vmstat before and after (machine-wide counters: another job's swapping
would show too).
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # before any stdlib import: benchmarks/selectors.py would shadow `selectors`

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

MiB = 2**20


# ---------------------------------------------------------------- memory and swap

def proc_status() -> dict[str, int]:
    """VmRSS and VmHWM of this process, bytes."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key = line.split(":", 1)[0]
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(line.split()[1]) * 1024
    return out


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (/proc/self/clear_refs, 5); False where the kernel refuses."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def swap_state() -> dict[str, int]:
    """SwapTotal, SwapFree (bytes, /proc/meminfo), pswpin, pswpout (pages, /proc/vmstat)."""
    out = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key = line.split(":", 1)[0]
            if key in ("SwapTotal", "SwapFree", "MemAvailable", "MemTotal"):
                out[key] = int(line.split()[1]) * 1024
    with open("/proc/vmstat") as f:
        for line in f:
            key, value = line.split()
            if key in ("pswpin", "pswpout"):
                out[key] = int(value)
    return out


def maxrss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


class Stages:
    """Times stages and records each one's peak RSS (VmHWM since the stage began) and swap counters."""

    def __init__(self):
        self.rows: list[dict] = []
        self.resettable = reset_peak()

    def run(self, name: str, fn, note="", peak=None):
        """fn() timed; note: a string or note(result); peak: a callable giving the stage's peak RSS
        in MiB when fn resets the peak itself (else VmHWM at the end of the stage)."""
        reset_peak()
        before = swap_state()
        rss0 = proc_status()["VmRSS"]
        t0 = time.perf_counter()
        print(f"[{time.strftime('%H:%M:%S')}] {name} ...", flush=True)
        result = fn()
        seconds = time.perf_counter() - t0
        after = swap_state()
        st = proc_status()
        row = {"stage": name, "seconds": seconds, "rss_before_mib": rss0 / MiB,
               "peak_mib": peak() if peak is not None else st["VmHWM"] / MiB,
               "rss_after_mib": st["VmRSS"] / MiB, "mem_available_min_mib": min(before["MemAvailable"],
                                                                                  after["MemAvailable"]) / MiB,
               "pswpout": after["pswpout"] - before["pswpout"], "pswpin": after["pswpin"] - before["pswpin"],
               "swap_used_delta_mib": ((before["SwapFree"] - after["SwapFree"]) / MiB), "note": note}
        if callable(note):
            row["note"] = note(result)
        self.rows.append(row)
        print(f"[{time.strftime('%H:%M:%S')}] {name}: {seconds:.1f} s, peak RSS {row['peak_mib']:.0f} MiB, "
              f"RSS after {row['rss_after_mib']:.0f} MiB{'; ' + row['note'] if row['note'] else ''}", flush=True)
        return result


# ---------------------------------------------------------------- the model

def build_model(out: Path, layers: int, hidden: int, heads: int, positions: int, seed: int = 0) -> int:
    """A random GPT-2 with the built-in tokenizer, saved as safetensors + tokenizer + plain prompt
    format into `out`; returns its parameter count."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from engine.models.loading import load_tokenizer
    from engine.prompts import PLAIN, save_format
    from engine.resolve import model_path

    tok = load_tokenizer(model_path("demo"))
    cfg = GPT2Config(vocab_size=len(tok), n_positions=positions, n_embd=hidden, n_layer=layers, n_head=heads,
                     bos_token_id=tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id,
                     eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(cfg)
    n = sum(p.numel() for p in model.parameters())
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    save_format(out, PLAIN)
    del model
    return n


# ---------------------------------------------------------------- the stages

def explore_stages(stages: Stages, model_dir: str, samples: int, atwu_steps: int) -> dict:
    """Explore's calls on the first chunk: info, then every selector; ATWU fitted when unavailable."""
    from engine import selectors
    from engine.explore import ExploreService
    from engine.train import fit_atwu_scorer

    svc = ExploreService(device="cpu", chunk_size=samples)
    stages.run("explore: load model", lambda: svc.model(model_dir))
    stages.run(f"explore: tokens + probabilities ({samples} samples)", lambda: svc.info(model_dir, "demo", "forget", 0))
    rows = {}

    def row_note(name):
        def note(row):
            if not row.ok:
                return f"unavailable: {row.error[:60]}…"
            shown = {k: v for k, v in row.params.items() if k in ("mode", "probe_batch", "method", "predictor")}
            return ", ".join(f"{k}={v}" for k, v in shown.items())
        return note

    for name in selectors.SELECTORS:
        rows[name] = stages.run(f"explore: `{name}`",
                                lambda name=name: svc.selector_row(model_dir, "demo", "forget", 0, name),
                                note=row_note(name))
    if not rows["atwu"].ok:
        stages.run(f"explore: fit ATWU scorer ({atwu_steps} model steps)",
                          lambda: fit_atwu_scorer(model_dir, "demo", steps=atwu_steps, device="cpu"),
                          note=lambda p: f"saved {Path(p).name}")
        svc.forget("atwu")
        rows["atwu"] = stages.run("explore: `atwu` (fitted)",
                                  lambda: svc.selector_row(model_dir, "demo", "forget", 0, "atwu"),
                                  note=row_note("atwu"))
    stages.run("explore: release models", svc.release_models, note=lambda n: f"{n} model(s) dropped")
    return {n: (r.ok, r.error) for n, r in rows.items()}


def dto_run(stages: Stages, model_dir: str, work: Path, retain_eval_size: int, max_steps: int | None) -> dict:
    from engine.store import Store
    from engine.train import RunConfig, unlearn

    store = Store(work / "store.sqlite")
    cfg = RunConfig(model=model_dir, data="demo", loss="dto", selector="dto", epochs=1, device="cpu",
                    retain_eval_size=retain_eval_size, max_steps=max_steps)
    events = []
    eval_started: dict[int, float] = {}
    eval_seconds: dict[int, float] = {}

    phase_peaks: dict[str, float] = {}  # the run's own phases: peak RSS (MiB) while each was current
    current = ["loading"]

    def enter(label: str) -> None:
        """Close the peak of the current phase and start measuring `label`'s."""
        if label != current[0]:
            peak = proc_status()["VmHWM"] / MiB
            phase_peaks[current[0]] = max(phase_peaks.get(current[0], 0.0), peak)
            reset_peak()
            current[0] = label

    def progress(info: dict) -> None:
        phase, now = info.get("phase"), time.perf_counter()
        label = {"train": "training", "saving": "saving", "loading": "loading"}.get(
            phase, f"evaluation, epoch {info.get('epoch')}")
        enter(label)
        if phase == "train":
            print(f"    step {info['step']}/{info['total_steps']} loss {info['loss']:.4f} "
                  f"({time.strftime('%H:%M:%S')})", flush=True)
        elif phase == "evaluating" and "eval_done" in info:
            print(f"    evaluated {info['eval_done']}/{info['eval_total']} questions "
                  f"({time.strftime('%H:%M:%S')})", flush=True)
        elif phase in ("loading", "evaluating", "saving"):
            if phase == "evaluating":
                eval_started.setdefault(info.get("epoch"), now)
            print(f"    phase {phase} epoch {info.get('epoch')} ({time.strftime('%H:%M:%S')})", flush=True)
        elif phase == "eval":
            m = info["metrics"] or {}
            if info["epoch"] in eval_started:
                eval_seconds[info["epoch"]] = now - eval_started[info["epoch"]]
            print(f"    eval epoch {info['epoch']}: FQ {m.get('forget_quality')} MU {m.get('model_utility')}",
                  flush=True)
        events.append({k: info.get(k) for k in ("phase", "step", "epoch")})

    def run():
        result = unlearn(cfg, store, progress)
        enter("done")
        return result

    result = stages.run("DTO run: 1 epoch (loss dto, selector dto)", run,
                        note=lambda r: f"{r.status}" + (f": {r.error}" if r.error else ""),
                        peak=lambda: max(phase_peaks.values()))  # the run's phases reset the peak
    phases = (store.get_run(result.run_id).phase_seconds if result.run_id is not None else None) or {}
    parts = [("loading: model, frozen reference copy, `dto` scores of the 100 forget samples", phases.get("loading"),
              "loading"),
             ("evaluation at step 0", eval_seconds.get(0), "evaluation, epoch 0"),
             (f"training: {max([e['step'] or 0 for e in events] or [0])} steps", phases.get("training"), "training"),
             ("evaluation after epoch 1", eval_seconds.get(1), "evaluation, epoch 1"),
             ("saving: best + final checkpoints", phases.get("saving"), "saving")]
    for name, seconds, key in parts:
        if seconds is not None or key in phase_peaks:
            stages.rows.append({"stage": f"   DTO run › {name}", "seconds": seconds, "peak_mib": phase_peaks.get(key),
                                "rss_after_mib": None, "pswpout": None, "note": ""})
    last = result.history[-1] if result.history else {}
    first = result.history[0] if result.history else {}
    return {"status": result.status, "error": result.error, "seconds": result.seconds, "phase_seconds": phases,
            "steps": max([e["step"] or 0 for e in events] or [0]), "eval_seconds": eval_seconds,
            "phase_peak_mib": {k: round(v) for k, v in phase_peaks.items()},
            "fq_step0": first.get("forget_quality"), "mu_step0": first.get("model_utility"),
            "fq": last.get("forget_quality"), "mu": last.get("model_utility"),
            "notes": last.get("notes")}


# ---------------------------------------------------------------- report

def table(rows: list[dict], resettable: bool) -> str:
    peak = "peak RSS MiB (VmHWM in stage)" if resettable else "peak RSS MiB (cumulative: clear_refs refused)"
    lines = [f"| stage | seconds | {peak} | RSS after MiB | swap-out pages |", "|---|---|---|---|---|"]
    def num(x, fmt):
        return "" if x is None else format(x, fmt)

    for r in rows:
        note = f" ({r['note']})" if r["note"] else ""
        lines.append(f"| {r['stage']}{note} | {num(r['seconds'], '.1f')} | {num(r['peak_mib'], ',.0f')} "
                     f"| {num(r['rss_after_mib'], ',.0f')} | {num(r['pswpout'], 'd')} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layers", type=int, default=14, help="GPT-2 blocks (14: 101.0 M parameters)")
    ap.add_argument("--hidden", type=int, default=768)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--positions", type=int, default=256)
    ap.add_argument("--samples", type=int, default=8, help="Explore chunk: the first N forget samples")
    ap.add_argument("--atwu-steps", type=int, default=5, help="model steps of the ATWU fit (the scorer steps every 5)")
    ap.add_argument("--retain-eval-size", type=int, default=200, help="RunConfig.retain_eval_size (default 200)")
    ap.add_argument("--max-steps", type=int, default=None, help="cap the DTO run's optimiser steps (default: none)")
    ap.add_argument("--skip-explore", action="store_true")
    ap.add_argument("--skip-run", action="store_true")
    ap.add_argument("--work", default=None, help="folder for the model and the run's store (default: a temp dir)")
    ap.add_argument("--json", default=None, help="also write the figures as JSON here")
    args = ap.parse_args()

    threads = int(os.environ.get("OMP_NUM_THREADS", "2"))
    torch.set_num_threads(threads)
    start_swap = swap_state()
    tmp = None
    if args.work:
        work = Path(args.work)
        work.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="big_model_smoke_")
        work = Path(tmp.name)
    model_dir = str(work / "model")
    from engine import paths

    cache = work / "cache"  # a cold cache: no step-0 evaluation or ATWU scorer from an earlier run
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir()
    paths.cache_dir = lambda: cache
    stages = Stages()
    n_params = stages.run("build + save model", lambda: build_model(Path(model_dir), args.layers, args.hidden,
                                                                     args.heads, args.positions),
                          note=lambda n: f"{n:,} parameters")
    explore = explore_stages(stages, model_dir, args.samples, args.atwu_steps) if not args.skip_explore else None
    run = dto_run(stages, model_dir, work, args.retain_eval_size, args.max_steps) if not args.skip_run else None
    end_swap = swap_state()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    swapped = (end_swap["pswpout"] - start_swap["pswpout"]) > 0 or end_swap["SwapFree"] < start_swap["SwapFree"]

    print()
    print(f"## big-model smoke: GPT-2 {args.layers}×{args.hidden}, {n_params:,} parameters, "
          f"commit {commit}, torch {torch.__version__}, {threads} thread(s)")
    print()
    print(table(stages.rows, stages.resettable))
    print()
    print(f"process peak RSS: {max(r['peak_mib'] for r in stages.rows if r['peak_mib'] is not None):,.0f} MiB "
          f"(the largest stage peak; ru_maxrss {maxrss_bytes() / MiB:,.0f} MiB is lowered by the VmHWM resets); "
          f"machine: SwapTotal {start_swap['SwapTotal'] / MiB:.0f} MiB, MemTotal {start_swap['MemTotal'] / MiB:,.0f} MiB, "
          f"pswpout {start_swap['pswpout']} → {end_swap['pswpout']}, SwapFree {start_swap['SwapFree'] / MiB:.0f} → "
          f"{end_swap['SwapFree'] / MiB:.0f} MiB: swap {'USED' if swapped else 'not used'}")
    if explore is not None:
        bad = {n: e for n, (ok, e) in explore.items() if not ok}
        print(f"Explore: {len(explore) - len(bad)} of {len(explore)} selectors produced rows"
              + (f"; unavailable: {bad}" if bad else ""))
    if run is not None:
        print(f"DTO run: {run['status']} in {run['seconds']:.1f} s ({run['steps']} steps), phases {run['phase_seconds']}, "
              f"evaluation seconds per epoch {({k: round(v, 1) for k, v in run['eval_seconds'].items()})}, "
              f"peak RSS MiB per phase {run['phase_peak_mib']}; "
              f"step 0 FQ {run['fq_step0']} MU {run['mu_step0']}; after epoch 1 FQ {run['fq']} MU {run['mu']}"
              + (f"; error {run['error']}" if run["error"] else ""))
    if args.json:
        Path(args.json).write_text(json.dumps({"params": n_params, "commit": commit, "threads": threads,
                                               "stages": stages.rows, "ru_maxrss_mib": maxrss_bytes() / MiB,
                                               "swap_used": swapped, "explore": explore, "run": run},
                                              indent=1, default=str))
    if tmp is not None:
        tmp.cleanup()
    ok = not swapped and (run is None or run["status"] == "finished") and \
        (explore is None or all(ok for ok, _ in explore.values()))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
