"""The evaluation's one-pass path (engine.eval.passes: each prompt run once, its KV cache serving
every scored text and the greedy answer) against separate computations, in a given precision on a
given device (issue 23, item 3: bf16 on CUDA for a Llama-family model; tests/test_eval_cost.py
checks fp32 on CPU to 1e-5).

Per text (question + answer / paraphrase / perturbed answers of the first --rows rows of each
evaluated split): the per-token NLLs of `passes.run` against one unpadded forward of that text
alone; per question: the batched greedy answer (`metrics.greedy_generate`) against HF `generate` on
that question alone. Prints max |Δ per-token NLL|, max |Δ mean NLL| (what the truth ratios and
probabilities read) and the share of identical greedy answers, for fp32 and the asked precision.

    python benchmarks/one_pass_check.py --model smollm2 --device cuda --dtype bfloat16
    python benchmarks/one_pass_check.py --model demo --data demo --device cpu --rows 4   # the script itself
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parent.parent)

import torch  # noqa: E402


def check(model, tok, pairs: list[tuple[str, str]], questions: list[str], max_new_tokens: int) -> dict:
    from engine.eval import passes
    from engine.eval.metrics import greedy_generate
    from engine.tokens import encode, per_token_nll, prompt_ids

    device = next(model.parameters()).device
    with torch.no_grad():
        got = passes.run(model, tok, [], pairs, batch_size=8).nll
        worst_tok = worst_mean = 0.0
        for q, text in pairs:
            b = encode(tok, [q], [text]).to(device)
            want = per_token_nll(model(input_ids=b.input_ids).logits, b)[0][b.label_mask[0]].float().cpu()
            row = got[(q, text)].float().cpu()
            worst_tok = max(worst_tok, float((row - want).abs().max()))
            worst_mean = max(worst_mean, abs(float(row.mean() - want.mean())))
        batched = greedy_generate(model, tok, questions, max_new_tokens=max_new_tokens, batch_size=8)
        alone = []
        for q in questions:
            ids = torch.tensor(prompt_ids(tok, [q]), device=device)
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                                 do_sample=False, pad_token_id=tok.pad_token_id)[0, ids.shape[1]:].tolist()
            ends = [i for i, t in enumerate(out) if t in passes.eos_ids(model, tok)]
            alone.append(tok.decode(out[:ends[0]] if ends else out, skip_special_tokens=True).strip())
    same = sum(a == b for a, b in zip(batched, alone)) / len(questions)
    return {"texts": len(pairs), "questions": len(questions), "max_token_nll_diff": worst_tok,
            "max_mean_nll_diff": worst_mean, "same_greedy_answers": same}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--data", default="tofu/forget10-dev")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    ap.add_argument("--rows", type=int, default=8, help="rows per evaluated split")
    ap.add_argument("--max-new-tokens", type=int, default=40)
    args = ap.parse_args(argv)

    from engine.eval.full import eval_splits
    from engine.eval.metrics import split_pairs
    from engine.models import load_model
    from engine.resolve import load_data, model_path

    bench = load_data(args.data)
    splits = [(kind, samples[:args.rows]) for _, kind, samples in eval_splits(bench, args.rows)]
    pairs = [p for kind, samples in splits for p in split_pairs(samples, kind)]
    questions = [s.question for _, samples in splits for s in samples]
    name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "CPU"
    print(f"# One-pass evaluation vs separate forwards: {args.model} on {name}, torch {torch.__version__}\n")
    print("| weights | texts | questions | max |Δ NLL| per token | max |Δ mean NLL| | same greedy answers | s |")
    print("|---|---|---|---|---|---|---|")
    for dtype in dict.fromkeys(["float32", args.dtype]):
        model, tok = load_model(model_path(args.model), args.device, dtype=getattr(torch, dtype))
        t = time.perf_counter()
        r = check(model, tok, pairs, questions, args.max_new_tokens)
        print(f"| {dtype} | {r['texts']} | {r['questions']} | {r['max_token_nll_diff']:.2e} | "
              f"{r['max_mean_nll_diff']:.2e} | {r['same_greedy_answers']:.0%} | {time.perf_counter() - t:.1f} |")
        del model
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
