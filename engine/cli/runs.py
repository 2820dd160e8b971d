"""`runs`: list the recorded unlearning runs, show one, or export its per-epoch metrics."""
from __future__ import annotations

import csv
import json
from pathlib import Path

from .. import atomic, paths
from ..atomic import replace_atomic
from ..eval.registry import DEFAULT_BEST, METRICS, shown
from ..run_config import RunConfig
from ..store import RunRecord, Store
from . import UserError, check_output

NAME = "runs"
HELP = ("list recorded unlearning runs (with the retain model each computed forget quality against; "
        "--retain-model NAME lists only those); --show ID for one run; --export ID --csv/--json FILE")
NO_RETAIN = "none"



def columns(rows: list[dict]) -> list[str]:
    """The registered table metrics (engine.eval.registry, its order) that some row has."""
    present = {k for r in rows for k in r}
    return [m.name for m in shown("table") if m.name in present]


def add_arguments(p) -> None:
    p.add_argument("--show", type=int, metavar="ID", help="show one run: config, per-epoch metrics, checkpoints")
    p.add_argument("--export", type=int, metavar="ID", help="export one run's per-epoch metrics")
    p.add_argument("--csv", metavar="FILE", help="with --export: write the metrics as CSV")
    p.add_argument("--json", metavar="FILE", help="with --export: write the whole run as JSON")
    p.add_argument("--retain-model", default=None, metavar="NAME",
                   help=f"list only runs whose forget quality used this retain model ('{NO_RETAIN}': runs without one)")
    p.add_argument("--store", default=None, help="SQLite store (default: the workbench's)")


def epochs_of(run: RunRecord) -> list[dict]:
    """Per-epoch metric dicts of a stored run, each with 'epoch' and 'step'."""
    return [{**r.metrics.to_dict(), "epoch": r.epoch, "step": r.step} for r in run.metrics]


def _fmt(x) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.3g}"
    return str(x)


def _source(cfg: RunConfig) -> str:
    return f"mask set {cfg.mask_set}" if cfg.mask_set else str(cfg.selector)


def filter_by_retain(runs: list[RunRecord], retain_model: str) -> list[RunRecord]:
    """Runs whose FQ used `retain_model` (NO_RETAIN: runs with none)."""
    want = None if retain_model == NO_RETAIN else retain_model
    return [r for r in runs if r.retain_model == want]


def _missing_fq(run: RunRecord) -> str:
    """Why a run has no FQ: no retain model given (`RunRecord.retain_model`)."""
    return "unavailable: no retain model given" if run.retain_model is None else "-"


def best_value(run: RunRecord, eps: list[dict]) -> str:
    """The run's best value of its best metric (`best_metric` in its config, forget quality for
    runs recorded before it), as `label value`; why it is missing otherwise."""
    name = run.config.best_metric or DEFAULT_BEST
    metric = METRICS.get(name)
    values = [m[name] for m in eps if isinstance(m.get(name), (int, float))]
    if metric is None or not metric.ranked:
        return f"{name} -"
    if not values:
        return f"{metric.label} " + (_missing_fq(run) if name == "forget_quality" else "-")
    best = values[0]
    for v in values[1:]:
        best = v if metric.better(v, best) else best
    return f"{metric.label} {_fmt(best)}"


def list_table(runs: list[RunRecord]) -> str:
    lines = ["| id | status | model | retain model | data | loss | tokens | epochs | best | MU (last) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for run in runs:
        cfg = run.config
        eps = [m for m in epochs_of(run) if (m.get("epoch") or 0) >= 1]
        last = eps[-1] if eps else {}
        lines.append(f"| {run.id} | {run.status} | {cfg.model} | {run.retain_model or '-'} | {cfg.data} | "
                     f"{cfg.loss} | {_source(cfg)} | {len(eps)}/{cfg.epochs} | "
                     f"{best_value(run, eps)} | {_fmt(last.get('model_utility'))} |")
    return "\n".join(lines)


def show(run: RunRecord) -> str:
    cfg = run.config
    lines = [f"run {run.id}: {run.status} (started {run.started}, finished {run.finished})"
             + (f"\n  error: {run.error}" if run.error else "")]
    lines += [f"  {k}: {v}" for k, v in sorted(cfg.to_dict().items())]
    lines += [f"  {k}: {getattr(run, k)}" for k in ("prompt_format", "world_size", "phase_seconds")
              if getattr(run, k) is not None]  # what the run found out (engine.store RunRecord)
    rows = epochs_of(run)
    cols = columns(rows)
    lines.append("| epoch | step | " + " | ".join(cols) + " |")  # names, as in the CSV and --best-metric
    lines.append("|---" * (len(cols) + 2) + "|")
    for m in rows:
        epoch = f"{m.get('epoch')}*" if m.get("subsampled") else m.get("epoch")  # footnote below
        lines.append(f"| {epoch} | {m.get('step')} | " + " | ".join(_fmt(m.get(k)) for k in cols) + " |")
    if any(m.get("subsampled") for m in rows):
        lines.append("* subsampled: generation-based numbers (ROUGE, leak / answered / kept-words rates) on "
                     "the seeded rows of each split only; every forward-only number on every row")
    for kind, ck in run.checkpoints.items():
        lines.append(f"{kind} checkpoint (epoch {ck.epoch}): {ck.path}")
    return "\n".join(lines)


def export_csv(store, run_id: int, path: str) -> None:
    """One row per epoch (run_id, epoch, step, every metric; nested keys dotted)."""
    rows = store.run_metrics_rows(run_id)
    keys = ["run_id", "epoch", "step"] + sorted({k for r in rows for k in r} - {"run_id", "epoch", "step"})

    def write(tmp) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=keys)
            w.writeheader()
            w.writerows(rows)

    replace_atomic(path, write)  # whole or absent


def run(args) -> int:
    # a named --store must exist (a typo says "no store at …"); opening writes nothing, so a
    # read-only store lists and shows
    store = Store(Path(args.store), create=False) if args.store else Store(paths.store_path())
    if args.export is not None:
        if not (args.csv or args.json):
            raise UserError("--export needs --csv FILE and/or --json FILE")
        check_output(args.csv, "--csv")
        check_output(args.json, "--json")
        r = store.get_run(args.export)  # NotFound (a KeyError) names the id
        if args.csv:
            export_csv(store, args.export, args.csv)
            print(f"wrote {args.csv}")
        if args.json:
            atomic.write_text_atomic(Path(args.json), json.dumps(r.to_dict(), indent=2, default=str))  # whole or absent
            print(f"wrote {args.json}")
        return 0
    if args.csv or args.json:
        raise UserError("--csv and --json go with --export ID")
    store.mark_stale_runs()  # a killed run shows as interrupted, not running (read-only store: unchanged)
    if args.show is not None:
        print(show(store.get_run(args.show)))
        return 0
    runs = store.list_runs()
    if args.retain_model is not None:
        runs = filter_by_retain(runs, args.retain_model.strip())
        if not runs:
            print(f"no recorded run used retain model {args.retain_model!r}")
            return 0
    print(list_table(runs) if runs else "no runs recorded yet (python -m engine unlearn …)")
    return 0
