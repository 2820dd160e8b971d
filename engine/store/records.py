"""What the store returns: plain dataclasses for a mask set, one sample's mask, a listed mask set,
a run, one epoch of a run and a checkpoint. No SQL and no torch here (tokenising for
`MaskSet.masks_for` is imported where it is used)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Sequence

from ..fingerprint import text_hash, tokenizer_fingerprint
from ..run_config import RunConfig


@dataclass
class SampleMask:
    """One sample's mask: 0/1 per label position, the text it was made for, and whether a person edited it."""

    text_hash: str
    mask: list[int]
    edited: bool = False


@dataclass
class MaskSetSummary:
    """A mask set as `Store.list_mask_sets` lists it: metadata and counts, no masks."""

    id: int
    name: str
    model: str
    data: str
    tokenizer_fingerprint: str
    source_selector: str | None
    created: str
    updated: str
    n_samples: int
    n_edited: int


@dataclass
class MaskSet:
    """A named mask set: per-sample masks over the label positions of the tokenizer
    `tokenizer_fingerprint` names, for the samples of `data` (by uid)."""

    id: int
    name: str
    model: str
    data: str
    tokenizer_fingerprint: str
    source_selector: str | None
    created: str
    updated: str
    masks: dict[str, SampleMask] = field(default_factory=dict)

    @property
    def n_edited(self) -> int:
        """Samples whose mask a person edited."""
        return sum(1 for m in self.masks.values() if m.edited)

    @property
    def marks_tokens(self) -> bool:
        """Whether any sample's mask marks a token."""
        return any(any(m.mask) for m in self.masks.values())

    def covered(self, samples: Iterable) -> int:
        """How many of `samples` (anything with a `uid`) have a mask in this set."""
        return sum(1 for s in samples if s.uid in self.masks)

    def mask_for(self, sample, n_labels: int) -> list[int]:
        """The stored mask of `sample` (anything with uid, question, answer), checked against its
        text and its number of label positions; all zeros when the set has no mask for it.

        ValueError naming the sample when the set was made for another text of it or for another
        tokenizer (another number of label positions). The one compatibility check of a mask set.
        """
        entry = self.masks.get(sample.uid)
        if entry is None:
            return [0] * n_labels
        if entry.text_hash and entry.text_hash != text_hash(sample.question, sample.answer):
            raise ValueError(f"mask set {self.name!r} was made for a different text of sample {sample.uid} "
                             f"({sample.question[:50]!r}…): re-create it on this data")
        if len(entry.mask) != n_labels:
            raise ValueError(f"mask set {self.name!r} has {len(entry.mask)} label positions for sample "
                             f"{sample.uid} but this tokenizer gives {n_labels}: it was made for another tokenizer")
        return [int(x) for x in entry.mask]

    def check_tokenizer(self, tokenizer) -> None:
        """ValueError unless `tokenizer` has the fingerprint the set was made for."""
        found = tokenizer_fingerprint(tokenizer)
        if found != self.tokenizer_fingerprint:
            raise ValueError(f"mask set {self.name!r} was made for tokenizer {self.tokenizer_fingerprint}, not this "
                             f"model's ({found}): use it with the model it was made for ({self.model})")

    def masks_for(self, samples: Sequence, tokenizer, chunk_size: int = 64) -> list[list[int]]:
        """Per sample, its mask over the label positions `tokenizer` gives it (see `mask_for`:
        zeros for a sample the set lacks, ValueError naming a sample of another text or tokenizer;
        ValueError first when the tokenizer's fingerprint is not the set's).

        The masks are as stored: the closing EOS (the last label position) is never a forget
        target, so a caller that trains on them drops it.
        """
        # torch is heavy and the store is used without it (CLI listings, import/export): tokenise here only
        from ..tokens import encode_samples, iter_batches  # deferred: torch

        self.check_tokenizer(tokenizer)

        out = []
        for chunk in iter_batches(list(samples), chunk_size):
            counts = encode_samples(tokenizer, chunk).label_mask.sum(dim=1).tolist()
            out += [self.mask_for(s, int(n)) for s, n in zip(chunk, counts)]
        return out


@dataclass
class EpochMetrics:
    """One evaluation's numbers: `values` holds every metric by its registered name
    (engine.eval.registry: forget_quality, model_utility, train_loss, …, a metric registered at
    runtime included; None where it could not be computed) and any other number recorded with it;
    the flags say how the numbers were made. Stored as one flat JSON object (`to_dict`), as before
    these records were typed, so `from_dict(d).to_dict() == d`.

    epoch, step: where the run was (the loop records them in the object too); subsampled: ROUGE-L
    came from a seeded subsample of `rouge_rows` rows per split (engine.eval.full.rouge_subsample);
    notes: what could not be computed and why. A flag the evaluation did not give stays None and is
    left out of `to_dict`.
    """

    values: dict[str, Any] = field(default_factory=dict)
    epoch: int | None = None
    step: int | None = None
    subsampled: bool | None = None
    rouge_rows: int | None = None
    notes: list[str] | None = None

    FLAGS = ("epoch", "step", "subsampled", "rouge_rows", "notes")

    @classmethod
    def from_dict(cls, d: dict) -> "EpochMetrics":
        """The record of one flat metrics object (as stored, or as `evaluate_state` returns it)."""
        return cls(values={k: v for k, v in d.items() if k not in cls.FLAGS},
                   **{k: d[k] for k in cls.FLAGS if k in d})

    def to_dict(self) -> dict:
        """The flat object: the values by name, then the flags that are set."""
        return {**self.values, **{k: getattr(self, k) for k in self.FLAGS if getattr(self, k) is not None}}

    def value(self, name: str) -> Any:
        """The value of metric `name`, None when it was not recorded."""
        return self.values.get(name)


@dataclass
class EpochRecord:
    """One recorded epoch of a run (epoch 0: the model before unlearning)."""

    epoch: int
    step: int
    metrics: EpochMetrics
    recorded: str

    def __post_init__(self) -> None:
        if isinstance(self.metrics, dict):  # a record built by hand from a flat metrics object
            self.metrics = EpochMetrics.from_dict(self.metrics)


@dataclass
class Checkpoint:
    path: str
    epoch: int


@dataclass
class RunRecord:
    """A recorded run: its config (`RunConfig`; a record's keys this code does not know are kept in
    `config.extra`, missing ones take their defaults), status and owner, per-epoch metrics by epoch,
    checkpoints by kind, and what the run found out rather than was told (columns of their own,
    schema v5): the prompt format its tokenizer used, its number of processes and its seconds per
    phase (loading, evaluating, training, saving; None until it ends)."""

    id: int
    config: RunConfig
    mask_set_hash: str | None
    status: str  # running | finished | cancelled | failed | interrupted
    started: str
    finished: str | None
    error: str | None
    pid: int | None
    hostname: str | None
    folder: str | None = None  # its checkpoint folder's name under runs_dir (a uuid; None: a run from before v2)
    prompt_format: dict | None = None  # engine.prompts.PromptFormat.to_dict() of the run's tokenizer
    world_size: int | None = None
    phase_seconds: dict[str, float] | None = None
    metrics: list[EpochRecord] = field(default_factory=list)
    checkpoints: dict[str, Checkpoint] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.config, dict):  # a record built by hand from a config dict, as stored
            self.config = RunConfig.from_record(self.config)

    @property
    def retain_model(self) -> str | None:
        """The retain model this run's FQ used: its recorded `retain_model`, else the built-in
        pairing (demo data → demo-retain); None: the run had none, so its FQ is unavailable."""
        from ..resolve import retain_model_for  # deferred: torch

        cfg = self.config
        return cfg.retain_model or retain_model_for(str(cfg.model), str(cfg.data))

    def to_dict(self) -> dict:
        """Plain JSON-ready dict: the config and each epoch's metrics as they are stored (flat)."""
        d = asdict(self)
        d["config"] = self.config.to_dict()
        for out, m in zip(d["metrics"], self.metrics):
            out["metrics"] = m.metrics.to_dict()
        return d
