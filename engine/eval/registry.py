"""The metric registry: every number an evaluation records, by name, with how to read it.

A metric is computed by the evaluation code (engine/eval/*) and stored under its `name` in an epoch's
metrics dict; this registry says what the number is, so that the CLI tables, Compare's plots and table,
and the best-epoch choice read one list instead of naming metrics themselves. A new metric is its
function plus one `register(Metric(...))` line (cf. lm-evaluation-harness's `higher_is_better`
beside each metric, and open-unlearning's metric registry `src/evals/metrics/__init__.py`).

    m = get_metric("forget_quality")
    m.higher_is_better   # True
    m.needs              # ("retain_model",)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

NEEDS = frozenset({"retain_model", "holdout", "spans", "mask", "generation", "reference"})
SHOW = ("headline", "table", "detail")  # where a metric is listed: everywhere / tables / CSV and plot choices
DEFAULT_BEST = "forget_quality"  # the run's best epoch, unless `--best-metric` says otherwise


@dataclass
class MetricInput:
    """What a metric's `compute` hook is given: the model being evaluated (its mode and grad
    setting are the hook's to choose), its tokenizer, the benchmark, the values computed so far (a flat dict), and in a
    run's per-epoch evaluation the run's State (else None)."""

    model: Any
    tokenizer: Any
    bench: Any
    values: dict
    state: Any = None


@dataclass(frozen=True)
class Metric:
    """One registered metric.

    name: the key in an epoch's metrics dict; label: a short label for tables and plot axes;
    higher_is_better: True / False, or None where neither is better (a count, a fraction of targets);
    needs: what it cannot be computed without (subset of NEEDS: a paired retain model, TOFU's holdout
    authors, ground-truth fact spans, a token mask, greedy generation, the reference model);
    group: where tables list it ("tofu", "token", "privacy", ...); log_scale: plot it on a log axis.
    show: 'headline' (the CLI's epoch line, Compare's table and tooltips, and every 'table' place),
    'table' (`runs --show`) or 'detail' (`eval`, records, CSV and Compare's axis choices only). ideal: for a metric best at a value (privleak: 0), the
    value; `better` then compares distances to it. compute: an optional hook computing the metric
    from a `MetricInput` (a float, or None when unavailable); every evaluation (`eval`, a run's
    epochs, reference points) calls it (`compute_hooks`). Metrics without one are computed by
    the evaluation code itself.
    """

    name: str
    label: str
    higher_is_better: bool | None
    needs: tuple[str, ...] = ()
    group: str = "tofu"
    description: str = ""
    log_scale: bool = False
    show: str = "detail"
    ideal: float | None = None
    compute: Callable[[MetricInput], float | None] | None = None

    def __post_init__(self) -> None:
        unknown = set(self.needs) - NEEDS
        if unknown:
            raise ValueError(f"metric {self.name!r}: unknown needs {sorted(unknown)}; known: {sorted(NEEDS)}")
        if self.show not in SHOW:
            raise ValueError(f"metric {self.name!r}: show must be one of {SHOW}, got {self.show!r}")
        if self.ideal is not None and self.higher_is_better is not None:
            raise ValueError(f"metric {self.name!r}: give higher_is_better or ideal, not both")

    @property
    def ranked(self) -> bool:
        """Whether one value can be better than another (a direction or an ideal value)."""
        return self.higher_is_better is not None or self.ideal is not None

    def better(self, a: float, b: float) -> bool:
        """Whether value `a` is strictly better than `b` (ValueError for a metric with no direction)."""
        if self.ideal is not None:
            return abs(a - self.ideal) < abs(b - self.ideal)
        if self.higher_is_better is None:
            raise ValueError(f"metric {self.name!r} has no better direction")
        return a > b if self.higher_is_better else a < b


METRICS: dict[str, Metric] = {}


def register(metric: Metric) -> Metric:
    """Add `metric` to METRICS (ValueError when the name is taken by another definition)."""
    old = METRICS.get(metric.name)
    if old is not None and old != metric:
        raise ValueError(f"metric {metric.name!r} is already registered")
    METRICS[metric.name] = metric
    return metric


def get_metric(name: str) -> Metric:
    """The registered metric `name`; KeyError naming the known ones."""
    if name not in METRICS:
        raise KeyError(f"unknown metric {name!r}; known: {', '.join(METRICS)}")
    return METRICS[name]


def shown(level: str = "table") -> list[Metric]:
    """Registered metrics listed at `level`: 'headline' gives the headline ones, 'table' the
    headline and table ones, 'detail' all; in registration order."""
    return [m for m in METRICS.values() if SHOW.index(m.show) <= SHOW.index(level)]


def label(name: str) -> str:
    """A metric's label, or the name itself when it is not registered."""
    return METRICS[name].label if name in METRICS else name


def rankable(name: str) -> Metric:
    """The registered metric `name`, which must have a better direction (the best-epoch choice);
    ValueError naming the choices otherwise."""
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; choose one of {', '.join(m.name for m in METRICS.values() if m.ranked)}")
    metric = METRICS[name]
    if not metric.ranked:
        raise ValueError(f"metric {name!r} has no better direction; choose one of "
                         f"{', '.join(m.name for m in METRICS.values() if m.ranked)}")
    return metric


def compute_hooks(inp: MetricInput) -> dict[str, float | None]:
    """Values of every registered metric with a `compute` hook not already in `inp.values`."""
    out: dict[str, float | None] = {}
    for metric in list(METRICS.values()):
        if metric.compute is not None and metric.name not in inp.values:
            value = metric.compute(inp)
            out[metric.name] = None if value is None else float(value)
    return out


# TOFU's metrics (SPEC §4), computed by engine/eval/full.py and engine/eval/run.py.
register(Metric("forget_quality", "FQ", True, ("retain_model",), description="KS-test p-value of forget truth "
                "ratios against the retain model's", log_scale=True, show="headline"))
register(Metric("model_utility", "MU", True, ("generation",), description="harmonic mean of the nine "
                "retain / real-authors / world-facts numbers", show="headline"))
for _split, _name in (("forget", "forget"), ("retain", "retain"), ("real_authors", "real authors"),
                      ("world_facts", "world facts")):
    register(Metric(f"{_split}_probability", f"{_name} p", _split != "forget",
                    description="length-normalised answer probability",
                    show={"forget": "headline", "retain": "table"}.get(_split, "detail")))
    register(Metric(f"{_split}_rouge_l", f"{_name} ROUGE-L", _split != "forget", ("generation",),
                    description="ROUGE-L recall of the greedy answer"))
    register(Metric(f"{_split}_truth_ratio", f"{_name} TR", True,
                    description="truth-ratio summary (forget: mean min(TR, 1/TR); else mean max(0, 1 − TR))"))
# Token-level extras (SPEC §4).
register(Metric("target_prob_drop", "target Δp", True, ("mask",), group="token",
                description="mean step-0 minus current probability of target tokens", show="headline"))
register(Metric("nontarget_prob_drop", "non-target Δp", False, ("mask",), group="token",
                description="mean step-0 minus current probability of non-target answer tokens", show="headline"))
register(Metric("fact_prob_drop", "fact Δp", True, ("spans",), group="token"))
register(Metric("nonfact_prob_drop", "non-fact Δp", False, ("spans",), group="token"))
register(Metric("target_fraction", "target fraction", None, ("mask",), group="token"))
register(Metric("train_loss", "train loss", None, group="training", show="headline"))
# Memorisation and privacy (open-unlearning's TOFU metrics): engine/eval/memorization.py, mia.py,
# computed by engine/eval/privacy.py in the evaluation's own pass.
register(Metric("extraction_strength", "ES", False, group="memorisation", show="table",
                description="forget split: 1 − (shortest teacher-forced reproduced suffix start)/length"))
register(Metric("exact_memorization", "EM", False, group="memorisation", show="table",
                description="forget split: fraction of answer tokens that are the greedy token (teacher forced)"))
for _name, _label, _what in (("mia_loss", "MIA LOSS", "mean answer NLL"),
                             ("mia_zlib", "MIA ZLib", "mean answer NLL / zlib bytes of the answer"),
                             ("mia_min_k", "MIA Min-K", "Min-K % (k = 0.4) of token log-probabilities"),
                             ("mia_min_k_plus_plus", "MIA Min-K++", "Min-K %++ (k = 0.4), vocabulary-normalised"),
                             ("mia_gradnorm", "MIA GradNorm", "gradient norm (p = 2) of the answer's loss; "
                              "in runs at step 0 and the last evaluation only"),
                             ("mia_reference", "MIA Ref", "answer NLL minus the retain model's")):
    register(Metric(_name, _label, None, ("holdout", "retain_model") if _name == "mia_reference" else ("holdout",),
                    group="privacy", show="table",
                    description=f"AUC of forget (members) vs holdout (non-members) by {_what}"))
register(Metric("privleak", "privleak", None, ("holdout", "retain_model"), group="privacy", show="headline",
                ideal=0.0, description="relative gap (%) of the Min-K % AUC to the retain model's: "
                "((1 − AUC) − (1 − AUC_retain)) / (1 − AUC_retain) · 100; 0 is the retain model"))
register(Metric("forget_rows", "forget rows n", None, description="forget questions evaluated: FQ's KS-test n"))
# Where token-level methods differ (issue 20; engine/eval/token_level.py).
register(Metric("fact_leak_rate", "fact leak rate", False, ("generation",), group="token", show="table", description="leaked facts / facts in the greedy forget answers (leak check, normalised; facts: spans, else the mask)"))
register(Metric("answered_rate", "answered rate", True, ("generation",), group="token", show="table", description="greedy forget answers neither empty nor degenerate (no alphanumeric, or one word > 50 % of ≥ 4)"))
register(Metric("kept_words_recall", "kept-words recall", True, ("generation",), group="token", show="table", description="ROUGE-L recall of the greedy answer against the answer with its fact spans removed"))
register(Metric("nontarget_retention", "non-target retention", True, ("mask",), group="token", show="table", description="mean p of non-target answer tokens now / at step 0"))
register(Metric("target_removal", "target removal", True, ("mask",), group="token", description="1 − mean p of target tokens now / at step 0"))
register(Metric("nonfact_retention", "non-fact retention", True, ("spans",), group="token", description="mean p of non-fact answer tokens now / at step 0 (ground-truth spans)"))
register(Metric("fact_removal", "fact removal", True, ("spans",), group="token", description="1 − mean p of fact tokens now / at step 0 (ground-truth spans)"))
