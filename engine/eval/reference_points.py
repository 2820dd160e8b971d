"""Reference points of the trade-off plot: the target model and (when the data has one) the
retain model, evaluated like a run (engine.eval.full: every metric, the MIA ones against the
retain model's cached numbers) and cached in memory and on disk.

    points = reference_points(session, "demo", "demo")   # [{label, model, metrics, notes}, ...]
"""
from __future__ import annotations

import json

from .. import paths
from ..data import Benchmark
from ..fingerprint import content_hash, weights_fingerprint
from ..prompts import generation_length as length
from ..resolve import model_path, retain_model_for
from .full import evaluate, reference_mia, reference_truth_ratios


def _specs(model_spec: str, data_spec: str, retain_spec: str | None = None) -> list[tuple[str, str]]:
    """[(label, model name)]: the target model, then the retain model: `retain_spec` (the app's
    remembered pairing), else the built-in one when the data has one."""
    retain_spec = retain_spec or retain_model_for(model_spec, data_spec)
    return [("target", model_spec)] + ([("retain", retain_spec)] if retain_spec else [])


def _ref_digest(specs: list[tuple[str, str]], bench: Benchmark, key: tuple) -> str:
    """The disk cache's key: the data's shape, the evaluation settings and the models' weights."""
    return content_hash(json.dumps(["v2", bench.name, len(bench.forget), len(bench.retain), len(bench.holdout),
                                    *key[2:]]),
                        *(weights_fingerprint(model_path(spec)) or str(spec) for _, spec in specs), length=20)


def _disk_file(specs, bench: Benchmark, key: tuple):
    return paths.cache_dir() / f"reference_points_{_ref_digest(specs, bench, key)}.json"


def generation_length(data_spec: str) -> int:
    return length(data_spec)


def reference_points(session, model_spec: str, data_spec: str, retain_eval_size: int = 200,
                     max_new_tokens: int = 64, memo: dict | None = None, retain_spec: str | None = None) -> list[dict]:
    """Target and retain models evaluated as {label, model, metrics, notes} dicts.

    session: models and data by name (engine.explore.Session). memo: an in-memory cache kept
    by the caller. The retain model is included only when the data has one (built-in data:
    demo-retain).
    """
    memo = {} if memo is None else memo
    max_new_tokens = max_new_tokens or generation_length(data_spec)  # 0 / None: the data's, as the CLI
    key = (model_spec, data_spec, retain_eval_size, max_new_tokens) + ((retain_spec,) if retain_spec else ())
    with session.lock:
        if key in memo:
            return memo[key]
        bench = session.dataset(data_spec)
        specs = _specs(model_spec, data_spec, retain_spec)
        disk = _disk_file(specs, bench, key)
        if disk.is_file():
            points = json.loads(disk.read_text())
        else:
            retain_spec = dict(specs).get("retain")
            ref_tr = reference_truth_ratios(model_path(retain_spec), bench, session.device) if retain_spec else None
            ref_mia = reference_mia(model_path(retain_spec), bench, session.device) if retain_spec else None
            points = []
            for label, spec in specs:
                model, tok = session.model(spec)
                rep = evaluate(model, tok, bench, ref_tr, retain_size=retain_eval_size, max_new_tokens=max_new_tokens,
                               retain_mia=ref_mia)
                points.append({"label": f"{label} model ({spec})", "model": spec, "metrics": rep.values(),
                               "notes": list(rep.notes)})
            disk.write_text(json.dumps(points))
        memo[key] = points
        return points


def cached_reference_points(session, model_spec: str, data_spec: str, retain_eval_size: int = 200,
                            max_new_tokens: int = 64, memo: dict | None = None,
                            retain_spec: str | None = None) -> list[dict] | None:
    """The reference points when already computed (memo or disk), else None; never evaluates."""
    memo = {} if memo is None else memo
    max_new_tokens = max_new_tokens or generation_length(data_spec)  # 0 / None: the data's, as the CLI
    key = (model_spec, data_spec, retain_eval_size, max_new_tokens) + ((retain_spec,) if retain_spec else ())
    if key in memo:
        return memo[key]
    try:
        bench = session.dataset(data_spec)
    except Exception:
        return None
    disk = _disk_file(_specs(model_spec, data_spec, retain_spec), bench, key)
    if disk.is_file():
        memo[key] = json.loads(disk.read_text())
        return memo[key]
    return None
