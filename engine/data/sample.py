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


@dataclass
class Benchmark:
    """A forget split with its retain split and the two general-knowledge (utility) sets.

    Any of retain / real_authors / world_facts may be empty; metrics that need them say so.
    """

    name: str
    forget: list[Sample]
    retain: list[Sample] = field(default_factory=list)
    real_authors: list[Sample] = field(default_factory=list)
    world_facts: list[Sample] = field(default_factory=list)

    def split(self, name: str) -> list[Sample]:
        if name not in ("forget", "retain", "real_authors", "world_facts"):
            raise KeyError(f"unknown split {name!r}: use forget, retain, real_authors or world_facts")
        return getattr(self, name)
