"""TOFU's own file layout: which file plays which role, and a writer that lays the built-in
benchmark out under TOFU's exact file names and fields (for tests and for trying the layout).

Roles (locuslab/TOFU on the Hugging Face hub; `N` is 01, 05 or 10):
- `forgetN.json`: the forget split (question, answer); `forgetN_perturbed.json`: the same rows
  with `paraphrased_answer` and `perturbed_answer`, needed for the truth ratio and forget quality.
- `retain{100-N}.json`: the retain split the unlearning retain term trains on (no perturbed answers).
- `retain_perturbed.json`: the retain rows model utility is evaluated on (with perturbed answers).
- `real_authors_perturbed.json`, `world_facts_perturbed.json`: the two general-knowledge utility sets.
- `full.json`: forget + retain, what the target model is fine-tuned on (`finetune`).
- `holdoutN.json`: as many never-trained-on authors' rows as `forgetN.json`, the non-members of the
  membership-inference metrics (TOFU's holdout01/05/10).
"""
from __future__ import annotations

import json
from pathlib import Path

from .sample import Sample
from .synthetic import FORGET_PERCENTS, generate

TOFU_ROLES = {
    "forgetN.json": "forget split (question, answer)",
    "forgetN_perturbed.json": "forget split with paraphrased/perturbed answers (preferred; forget quality needs it)",
    "retain{100-N}.json": "retain split: the unlearning retain term and `finetune`'s retain model train on it",
    "retain_perturbed.json": "retain rows model utility is evaluated on",
    "real_authors_perturbed.json": "general-knowledge utility set",
    "world_facts_perturbed.json": "general-knowledge utility set",
    "full.json": "forget + retain: `finetune` trains the target model on it",
    "holdoutN.json": "authors no model was trained on, as many as forgetN's: the membership-inference non-members",
}
RETAIN_PERTURBED_ROWS = 400  # TOFU's retain_perturbed.json has 400 rows

# The two named evaluation protocols on TOFU's files (issue 20 item 5). rows: forget and retain-evaluation
# rows scored (None: all). TOFU: config/eval_everything.yaml `ds_size: 300`, `batch_size: 30`,
# `generation.max_new_tokens: 200` (locuslab/tofu). open-unlearning: configs/eval/tofu.yaml scores the
# whole forget10_perturbed / retain_perturbed splits, `batch_size: 32`, `generation_args.max_new_tokens: 200`.
PROTOCOL_SETTINGS = {
    "tofu": {"rows": 300, "eval_batch_size": 30, "max_new_tokens": 200},
    "open-unlearning": {"rows": None, "eval_batch_size": 32, "max_new_tokens": 200},
}


def is_tofu_layout(data_spec: str | Path) -> bool:
    """Whether `data_spec` (a directory, or DIR/forgetN) is TOFU's own layout: its directory holds
    `retain_perturbed.json` (the file that makes `load_benchmark` evaluate utility apart)."""
    path = Path(str(data_spec))
    for d in (path, path.parent):
        if d.is_dir() and ((d / "retain_perturbed.json").is_file() or (d / "retain_perturbed.jsonl").is_file()):
            return True
    return False


def default_protocol(data_spec: str | Path) -> str:
    """'open-unlearning' on TOFU's layout, else 'all' (every forget row, retain subset by size)."""
    return "open-unlearning" if is_tofu_layout(data_spec) else "all"


def protocol_note(protocol: str, n: int | None) -> str:
    """What to print beside a forget quality: the protocol and the number of forget rows its KS test used."""
    return f"{protocol}, n = {n}" if n is not None else protocol


def roles_help() -> str:
    """One line per TOFU file: its name and its role (for --help and the README)."""
    return "\n".join(f"    {name:<28} {role}" for name, role in TOFU_ROLES.items())


def _plain(s: Sample) -> dict:
    return {"question": s.question, "answer": s.answer}


def _perturbed(s: Sample) -> dict:
    row = _plain(s)
    if s.paraphrased_answer is not None:
        row["paraphrased_answer"] = s.paraphrased_answer
    row["perturbed_answer"] = list(s.perturbed_answers)
    return row


def _write(path: Path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def write_tofu_layout(directory: str | Path, seed: int = 0, holdout: bool = False) -> Path:
    """The built-in benchmark under TOFU's file names and fields (no spans, no author field);
    holdout: also `holdoutN.json` (the first holdout authors, as many rows as `forgetN.json`)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    splits = generate(seed)
    for pct in FORGET_PERCENTS:
        forget = splits[f"forget{pct:02d}"]
        _write(directory / f"forget{pct:02d}.json", [_plain(s) for s in forget])
        _write(directory / f"forget{pct:02d}_perturbed.json", [_perturbed(s) for s in forget])
        _write(directory / f"retain{100 - pct}.json", [_plain(s) for s in splits[f"retain{100 - pct}"]])
        if holdout:
            _write(directory / f"holdout{pct:02d}.json", [_plain(s) for s in splits["holdout"][:len(forget)]])
    retain90 = splits["retain90"]
    _write(directory / "retain_perturbed.json", [_perturbed(s) for s in retain90[:RETAIN_PERTURBED_ROWS]])
    _write(directory / "real_authors_perturbed.json", [_perturbed(s) for s in splits["real_authors"]])
    _write(directory / "world_facts_perturbed.json", [_perturbed(s) for s in splits["world_facts"]])
    _write(directory / "full.json", [_plain(s) for s in splits["full"]])
    return directory
