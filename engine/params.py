"""`KEY=VALUE` parameter lists (CLI flags, the app's parameter boxes) into keyword dicts."""
from __future__ import annotations

import json


def parse_params(items: list[str] | str | None, flag: str = "--param") -> dict:
    """['k=v', …] or 'k=v, k2=v2' -> {k: v}; values are read as JSON when they parse (numbers,
    true/false, lists), else kept as strings. ValueError names the item that is not KEY=VALUE."""
    if isinstance(items, str):
        items = [part for part in items.replace("\n", ",").split(",") if part.strip()]
    out = {}
    for item in items or []:
        if "=" not in item or not item.split("=", 1)[0].strip():
            raise ValueError(f"{flag} expects KEY=VALUE, got {item.strip()!r}")
        key, value = item.split("=", 1)
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value.strip()
        except RecursionError:
            raise ValueError(f"{flag} {key.strip()}: the value is nested too deeply to read") from None
    return out


def parse_selector_params(items: list[str] | str | None, selector: str, flag: str = "--param",
                          in_run: bool = False) -> dict:
    """`parse_params`, then each value checked against the selector's signature (type, range)."""
    from .selectors import check_selector_params  # deferred: torch (only where parameters are checked)

    return check_selector_params(selector, parse_params(items, flag), in_run=in_run)


def parse_loss_params(items: list[str] | str | None, loss: str, flag: str = "--loss-param") -> dict:
    """`parse_params`, then each value checked against the loss's signature (type, range)."""
    from .losses import check_loss_params  # deferred: torch (only where parameters are checked)

    return check_loss_params(loss, parse_params(items, flag))
