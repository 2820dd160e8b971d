"""The prompt format as data: how a question becomes the model's prompt, chosen once per model.

A `PromptFormat` is a template (`{question}`) or the tokenizer's chat template (with a system
prompt and a fixed date string, so a Llama-3 template never writes today's date), plus how the
answer is tokenised: `joint` (prompt + answer as one text, as TOFU trains and scores real
checkpoints: `tokenizer(question + answer, add_special_tokens=True)`) or apart (the built-in
models' recipe). It is chosen once per model (`prompt_format_for`): `prompt_format.json` beside
the weights when present, else the built-in models' plain format, else TOFU's defaults for the
model's family (`FAMILIES`), else the tokenizer's chat template, else the plain template.

TOFU's defaults (locuslab/tofu config/model_config.yaml; open-unlearning configs/model):
  llama2  "[INST] {question} [/INST]", BOS added          (tofu_ft_llama2-7b)
  phi     "Question: {question}\\nAnswer: "                (tofu_ft_phi-1.5)
  llama3  chat template, system "You are a helpful assistant.", date "10 Apr 2025"
  plain   "Question: {question}\\nAnswer: " (the built-in models; tokenised apart)
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

PLAIN_TEMPLATE = "Question: {question}\nAnswer: "
FORMAT_FILE = "prompt_format.json"
BUILTIN_MAX_NEW_TOKENS = 64  # the built-in answers are short
TOFU_MAX_NEW_TOKENS = 200  # TOFU's generation length (~4 % of real TOFU answers exceed 45 words)


@dataclass(frozen=True)
class PromptFormat:
    """name; template: '{question}' text, or None for the tokenizer's chat template; system_prompt
    and date_string: passed to the chat template (None: left out); joint: prompt + answer are
    tokenised as one text (answer offsets from the joint offsets); special_tokens: the tokenizer
    adds its special tokens (e.g. Llama's BOS) to the prompt."""

    name: str = "plain"
    template: str | None = PLAIN_TEMPLATE
    system_prompt: str | None = None
    date_string: str | None = None
    joint: bool = False
    special_tokens: bool = False

    def render(self, tokenizer, question: str) -> str:
        """The prompt text for `question` (generation prompt included for a chat template)."""
        if self.template is not None:
            return self.template.format(question=question)
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError(f"prompt format {self.name!r} uses the tokenizer's chat template, but this tokenizer "
                             f"has none; write a template into {FORMAT_FILE}")
        messages = ([{"role": "system", "content": self.system_prompt}] if self.system_prompt is not None else []) \
            + [{"role": "user", "content": question}]
        extra = {"date_string": self.date_string} if self.date_string is not None else {}
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **extra)

    def to_dict(self) -> dict:
        return asdict(self)

    def key(self, tokenizer=None) -> str:
        """A stable cache key: every field, plus the chat template's hash when it is used."""
        chat = getattr(tokenizer, "chat_template", None) if self.template is None else None
        chat_hash = hashlib.sha256(str(chat).encode()).hexdigest()[:12] if chat else ""
        return json.dumps({**self.to_dict(), "chat_template": chat_hash}, sort_keys=True)

    def describe(self) -> str:
        """One line for a person: name, template, system prompt, date, tokenisation."""
        shown = "chat template" if self.template is None else repr(self.template)
        parts = [f"{self.name}: {shown}"]
        if self.system_prompt is not None:
            parts.append(f"system {self.system_prompt!r}")
        if self.date_string is not None:
            parts.append(f"date {self.date_string!r}")
        parts.append("prompt + answer tokenised together" if self.joint else "prompt and answer tokenised apart")
        return ", ".join(parts)

    @classmethod
    def from_dict(cls, d: dict, where: str = "prompt format") -> "PromptFormat":
        """Checked: unknown fields and wrong types name `where` and the field."""
        if not isinstance(d, dict):
            raise ValueError(f"{where}: expected a JSON object, got {type(d).__name__}")
        names = {f.name: f for f in fields(cls)}
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(names)}")
        for k, v in d.items():
            want = (bool,) if k in ("joint", "special_tokens") else (str, type(None))
            if not isinstance(v, want) or (k == "name" and v is None):
                raise ValueError(f"{where}: field {k!r} must be {'true/false' if want == (bool,) else 'a string'}, "
                                 f"got {v!r}")
        if d.get("template") is not None and "{question}" not in d["template"]:
            raise ValueError(f"{where}: field 'template' must contain {{question}}, got {d['template']!r}")
        return cls(**d)


PLAIN = PromptFormat()
FAMILIES = {
    "plain": PLAIN,
    "phi": PromptFormat("phi", PLAIN_TEMPLATE, joint=True),
    "llama2": PromptFormat("llama2", "[INST] {question} [/INST]", joint=True, special_tokens=True),
    "llama3": PromptFormat("llama3", None, "You are a helpful assistant.", "10 Apr 2025", joint=True),
    "chat": PromptFormat("chat", None, joint=True),
}


def default_format(tokenizer) -> PromptFormat:
    """A tokenizer with no format chosen (one built in memory): its chat template, else plain;
    tokenised apart."""
    return replace(FAMILIES["chat"], joint=False) if getattr(tokenizer, "chat_template", None) else PLAIN


def format_of(tokenizer) -> PromptFormat:
    """The format chosen for this tokenizer's model at load time (`load_tokenizer`), else `default_format`."""
    fmt = getattr(tokenizer, "prompt_format", None)
    return fmt if isinstance(fmt, PromptFormat) else default_format(tokenizer)


def _is_builtin(model_dir: Path) -> bool:
    from .models.builtin import builtin_paths

    root = builtin_paths().root.resolve()
    return model_dir.resolve() == root or root in model_dir.resolve().parents


def _family(model_dir: Path, tokenizer) -> str | None:
    """TOFU's family for a model directory's config.json model_type and its tokenizer, or None."""
    try:
        model_type = json.loads((model_dir / "config.json").read_text()).get("model_type", "")
    except (OSError, ValueError):
        return None
    chat = str(getattr(tokenizer, "chat_template", None) or "")
    if model_type == "llama":
        if chat and "<|start_header_id|>" not in chat and "[INST]" not in chat:
            return None  # a llama with its own chat template (SmolLM2's ChatML): that template
        return "llama3" if "<|start_header_id|>" in chat else "llama2"
    if model_type in ("phi", "phi3", "mixformer-sequential"):
        return "phi"
    return None


def prompt_format_for(model_dir: str | Path, tokenizer) -> PromptFormat:
    """The model's prompt format: `prompt_format.json` beside it, else plain for the built-in
    models, else TOFU's family default, else its chat template (joint), else plain (apart)."""
    model_dir = Path(model_dir)
    stored = model_dir / FORMAT_FILE
    if stored.is_file():
        try:
            data = json.loads(stored.read_text(encoding="utf-8"))
        except ValueError as err:
            raise ValueError(f"{stored}: not valid JSON ({err})") from None
        return PromptFormat.from_dict(data, str(stored))
    if _is_builtin(model_dir):
        return PLAIN
    family = _family(model_dir, tokenizer)
    if family is not None:
        return FAMILIES[family]
    return FAMILIES["chat"] if getattr(tokenizer, "chat_template", None) else PLAIN


def save_format(model_dir: str | Path, fmt: PromptFormat) -> Path:
    """Write `prompt_format.json` beside a model, so every later load uses exactly this format."""
    path = Path(model_dir) / FORMAT_FILE
    path.write_text(json.dumps(fmt.to_dict(), indent=1), encoding="utf-8")
    return path


def is_builtin_data(data_spec: str) -> bool:
    return data_spec == "demo" or str(data_spec).startswith("demo/")


def generation_length(data_spec: str) -> int:
    """Default new tokens to generate: 64 on the built-in data, TOFU's 200 on anything else."""
    return BUILTIN_MAX_NEW_TOKENS if is_builtin_data(data_spec) else TOFU_MAX_NEW_TOKENS
