"""`fit-scorer`: fit the ATWU token scorer for a model and data (a short alternating run on a copy)."""
from __future__ import annotations

NAME = "fit-scorer"
HELP = "fit the ATWU token scorer for a model and data, so the atwu selector can score tokens"


def add_arguments(p) -> None:
    p.add_argument("--model", default="demo", help="model name or local HF directory (default: demo)")
    p.add_argument("--data", default="demo", help="data name or TOFU directory (default: demo)")
    p.add_argument("--steps", type=int, default=40, help="model steps of the alternating fit (default: 40)")
    p.add_argument("--lr", type=float, default=None, help="model learning rate (default: the unlearn default)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--seed", type=int, default=0)


def run(args) -> int:
    from tqdm.auto import tqdm  # deferred: tqdm
    from transformers.utils import logging as hf_logging  # deferred: transformers

    from ..train import fit_atwu_scorer  # deferred: torch

    hf_logging.disable_progress_bar()  # no per-file loading / saving bars between ours
    bar = tqdm(total=args.steps, desc="fitting the ATWU scorer", unit="step")

    def progress(info: dict) -> None:
        if info.get("loss") is None:  # a phase report, not a step
            return
        bar.n = info["step"]
        bar.set_postfix(loss=f"{info['loss']:.3f}", refresh=False)
        bar.refresh()

    extra = {"lr": args.lr} if args.lr is not None else {}
    try:
        path = fit_atwu_scorer(args.model, args.data, steps=args.steps, device=args.device, seed=args.seed,
                               progress=progress, **extra)
    finally:
        bar.close()
    print(f"ATWU scorer saved: {path}\nthe atwu selector now scores {args.data} on {args.model}")
    return 0
