"""TOFU's protocol end to end on a TOFU-layout directory, through the CLI and the app (issue 10).

    python benchmarks/tofu_end_to_end.py [--out DIR] [--data DIR] [--loss npo] [--epochs 5]

1. data: a TOFU-layout directory (`--data`), or, by default, the one the tests' fixture writes
   (`engine.data.tofu_layout.write_tofu_layout`: TOFU's exact file names and fields, built-in generator).
2. `python -m engine finetune --data D --out M` (tiny config): target on full.json, retain model on
   retain90.json, memorisation report (M/memorisation.json).
3. `python -m engine eval --model M/target --data D --retain-model M/retain`: FQ and MU of the target.
4. `python -m engine unlearn --model M/target --data D --retain-model M/retain --loss L --epochs E`:
   FQ and MU recorded every epoch, the best-FQ checkpoint kept.
5. `python -m engine runs --retain-model M/retain`, then the app (in-process, gradio_client): the
   Compare tab's curve of that run, labelled with its retain model.

Each step's wall time, the figures and the commands go to stdout (Markdown) and OUT/summary.json.
A separate WORKBENCH_HOME under OUT keeps the store and caches apart from yours.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # not benchmarks/: its selectors.py would shadow the standard library's

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402


def cli(*args: str, env: dict) -> tuple[float, str]:
    """Run `python -m engine ARGS` from the repository root; (seconds, stdout). Fails loudly."""
    t = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "engine", *args], cwd=ROOT, env=env, text=True,
                          capture_output=True)
    seconds = time.perf_counter() - t
    if done.returncode != 0:
        raise SystemExit(f"`python -m engine {' '.join(args)}` exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return seconds, done.stdout


def compare_curve(model: str, data: str, run_id: int) -> dict:
    """The app's Compare tab (`compare_refresh`) for (model, data): the run's trace name and points."""
    from gradio_client import Client

    import app
    from benchmarks.harness import serve

    demo = app.build_demo(Path(os.environ["WORKBENCH_STORE"]))
    with serve(demo) as url:
        fig, *_ , status = Client(url, verbose=False).predict(model, data, 200, 200, True, api_name="/compare_refresh")
    traces = [t for t in json.loads(fig["plot"])["data"] if t.get("name", "").startswith(f"run {run_id}:")]
    if not traces:
        raise SystemExit(f"the Compare tab shows no curve for run {run_id}: {status}")
    return {"label": traces[0]["name"], "points": len(traces[0]["x"]), "status": status}


def fmt(x) -> str:
    return "unavailable" if x is None else f"{x:.3g}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / ".e2e")
    ap.add_argument("--data", type=Path, default=None,
                    help="a TOFU-layout directory, optionally DIR/forgetN (default: the tests' fixture's DIR/forget10)")
    ap.add_argument("--loss", default="npo")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--no-app", action="store_true", help="skip the app step (e.g. on a machine without gradio)")
    ap.add_argument("--finetune-arg", action="append", default=[], help="extra finetune argument (repeatable)")
    args = ap.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    from engine import paths

    built = paths.builtin_dir()  # the app builds the built-in models on first start: reuse yours
    if built.is_dir() and not (out / "home" / "builtin").exists():
        (out / "home").mkdir(parents=True, exist_ok=True)
        (out / "home" / "builtin").symlink_to(built.resolve(), target_is_directory=True)
    env = {**os.environ, "WORKBENCH_HOME": str(out / "home"), "WORKBENCH_STORE": str(out / "home" / "store.sqlite"),
           "GRADIO_ANALYTICS_ENABLED": "False"}
    os.environ.update({k: env[k] for k in ("WORKBENCH_HOME", "WORKBENCH_STORE", "GRADIO_ANALYTICS_ENABLED")})
    data = args.data
    if data is None:
        from engine.data.tofu_layout import write_tofu_layout

        data = write_tofu_layout(out / "tofu") / "forget10"  # TOFU's DIR/<forget split> form
    data, models = str(data.resolve()), out / "models"
    target, retain = str(models / "target"), str(models / "retain")
    steps: dict[str, float] = {}

    steps["finetune"], _ = cli("finetune", "--data", data, "--out", str(models), *args.finetune_arg, env=env)
    memo = json.loads((models / "memorisation.json").read_text())
    steps["eval"], _ = cli("eval", "--model", target, "--data", data, "--retain-model", retain,
                           "--json", str(out / "eval_target.json"), env=env)
    ev = json.loads((out / "eval_target.json").read_text())
    steps["unlearn"], _ = cli("unlearn", "--model", target, "--data", data, "--retain-model", retain,
                              "--loss", args.loss, "--epochs", str(args.epochs), "--json", str(out / "run.json"), env=env)
    run = json.loads((out / "run.json").read_text())
    steps["runs"], listing = cli("runs", "--retain-model", retain, env=env)
    from engine.store import Store

    record = Store(Path(env["WORKBENCH_STORE"])).get_run(run["run_id"])
    t = time.perf_counter()
    curve = None if args.no_app else compare_curve(target, data, record.id)
    steps["app (Compare)"] = time.perf_counter() - t

    epochs = [{"epoch": m.epoch, "fq": m.metrics.value("forget_quality"), "mu": m.metrics.value("model_utility")}
              for m in record.metrics]
    best = record.checkpoints.get("best")
    summary = {"data": data, "memorisation": memo, "eval": {k: ev.get(k) for k in ("forget_quality", "model_utility", "notes")},
               "run": {"id": record.id, "status": record.status, "retain_model": record.retain_model, "epochs": epochs,
                       "best_checkpoint_epoch": best.epoch if best else None}, "app": curve, "seconds": steps}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))

    print(f"data: {data}\n\nmemorisation report (finetune):\n```\n{json.dumps(memo, indent=1)[:1500]}\n```")
    print(f"\ntarget model: FQ {fmt(ev.get('forget_quality'))}, MU {fmt(ev.get('model_utility'))}"
          + (f" (notes: {'; '.join(ev['notes'])})" if ev.get("notes") else ""))
    print(f"\nrun {record.id} ({args.loss}, {args.epochs} epochs, {record.status}), retain model {record.retain_model}:\n")
    print("| epoch | FQ | MU |\n|---|---|---|")
    for e in epochs:
        print(f"| {e['epoch']} | {fmt(e['fq'])} | {fmt(e['mu'])} |")
    print(f"\nbest-FQ checkpoint: epoch {summary['run']['best_checkpoint_epoch']}")
    print(f"\n`runs --retain-model`:\n{listing.strip()}")
    if curve:
        print(f"\napp Compare tab: curve {curve['label']!r}, {curve['points']} points")
    print("\n| step | seconds |\n|---|---|\n" + "\n".join(f"| {k} | {v:.1f} |" for k, v in steps.items()))


if __name__ == "__main__":
    main()
