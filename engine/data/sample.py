"""The one data type every part of the engine passes around."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Span:
    """A ground-truth fact inside an answer: characters [start, end) of type `type`."""

    start: int
    end: int
    type: str


@dataclass(frozen=True)
class Sample:
    """One question/answer pair in TOFU layout, plus optional ground-truth fact spans.

    `paraphrased_answer` and `perturbed_answers` feed the truth ratio; `spans` feed the
    selector-accuracy report (only the built-in benchmark has them).
    """

    question: str
    answer: str
    paraphrased_answer: str | None = None
    perturbed_answers: tuple[str, ...] = ()
    spans: tuple[Span, ...] = ()
    author: str | None = None
    uid: str = ""

    def to_json(self) -> dict:
        """TOFU's JSON-lines layout; spans and author are extra fields."""
        row: dict = {"question": self.question, "answer": self.answer}
        if self.paraphrased_answer is not None:
            row["paraphrased_answer"] = self.paraphrased_answer
        if self.perturbed_answers:
            row["perturbed_answer"] = list(self.perturbed_answers)
        if self.spans:
            row["spans"] = [{"start": s.start, "end": s.end, "type": s.type} for s in self.spans]
        if self.author is not None:
            row["author"] = self.author
        return row


PROTOCOLS = ("all", "tofu")
TOFU_EVAL_SIZE = 300  # TOFU's published figures: `ds_size: 300` for forget10 and retain_perturbed


@dataclass
class Benchmark:
    """A forget split with its retain split and the two general-knowledge (utility) sets.

    Any of retain / real_authors / world_facts may be empty; metrics that need them say so.
    retain: the samples the unlearning retain term trains on. retain_eval: the samples model
    utility is evaluated on when they differ (TOFU: `retain_perturbed.json`, while the retain
    term trains on `retain{100-N}.json`); None means `retain`.
    protocol: which evaluation sizes `eval_split` applies. 'all': every forget question, the
    whole retain evaluation split (the evaluator may subsample it). 'tofu': TOFU's published
    protocol, the first 300 forget questions and the first 300 retain-evaluation rows.
    """

    name: str
    forget: list[Sample]
    retain: list[Sample] = field(default_factory=list)
    real_authors: list[Sample] = field(default_factory=list)
    world_facts: list[Sample] = field(default_factory=list)
    retain_eval: list[Sample] | None = None
    protocol: str = "all"
    holdout: list[Sample] = field(default_factory=list)  # authors no model saw (TOFU's holdoutN; may be empty)

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol {self.protocol!r}: use one of {', '.join(PROTOCOLS)}")

    def eval_split(self, name: str) -> list[Sample]:
        """The samples a split is evaluated on under `protocol` (retain: `retain_eval` when set)."""
        samples = self.split(name)
        if name == "retain" and self.retain_eval is not None:
            samples = self.retain_eval
        if self.protocol == "tofu" and name in ("forget", "retain"):
            samples = samples[:TOFU_EVAL_SIZE]
        return samples

    def split(self, name: str) -> list[Sample]:
        if name not in ("forget", "retain", "real_authors", "world_facts"):
            raise KeyError(f"unknown split {name!r}: use forget, retain, real_authors or world_facts")
        return getattr(self, name)
