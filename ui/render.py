"""HTML for the app's views, from engine results and tokenviz helpers (string work only)."""
from __future__ import annotations

import html

from engine.explore import SampleInfo, SampleView
from tokenviz import auto_range, count_targets, display_tokens, legend_html, render_chips, render_rows

ESC = html.escape


def question_md(info, total: int, split: str) -> str:
    return (f"**Sample {info.index} of {total}** ({split}, `{ESC(info.uid)}`)  \n"
            f"**Q:** {ESC(info.question)}  \n**A:** {ESC(info.answer)}")


def _row(name: str, body: str, extra_class: str = "") -> str:
    return f'<div class="wb-selector {extra_class}" data-selector="{ESC(name)}">{body}</div>'


def error_row(name: str, message: str) -> str:
    return _row(name, f'<div class="tv-row"><div class="tv-row-label">{ESC(name)}</div>'
                      f'<div class="tv-row-body wb-row-error">{ESC(message)}</div></div>', "wb-unavailable")


def shown_tokens(info: SampleInfo) -> list[str]:
    """A sample's label tokens as a person reads them (the closing EOS as ⟨eos⟩)."""
    return display_tokens(info.tokens, info.eos)


def explore_html(view: SampleView, masks: dict[str, list[bool] | None]) -> str:
    """Ground-truth spans (when the sample has them), then one row per selector with its legend.

    masks: each selector's mask (its default or a mask rule's, from `ExploreService.masks`).
    Colour = score on the sequential ramp, outline = mask, underline = ground-truth span;
    hover (title) = token, exact score, probability.
    """
    info = view.info
    tokens = shown_tokens(info)
    parts = []
    if info.spans is not None:
        spans = [bool(s) for s in info.spans]
        parts.append(_row("ground truth", render_rows([{
            "tokens": tokens, "scores": [float(s) for s in spans], "mask": spans, "probs": info.probs,
            "label": "ground truth", "legend_label": "in fact span", "sample_id": info.uid}]), "wb-truth"))
    for name, row in view.rows.items():
        if not row.ok:
            parts.append(error_row(name, row.error))
            continue
        mask = masks[name]
        label = f"{name} ({count_targets(mask)})"
        parts.append(_row(name, render_rows([{
            "tokens": tokens, "scores": row.scores, "mask": mask, "probs": info.probs, "label": label,
            "legend_label": f"{name} score", "spans_mask": info.spans, "sample_id": info.uid}])))
    return f'<div class="wb-explore" data-sample="{ESC(info.uid)}">{"".join(parts)}</div>'


def edit_html(info, mask: list, scores: list[float] | None, score_label: str) -> str:
    """The one editable row of the Edit tab: chips clickable (data-idx), outline = target."""
    colour = scores if scores is not None else info.probs
    lo, hi = auto_range(colour)
    chips = render_chips(shown_tokens(info), colour, [bool(m) for m in mask], probs=info.probs, row_label="mask",
                         sample_id=info.uid, editable=True, spans_mask=info.spans, vmin=lo, vmax=hi)
    legend = legend_html(lo, hi, score_label)
    return f'<div class="wb-edit" data-sample="{ESC(info.uid)}">{chips}{legend}</div>'


def probs_html(tokens: list[str], probs: list[float], label: str) -> str:
    """Ground-truth answer tokens (display strings) coloured by p(token) under one model."""
    return render_rows([{"tokens": tokens, "scores": probs, "mask": [False] * len(tokens), "probs": probs,
                         "label": label, "legend_label": "p(token)", "vmin": 0.0, "vmax": 1.0}])


def progress_html(snap) -> str:
    """The Run tab's progress bar: epoch, step, loss, state."""
    total = snap.total_steps or 0
    pct = int(100 * snap.step / total) if total else 0
    bits = [f"state: <b>{ESC(snap.state)}</b>"]
    if snap.run_id is not None:
        bits.append(f"run {snap.run_id}")
    if snap.epoch is not None:
        bits.append(f"epoch {snap.epoch}/{snap.epochs}")
    bits.append(f"step {snap.step}/{total or '?'}")
    if snap.loss is not None:
        bits.append(f"loss {snap.loss:.4f}")
    if snap.last_metrics:
        fq, mu = snap.last_metrics.get("forget_quality"), snap.last_metrics.get("model_utility")
        if fq is not None:
            bits.append(f"FQ {fq:.3g}")
        if mu is not None:
            bits.append(f"MU {mu:.3g}")
    return (f'<div class="wb-progress" data-state="{ESC(snap.state)}" data-run="{snap.run_id or ""}" '
            f'data-step="{snap.step}"><progress max="100" value="{pct}" style="width:100%"></progress>'
            f'<div class="wb-progress-text">{" · ".join(bits)} — {ESC(snap.message)}</div></div>')


def before_after_html(result: dict, after_label: str) -> str:
    """Question, ground truth, and side by side: generation + answer-token probabilities."""
    cols = []
    for side, title in (("before", "target model"), ("after", after_label)):
        r = result[side]
        cols.append(f'<div class="wb-ba-col" data-side="{side}"><h4>{ESC(title)}</h4>'
                    f'<p><b>greedy:</b> {ESC(r["generation"]) or "<i>(empty)</i>"}</p>'
                    f'{probs_html(display_tokens(r["tokens"], r["eos"]), r["probs"], "p(answer)")}</div>')
    return (f'<div class="wb-ba"><p><b>Q:</b> {ESC(result["question"])}<br><b>ground truth:</b> '
            f'{ESC(result["answer"])}</p><div style="display:flex;gap:16px">{"".join(cols)}</div></div>')
