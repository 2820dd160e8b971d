"""The prompt format as data: how a question becomes the model's prompt, chosen once per model.

A `PromptFormat` is a template (`{question}`) or the tokenizer's chat template (with a system
prompt and a fixed date string, so a Llama-3 template never writes today's date), plus how the
answer is tokenised: `joint` (prompt + answer as one text, as open-unlearning trains and scores:
`tokenizer(prompt + answer, add_special_tokens=True)`, or the chat template's own text) or apart
(the built-in models' recipe), and whether the tokenizer's special tokens (its BOS) are added.

Which format a model gets (`prompt_format_for`, first that applies):
  1. `--prompt-format NAME` of a CLI command (`force_format`): every model the command loads;
  2. the person's choice for this model directory (`choose_format`; stored per model in the
     store's `prompt_formats` table, the app's model bar and the CLI read it);
  3. `prompt_format.json` beside the weights (every checkpoint, full or LoRA, and `finetune`'s
     output carries the format it was trained with; an adapter without one: its base model's);
  4. plain for the built-in models;
  5. the first family of `FAMILY_RULES` that matches config.json's model_type and the tokenizer's
     chat template: open-unlearning's configs/model/*.yaml (src/data/utils.py,
     `preprocess_chat_instance`):
       llama2-chat  Llama-2-*-chat: "[INST] {question} [/INST]", BOS, no chat template
       llama2-base  Llama-2-*-hf (no chat template): "Question: {question}\nAnswer: ", BOS
       llama3       Llama-3.x-Instruct: chat template, system "You are a helpful assistant.",
                    date_string "10 Apr 2025"
       phi          phi-1_5: "Question: {question}\nAnswer: "
       phi3         Phi-3.5-mini-instruct: chat template, system "You are a helpful assistant."
       qwen2.5      Qwen2.5-*-Instruct: chat template, system "You are a helpful assistant."
       zephyr       zephyr-7b-beta: chat template, system "You are a helpful assistant.",
                    date_string "10 Apr 2025" (zephyr's template ignores it; passed as they do)
       gemma-it     gemma-*-it: chat template, no system prompt (its template writes <bos>)
       chat         any other model that ships a chat template: that template, no system prompt
                    (e.g. SmolLM2-Instruct's ChatML, with the default system line it writes)
       base         any other model: "Question: {question}\nAnswer: ", BOS where the tokenizer
                    adds one (Mistral, Gemma, OLMo base models; GPT-2 and OPT add theirs or none)
With a chat template the template's text holds the BOS (Llama-3's <|begin_of_text|>, Gemma's
<bos>) and nothing is added, as `apply_chat_template(tokenize=True)` does in open-unlearning.
Known difference: open-unlearning's labels after a chat answer are the template's end tag then EOS
(Qwen2.5: "<|im_end|>\n<|im_end|>"); here the answer is closed by the EOS alone (Llama-3's and
SmolLM2's EOS are their end tag, so those two match exactly).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from . import paths
from .model_dirs import adapter_base, is_adapter_dir

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
_HELPFUL = "You are a helpful assistant."  # open-unlearning's system prompt
_DATE = "10 Apr 2025"  # open-unlearning's date_string
QA_TEMPLATE = PLAIN_TEMPLATE  # open-unlearning's user_start "Question: ", user_end "\n", asst_start "Answer: "

FAMILIES: dict[str, PromptFormat] = {
    "plain": PLAIN,  # the built-in models: tokenised apart, nothing added
    "llama2-chat": PromptFormat("llama2-chat", "[INST] {question} [/INST]", joint=True, special_tokens=True),
    "llama2-base": PromptFormat("llama2-base", QA_TEMPLATE, joint=True, special_tokens=True),
    "llama3": PromptFormat("llama3", None, _HELPFUL, _DATE, joint=True),
    "phi": PromptFormat("phi", QA_TEMPLATE, joint=True, special_tokens=True),
    "phi3": PromptFormat("phi3", None, _HELPFUL, joint=True),
    "qwen2.5": PromptFormat("qwen2.5", None, _HELPFUL, joint=True),
    "zephyr": PromptFormat("zephyr", None, _HELPFUL, _DATE, joint=True),
    "gemma-it": PromptFormat("gemma-it", None, joint=True),
    "chat": PromptFormat("chat", None, joint=True),
    "base": PromptFormat("base", QA_TEMPLATE, joint=True, special_tokens=True),
}
FAMILIES["llama2"] = FAMILIES["llama2-chat"]  # the name this table gave Llama-2 chat before

GEMMA_TYPES = ("gemma", "gemma2", "gemma3", "gemma3_text")


@dataclass(frozen=True)
class FamilyRule:
    """A family matches when config.json's model_type is one of `model_types` (empty: any) and the
    tokenizer's chat template is absent (`chat` None), present (""), or contains `chat`."""

    family: str
    model_types: tuple[str, ...]
    chat: str | None

    def matches(self, model_type: str, chat_template: str) -> bool:
        if self.model_types and model_type not in self.model_types:
            return False
        if self.chat is None:
            return not chat_template
        return bool(chat_template) and self.chat in chat_template


FAMILY_RULES: tuple[FamilyRule, ...] = (
    FamilyRule("llama3", (), "<|start_header_id|>"),
    FamilyRule("llama2-chat", ("llama",), "[INST]"),
    FamilyRule("llama2-base", ("llama",), None),
    FamilyRule("phi", ("phi", "mixformer-sequential"), None),
    FamilyRule("phi3", ("phi3",), "<|assistant|>"),
    FamilyRule("qwen2.5", ("qwen2",), "<|im_start|>"),
    FamilyRule("zephyr", ("mistral",), "<|assistant|>"),
    FamilyRule("gemma-it", GEMMA_TYPES, "<start_of_turn>"),
    FamilyRule("chat", (), ""),
    FamilyRule("base", (), None),
)


def family_names() -> list[str]:
    """The names `--prompt-format` and the model bar accept (the old alias `llama2` left out)."""
    return [n for n in FAMILIES if n != "llama2"]


def family_format(name: str) -> PromptFormat:
    """The format of family `name`; ValueError naming the known names."""
    if name not in FAMILIES:
        raise ValueError(f"unknown prompt format {name!r}; known: {', '.join(family_names())}")
    return FAMILIES[name]


def check_format(fmt: PromptFormat, tokenizer) -> PromptFormat:
    """`fmt` when this tokenizer can render it; ValueError when it needs a chat template it lacks, or
    the template refuses it (e.g. Gemma's refuses a system prompt)."""
    if fmt.template is None and not getattr(tokenizer, "chat_template", None):
        raise ValueError(f"prompt format {fmt.name!r} uses the tokenizer's chat template, but this model's "
                         f"tokenizer has none; choose one of "
                         f"{', '.join(n for n in family_names() if FAMILIES[n].template is not None)}")
    if fmt.template is None:
        try:
            fmt.render(tokenizer, "?")
        except Exception as err:  # jinja's TemplateError, raise_exception(...) of the template itself
            raise ValueError(f"prompt format {fmt.name!r}: this model's chat template refuses it "
                             f"({type(err).__name__}: {err})") from None
    return fmt


def default_format(tokenizer) -> PromptFormat:
    """A tokenizer with no format chosen (one built in memory): its chat template, else plain;
    tokenised apart."""
    return replace(FAMILIES["chat"], joint=False) if getattr(tokenizer, "chat_template", None) else PLAIN


def format_of(tokenizer) -> PromptFormat:
    """The format chosen for this tokenizer's model at load time (`load_tokenizer`), else `default_format`."""
    fmt = getattr(tokenizer, "prompt_format", None)
    return fmt if isinstance(fmt, PromptFormat) else default_format(tokenizer)


# ---------------------------------------------------------------- a person's choice, per model or per command

_FORCED: list[PromptFormat] = []  # `--prompt-format NAME` of this process's CLI command
_CHOSEN: dict[str, PromptFormat] = {}  # model_key(dir) -> the format a person chose for that model


def model_key(model_dir: str | Path) -> str:
    """One key per model directory: its resolved path (the store's `prompt_formats` rows use it)."""
    return str(Path(model_dir).expanduser().resolve())


def force_format(name: str | None) -> None:
    """Use family `name` for every model loaded from now on in this process (None: stop)."""
    _FORCED.clear()
    if name:
        _FORCED.append(family_format(name))


def clear_choices() -> None:
    """Forget every choice of this process (`force_format`, `choose_format`)."""
    _FORCED.clear()
    _CHOSEN.clear()


def saved_choices() -> tuple[list, dict]:
    """This process's choices, for `restore_choices` (a CLI command run inside the app's process)."""
    return list(_FORCED), dict(_CHOSEN)


def restore_choices(saved: tuple[list, dict]) -> None:
    """Put back the choices `saved_choices` returned."""
    forced, chosen = saved
    _FORCED[:] = forced
    _CHOSEN.clear()
    _CHOSEN.update(chosen)


def choose_format(model_dir: str | Path, name: str | None) -> None:
    """Use family `name` for the model in `model_dir` whenever it is loaded (None or '': its own)."""
    if name:
        _CHOSEN[model_key(model_dir)] = family_format(name)
    else:
        _CHOSEN.pop(model_key(model_dir), None)


def chosen_format(model_dir: str | Path) -> PromptFormat | None:
    """The format a person chose for this model (`force_format`, else `choose_format`), or None."""
    return _FORCED[0] if _FORCED else _CHOSEN.get(model_key(model_dir))


def _is_builtin(model_dir: Path) -> bool:
    root = paths.builtin_dir().resolve()
    return model_dir.resolve() == root or root in model_dir.resolve().parents


def _model_type(model_dir: Path) -> str | None:
    try:
        return json.loads((model_dir / "config.json").read_text()).get("model_type", "")
    except (OSError, ValueError, AttributeError):
        return None


def _family(model_dir: Path, tokenizer) -> str | None:
    """The first `FAMILY_RULES` family for config.json's model_type and the tokenizer's chat
    template; None when the directory has no readable config.json."""
    model_type = _model_type(model_dir)
    if model_type is None:
        return None
    chat = str(getattr(tokenizer, "chat_template", None) or "")
    return next(rule.family for rule in FAMILY_RULES if rule.matches(model_type, chat))


def read_format(model_dir: str | Path) -> PromptFormat | None:
    """The format recorded in `prompt_format.json` beside a model, or None when there is none."""
    stored = Path(model_dir) / FORMAT_FILE
    if not stored.is_file():
        return None
    try:
        data = json.loads(stored.read_text(encoding="utf-8"))
    except ValueError as err:
        raise ValueError(f"{stored}: not valid JSON ({err})") from None
    return PromptFormat.from_dict(data, str(stored))


def prompt_format_for(model_dir: str | Path, tokenizer) -> PromptFormat:
    """The model's prompt format, by the order of the module docstring: a person's choice, then
    `prompt_format.json` beside it (an adapter without one: its base model's), then plain for the
    built-in models, then `FAMILY_RULES`, then its chat template, else the `base` template."""
    model_dir = Path(model_dir)
    chosen = chosen_format(model_dir)
    if chosen is not None:
        return check_format(chosen, tokenizer)
    stored = read_format(model_dir)
    if stored is not None:
        return stored
    if is_adapter_dir(model_dir):
        return prompt_format_for(adapter_base(model_dir), tokenizer)
    if _is_builtin(model_dir):
        return PLAIN
    family = _family(model_dir, tokenizer)
    if family is not None:
        return FAMILIES[family]
    return FAMILIES["chat"] if getattr(tokenizer, "chat_template", None) else FAMILIES["base"]


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
