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

NEEDS = frozenset({"retain_model", "holdout", "spans", "mask", "generation", "reference"})


@dataclass(frozen=True)
class Metric:
    """One registered metric.

    name: the key in an epoch's metrics dict; label: a short label for tables and plot axes;
    higher_is_better: True / False, or None where neither is better (a count, a fraction of targets);
    needs: what it cannot be computed without (subset of NEEDS: a paired retain model, TOFU's holdout
    authors, ground-truth fact spans, a token mask, greedy generation, the reference model);
    group: where tables list it ("tofu", "token", "privacy", ...); log_scale: plot it on a log axis.
    """

    name: str
    label: str
    higher_is_better: bool | None
    needs: tuple[str, ...] = ()
    group: str = "tofu"
    description: str = ""
    log_scale: bool = False

    def __post_init__(self) -> None:
        unknown = set(self.needs) - NEEDS
        if unknown:
            raise ValueError(f"metric {self.name!r}: unknown needs {sorted(unknown)}; known: {sorted(NEEDS)}")

    def better(self, a: float, b: float) -> bool:
        """Whether value `a` is strictly better than `b` (ValueError for a metric with no direction)."""
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


# TOFU's metrics (SPEC §4), computed by engine/eval/full.py and engine/eval/run.py.
register(Metric("forget_quality", "FQ", True, ("retain_model",), description="KS-test p-value of forget truth "
                "ratios against the retain model's", log_scale=True))
register(Metric("model_utility", "MU", True, ("generation",), description="harmonic mean of the nine "
                "retain / real-authors / world-facts numbers"))
for _split, _name in (("forget", "forget"), ("retain", "retain"), ("real_authors", "real authors"),
                      ("world_facts", "world facts")):
    register(Metric(f"{_split}_probability", f"{_name} p", _split != "forget",
                    description="length-normalised answer probability"))
    register(Metric(f"{_split}_rouge_l", f"{_name} ROUGE-L", _split != "forget", ("generation",),
                    description="ROUGE-L recall of the greedy answer"))
    register(Metric(f"{_split}_truth_ratio", f"{_name} TR", True,
                    description="truth-ratio summary (forget: mean min(TR, 1/TR); else mean max(0, 1 − TR))"))
# Token-level extras (SPEC §4).
register(Metric("target_prob_drop", "target Δp", True, ("mask",), group="token",
                description="mean step-0 minus current probability of target tokens"))
register(Metric("nontarget_prob_drop", "non-target Δp", False, ("mask",), group="token",
                description="mean step-0 minus current probability of non-target answer tokens"))
register(Metric("fact_prob_drop", "fact Δp", True, ("spans",), group="token"))
register(Metric("nonfact_prob_drop", "non-fact Δp", False, ("spans",), group="token"))
register(Metric("target_fraction", "target fraction", None, ("mask",), group="token"))
register(Metric("forget_rows", "forget rows n", None, description="forget questions evaluated: FQ's KS-test n"))
# Where token-level methods differ (issue 20; engine/eval/token_level.py).
register(Metric("fact_leak_rate", "fact leak rate", False, ("generation",), group="token", description="leaked facts / facts in the greedy forget answers (leak check, normalised; facts: spans, else the mask)"))
register(Metric("answered_rate", "answered rate", True, ("generation",), group="token", description="greedy forget answers neither empty nor degenerate (no alphanumeric, or one word > 50 % of ≥ 4)"))
register(Metric("kept_words_recall", "kept-words recall", True, ("generation",), group="token", description="ROUGE-L recall of the greedy answer against the answer with its fact spans removed"))
register(Metric("nontarget_retention", "non-target retention", True, ("mask",), group="token", description="mean p of non-target answer tokens now / at step 0"))
register(Metric("target_removal", "target removal", True, ("mask",), group="token", description="1 − mean p of target tokens now / at step 0"))
register(Metric("nonfact_retention", "non-fact retention", True, ("spans",), group="token", description="mean p of non-fact answer tokens now / at step 0 (ground-truth spans)"))
register(Metric("fact_removal", "fact removal", True, ("spans",), group="token", description="1 − mean p of fact tokens now / at step 0 (ground-truth spans)"))
register(Metric("train_loss", "train loss", None, group="training"))
