"""`finetune`: TOFU's first step. Train a target model on forget + retain and a retain model on
the retain split, from a local HF causal LM or a tiny from-scratch GPT-2, then report how well
each memorised the forget set. Under `accelerate launch` / `torchrun` the ranks share every step
(data parallel, or `--sharding fsdp`); rank 0 saves and reports (docs/multi-gpu.md)."""
from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

from .. import tokens
from ..data import Sample
from . import UserError
from .checks import check_lora, check_out_folder

NAME = "finetune"
HELP = ("fine-tune a target model (forget + retain = TOFU's full.json) and a retain model "
        "(retain{100-N}.json) from a local HF model or the tiny from-scratch config; resumable")
TINY = "tiny"
MEMORISED_TOP1 = 0.9  # below this teacher-forced top-1 on forget, the target has not memorised it
EXIT_NOT_MEMORISED = 3


def add_arguments(p) -> None:
    p.add_argument("--base", default=TINY, help=f"a local HF causal LM directory, or '{TINY}' (a fresh 4-layer "
                   "GPT-2 and a BPE tokenizer trained on the data, the built-in models' recipe)")
    p.add_argument("--data", required=True, help="TOFU-layout directory (optionally DIR/forgetN): the target "
                   "trains on forgetN + retain{100-N}, the retain model on retain{100-N}; with --base tiny "
                   "both also learn real_authors and world_facts")
    p.add_argument("--out", required=True, help="writes OUT/target, OUT/retain (safetensors HF directories), "
                   "OUT/memorisation.json; OUT/.state holds per-epoch resume state")
    p.add_argument("--models", default="target,retain", help="which to train (default: target,retain)")
    p.add_argument("--epochs", type=int, help="default: 5 (TOFU) for an HF base, 20 for tiny")
    p.add_argument("--lr", type=float, help="default: 1e-5 (TOFU) for an HF base, 3e-3 for tiny")
    p.add_argument("--weight-decay", type=float, help="default: 0.01 (TOFU) for an HF base, 0 for tiny")
    p.add_argument("--batch-size", type=int, default=4, help="micro-batch size (default 4)")
    p.add_argument("--effective-batch", type=int, default=32, help="batch per optimiser step (TOFU: 32)")
    p.add_argument("--lora", action="store_true", help="train LoRA adapters (merged into the saved model)")
    p.add_argument("--lora-r", type=int, default=8)
    p.add_argument("--lora-alpha", type=int, default=16)
    p.add_argument("--staged", action="store_true",
                   help="target: train on the retain split first, then on everything (forget + retain), so "
                        "the forget set is learnt on top of a kept retain set (needed on real text for a "
                        "from-scratch model)")
    p.add_argument("--until-top1", type=float, help="stop training the target once its teacher-forced "
                   "top-1 on the forget set reaches this (checked after each epoch)")
    p.add_argument("--max-epochs", type=int, help="the cap for --until-top1 (default 3 × --epochs)")
    p.add_argument("--max-new-tokens", type=int, default=200, help="generation length of the report")
    p.add_argument("--device", default="auto")
    p.add_argument("--sharding", default="ddp", choices=["ddp", "fsdp"],
                   help="under accelerate launch / torchrun: ddp (whole model per process) or fsdp (parameters, "
                        "gradients and AdamW states sharded over the processes); ignored in one process")
    p.add_argument("--vocab-size", type=int, default=2048, help="tiny only: BPE vocabulary size")
    p.epilog = (p.epilog or "") + (f"\n\nExit code {EXIT_NOT_MEMORISED}: the target model did not memorise its "
                                   f"forget set (teacher-forced top-1 < {MEMORISED_TOP1} or below --until-top1).")


def _settings(args, tiny: bool, world: int = 1):
    """TOFU's settings for an HF base, the built-in recipe's for tiny; the effective batch is split
    over the `world` processes of a launch (grad_accum = effective / (batch_size × world))."""
    from ..models.finetune import TrainSettings  # deferred: torch

    accum = max(1, args.effective_batch // (args.batch_size * world))
    return TrainSettings(epochs=args.epochs or (20 if tiny else 5), lr=args.lr or (3e-3 if tiny else 1e-5),
                         weight_decay=args.weight_decay if args.weight_decay is not None else (0.0 if tiny else 0.01),
                         batch_size=args.batch_size, grad_accum=accum, warmup_steps=0 if not tiny else 30,
                         warmup_epochs=0.0 if tiny else 1.0, schedule="cosine" if tiny else "linear",  # TOFU's
                         betas=(0.9, 0.98) if tiny else (0.9, 0.999), batching="length")


def _all_texts(bench) -> list[tokens.Batch]:
    splits = bench.forget + bench.retain + (bench.retain_eval or []) + bench.real_authors + bench.world_facts
    return splits


def _tiny_tokenizer(bench, vocab_size: int):
    """A BPE tokenizer on every text of the data; context = the longest question + any answer
    variant + EOS, rounded up to 64, plus room for `--max-new-tokens` is not reserved (answers only)."""
    from ..models.builtin import train_tokenizer  # deferred: torch
    from ..models.finetune import context_length  # deferred: torch

    samples = _all_texts(bench)
    texts = [t for s in samples for t in (s.question, s.answer, s.paraphrased_answer or "", *s.perturbed_answers)]
    tok = train_tokenizer(texts, vocab_size, 10**6)
    variants = [Sample(s.question, a) for s in samples for a in (s.answer, *s.perturbed_answers,
                                                                  *([s.paraphrased_answer] if s.paraphrased_answer else []))]
    n_ctx = -(-context_length(tok, variants) // 64) * 64
    tok.model_max_length = n_ctx
    return tok, n_ctx


def _fresh_model(args, tok, n_ctx, accelerator=None):
    from ..models import load_model  # deferred: torch
    from ..models.finetune import tiny_gpt2  # deferred: torch

    if args.base == TINY:
        model = tiny_gpt2(tok, n_ctx)
    else:
        import torch  # deferred: torch

        device = str(accelerator.device) if accelerator is not None else args.device
        model, _ = load_model(args.base, device, dtype=torch.float32)  # fp32 master weights
    if args.lora:
        from peft import LoraConfig, get_peft_model  # deferred: peft

        from ..models import model_loading  # deferred: torch

        with model_loading():  # LoRA's init uses torch.nn.init, which a concurrent load patches
            model = get_peft_model(model, LoraConfig(r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=0.0,
                                                     target_modules="all-linear", task_type="CAUSAL_LM"))
    return model


def _train(args, label, stages, tok, n_ctx, settings, out: Path, forget, accelerator=None):
    """Train one model through its stages [(name, samples)]; the stop rule applies to the last.
    Under a launch, rank 0 gets the model and the other ranks None."""
    from ..models.finetune import train_causal_lm  # deferred: torch
    from ..eval.memorisation import teacher_forced_top1  # deferred: torch

    model = _fresh_model(args, tok, n_ctx, accelerator)
    if args.base == TINY:
        from ..models import pick_device  # deferred: torch

        model.to(accelerator.device if accelerator is not None else pick_device(args.device))
    bar = _bar(label)
    epochs_run = {}
    for i, (stage, samples) in enumerate(stages):
        last = i == len(stages) - 1
        stop = None
        if last and label == "target" and args.until_top1 is not None:
            def stop(epoch, m, _done=epochs_run, _stage=stage):
                top1 = teacher_forced_top1(m, tok, forget)
                _done[_stage] = epoch
                print(f"  {label} epoch {epoch}: forget teacher-forced top-1 {top1:.3f}")
                return top1 >= args.until_top1
        cap = (args.max_epochs or 3 * settings.epochs) if stop else None
        model = train_causal_lm(model, tok, samples, settings, bar, f"{label} ({stage})",
                                (i / len(stages), 1 / len(stages)), out / ".state" / f"{label}-{stage}", stop, cap,
                                accelerator, args.sharding)
        if i < len(stages) - 1 and accelerator is not None:  # the next stage starts from rank 0's weights
            model = _from_rank0(model, args, tok, n_ctx, accelerator)
        epochs_run.setdefault(stage, cap or settings.epochs)
    bar(1.0, f"{label} model trained")
    return model, epochs_run


def _from_rank0(model, args, tok, n_ctx, accelerator):
    """Every rank's copy of rank 0's trained `model` (the others hold None after a stage): each
    tensor broadcast from rank 0 into a fresh model of the same build."""
    import torch  # deferred: torch
    import torch.distributed as dist  # deferred: torch

    fresh = (model if model is not None else _fresh_model(args, tok, n_ctx, accelerator)).to(accelerator.device)
    with torch.no_grad():
        for tensor in fresh.state_dict().values():
            dist.broadcast(tensor, src=0)
    return fresh


def training_plans(bench, general: list, staged: bool) -> dict[str, list[tuple[str, list]]]:
    """Per model, its training stages [(name, samples)]. The target learns everything TOFU's does
    (forget + retain, plus the general sets for a from-scratch tiny model); staged: the retain part
    first, then everything, so the forget set is learnt on top of the retain set without the retain
    set being overwritten (a forget-only second stage left the retain answers at probability 0.004
    on real TOFU text). The retain model learns the retain part only."""
    everything = bench.forget + bench.retain + general
    target = [("retain", bench.retain + general), ("full", everything)] if staged else [("full", everything)]
    return {"target": target, "retain": [("retain", bench.retain + general)]}


def _bar(label):
    from tqdm.auto import tqdm  # deferred: tqdm

    bar = tqdm(total=1000, desc=label, unit="‰")

    def update(fraction: float, message: str) -> None:
        bar.set_description(message[:70], refresh=False)
        bar.update(int(fraction * 1000) - bar.n)
        if fraction >= 1.0:
            bar.close()
    return update


def run(args) -> int:
    from ..models import load_model  # deferred: torch
    from ..models.finetune import save_hf  # deferred: torch
    from ..eval.memorisation import memorisation  # deferred: torch
    from ..resolve import load_data  # deferred: torch

    started = time.perf_counter()
    wanted = [m.strip() for m in args.models.split(",") if m.strip()]
    if not wanted or set(wanted) - {"target", "retain"}:
        raise UserError(f"--models {args.models!r}: use target, retain or target,retain")
    if args.base != TINY and not Path(args.base).is_dir():
        raise UserError(f"--base {args.base}: not a model directory (or '{TINY}')")

    check_lora(args.lora_r, args.lora_alpha)
    check_out_folder(args.out)
    bench = load_data(args.data)
    if not bench.retain:
        raise UserError(f"{args.data}: no retain split (retain{{100-N}}.json) to train the retain model on")
    from ..processes import make_accelerator  # deferred: torch

    accelerator = make_accelerator(args.device)  # None in one process
    main = accelerator is None or accelerator.is_main_process
    tiny = args.base == TINY
    general = bench.real_authors + bench.world_facts if tiny else []
    if tiny:
        tok, n_ctx = _tiny_tokenizer(bench, args.vocab_size) if main else (None, None)
        if accelerator is not None:  # one tokenizer for every rank: rank 0's
            import torch.distributed as dist  # deferred: torch

            box = [(tok, n_ctx)]
            dist.broadcast_object_list(box, src=0)
            tok, n_ctx = box[0]
    else:
        from ..models.loading import load_tokenizer  # deferred: torch

        tok, n_ctx = load_tokenizer(args.base), None
    settings = _settings(args, tiny, accelerator.num_processes if accelerator is not None else 1)
    out = Path(args.out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    plans = training_plans(bench, general, args.staged)
    report: dict = {"data": bench.name, "base": args.base, "settings": asdict(settings), "context": n_ctx,
                    "staged": args.staged}
    for label in wanted:
        if (out / label / "finetune.json").is_file():
            print(f"{label}: {out / label} is already trained (delete it to train again)")
            continue
        model, epochs_run = _train(args, label, plans[label], tok, n_ctx, settings, out, bench.forget, accelerator)
        if main:
            save_hf(model, tok, out / label, {**report, "model": label, "epochs": epochs_run,
                                              **({"processes": accelerator.num_processes, "sharding": args.sharding}
                                                 if accelerator is not None else {})})
            print(f"{label} model: {out / label}")
        if accelerator is not None:
            accelerator.wait_for_everyone()
    if not main:
        return 0  # rank 0 reports
    report["train_seconds"] = round(time.perf_counter() - started, 1)
    for label in ("target", "retain"):
        if (out / label / "finetune.json").is_file():
            model, mtok = load_model(out / label, args.device)
            report[f"{label}_on_forget"] = memorisation(model, mtok, bench.forget, args.max_new_tokens).to_dict()
            print(f"{label} model on the forget set: {_line(report[f'{label}_on_forget'])}")
            if label == "target":  # a target model knows its retain set too (TOFU's target is trained on full)
                report["target_on_retain"] = memorisation(model, mtok, bench.retain, args.max_new_tokens).to_dict()
                print(f"target model on the retain set: {_line(report['target_on_retain'])}")
    report["seconds"] = round(time.perf_counter() - started, 1)
    (out / "memorisation.json").write_text(json.dumps(report, indent=1))
    target = report.get("target_on_forget")
    need = args.until_top1 if args.until_top1 is not None else MEMORISED_TOP1
    if target and target["top1"] < need:
        print(f"NOT MEMORISED: the target model predicts only {target['top1']:.1%} of forget answer tokens "
              f"(needs {need:.0%}) and reproduces {target['exact_matches']}/{target['samples']} answers exactly; "
              "unlearning it would measure nothing. Train longer (--until-top1 with --max-epochs), "
              "raise --lr, or use --staged.")
        return EXIT_NOT_MEMORISED
    return 0


def _line(d: dict) -> str:
    return (f"ROUGE-L recall {d['rouge_l_recall']:.3f}, exact {d['exact_matches']}/{d['samples']}, "
            f"teacher-forced top-1 {d['top1']:.3f}")
