"""Check KEY=VALUE parameters against the function that takes them, before any work starts.

A selector's or loss's keyword parameters (names, annotated types, defaults) are read from its
signature; each given value is converted to the annotated type and checked against the
parameter's allowed range or choices. Every refusal is a ValueError that names the owner, the
parameter, the value and what is allowed:

    check_params(select_wga, {"k": 2.5}, "selector 'wga'")
    ValueError: selector 'wga': parameter 'k' must be a whole number ≥ 1, got 2.5
"""
from __future__ import annotations

import inspect
import math
import re
import types
import typing
from dataclasses import dataclass


@dataclass(frozen=True)
class Range:
    """lo ≤ x ≤ hi (lo < x when lo_open); None is unbounded."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False

    def holds(self, x: float) -> bool:
        if self.lo is not None and (x <= self.lo if self.lo_open else x < self.lo):
            return False
        return self.hi is None or x <= self.hi

    def __str__(self) -> str:
        if self.hi is None:
            return f"{'>' if self.lo_open else '≥'} {self.lo:g}"
        return f"in {'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}]"


POSITIVE = Range(0, None, lo_open=True)
NON_NEGATIVE = Range(0, None)
UNIT = Range(0, 1)

RANGES: dict[str, Range] = {  # by parameter name, for every selector and loss that has it
    "ratio": Range(0, 1, lo_open=True), "k": Range(1, None), "probe_batch": Range(1, None),
    "probe_lr": POSITIVE, "threshold": UNIT, "beta": POSITIVE, "beta1": NON_NEGATIVE, "beta2": NON_NEGATIVE,
    "alpha": NON_NEGATIVE, "gamma": NON_NEGATIVE, "lam": NON_NEGATIVE, "pl_weight": NON_NEGATIVE,
}
OWNER_RANGES: dict[tuple[str, str], Range] = {("tokenunlearn", "alpha"): UNIT}  # α mixes two terms
CHOICES: dict[tuple[str, str], tuple[str, ...]] = {("dto", "mode"): ("auto", "vmap", "loop"),
                                                   ("dto", "forget"): ("ga", "npo"),
                                                   ("atwu", "init"): ("zero", "saved")}


def _base_types(annotation) -> tuple[set[type], bool]:
    """({int, float, …}, allows None) of an annotation such as `int | None`."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = typing.get_args(annotation)
        return {a for a in args if a is not type(None)}, type(None) in args
    return ({annotation} if isinstance(annotation, type) else set()), annotation is None


def convert(value, annotation, name: str, owner: str):
    """`value` as the annotated type; ValueError naming `owner` and `name` when it is not one."""
    kinds, nullable = _base_types(annotation)

    def fail(what: str) -> ValueError:
        return ValueError(f"{owner}: parameter {name!r} must be {what}, got {value!r}")

    if value is None:
        if nullable:
            return None
        raise fail(" or ".join(sorted(k.__name__ for k in kinds)) or "a value")
    if bool in kinds:
        if isinstance(value, bool):
            return value
        raise fail("true or false")
    if int in kinds and float not in kinds:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value).is_integer():
            hint = " (drop the quotes)" if isinstance(value, str) and _is_number(value) else ""
            raise fail(f"a whole number{hint}")
        return int(value)
    if float in kinds:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            hint = " (drop the quotes)" if isinstance(value, str) and _is_number(value) else ""
            raise fail(f"a number{hint}")
        if not math.isfinite(value):
            raise fail("a finite number")
        return float(value)
    if str in kinds:
        if not isinstance(value, str):
            raise fail("text")
        return value
    return value  # no annotation to check against


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def check_value(owner_name: str, name: str, value, owner: str):
    """Raise ValueError when a converted value lies outside its range or choices."""
    choices = CHOICES.get((owner_name, name))
    if choices is not None and value not in choices:
        raise ValueError(f"{owner}: parameter {name!r} must be one of {', '.join(choices)}, got {value!r}")
    rng = OWNER_RANGES.get((owner_name, name), RANGES.get(name))
    if rng is not None and isinstance(value, (int, float)) and not isinstance(value, bool) and not rng.holds(value):
        raise ValueError(f"{owner}: parameter {name!r} must be {rng}, got {value!r}")
    return value


def signature_params(fn, keyword_only: bool = False, skip_first: bool = False) -> dict[str, tuple[object, object]]:
    """{name: (annotation, default)} of the parameters a caller may set by keyword."""
    hints = typing.get_type_hints(fn)
    params = list(inspect.signature(fn).parameters.values())[1 if skip_first else 0:]
    kinds = (inspect.Parameter.KEYWORD_ONLY,) if keyword_only else \
        (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return {p.name: (hints.get(p.name, p.annotation), p.default) for p in params if p.kind in kinds}


def check_params(fn, params: dict, owner: str, owner_name: str, keyword_only: bool = False,
                 skip_first: bool = False, extra: dict[str, object] | None = None) -> dict:
    """`params` converted to `fn`'s annotated types and range-checked; unknown names are refused
    with the known ones listed. extra: more accepted names and their types (e.g. a run's ATWU
    scorer settings)."""
    known = {n: a for n, (a, _) in signature_params(fn, keyword_only, skip_first).items()}
    known.update(extra or {})
    out = {}
    for name, value in params.items():
        if name not in known:
            listed = ", ".join(known) or "none"
            raise ValueError(f"{owner} has no parameter {name!r}; known: {listed}")
        out[name] = check_value(owner_name, name, convert(value, known[name], name, owner), owner)
    return out


def check_positive_int(value: int | None, flag: str, minimum: int = 1) -> None:
    """ValueError naming `flag` unless value ≥ minimum (None passes: the option was not given)."""
    if value is not None and value < minimum:
        raise ValueError(f"{flag} must be at least {minimum}, got {value}")


def check_finite_positive(value: float | None, flag: str) -> None:
    """ValueError naming `flag` unless value is a finite number > 0 (None passes)."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise ValueError(f"{flag} must be a finite number > 0, got {value}")


def check_device(device: str, flag: str = "--device") -> str:
    """auto, cpu, cuda or cuda:N (mps when torch has it); ValueError naming the choices otherwise."""
    if device in ("auto", "cpu", "cuda", "mps") or re.fullmatch(r"cuda:\d+", device or ""):
        return device
    raise ValueError(f"{flag} must be auto, cpu, cuda, cuda:N or mps, got {device!r}")
