"""HTML for the app's views, from engine results and tokenviz helpers (string work only)."""
from __future__ import annotations

import html

from engine.explore import SampleInfo, SampleView
from engine.selectors import SELECTORS
from tokenviz.words import HOW as WORD_HOW, aggregate, any_per_word, join_words, word_ids
from tokenviz import count_targets, display_tokens, mask_legend_html, render_mask_chips, render_rows

ESC = html.escape

# one line per selector: what its score is (the row name's hover text; README "Selectors")
SELECTOR_HELP = {
    "lexical": "lexical: 1 for answer words that are content words missing from the question",
    "all": "all: every answer token is a target (the sequence-level baseline)",
    "oracle": "oracle: the ground-truth fact spans of the data (only when the data has spans)",
    "wga": "wga: p(token) — the tokens the model is most sure of (WGA, β = 1)",
    "satimp": "satimp: p⁵·(1 − p) — tokens the model has nearly but not fully memorised (SatImp)",
    "entropy": "entropy: the model's predictive entropy at the token — where it is unsure",
    "tokenunlearn": "tokenunlearn: how much the question changes log p(token), plus entropy (TokenUnlearn)",
    "tif": "tif: 1 for words the model cannot predict greedily without the question (TIF's identifier)",
    "dto": "dto: log p drop after one gradient-ascent probe step on the sequence (DTO)",
    "atwu": "atwu: a learned linear scorer σ(wᵀh + b) on the hidden state (ATWU); needs a fitted scorer",
    "ground truth": "ground truth: the fact spans written in the data (what an ideal selector finds)",
}

HOW_TO_READ = """<div class="wb-how" id="wb-how-to-read">
<p>Each row is one <b>selector</b>: a way to pick the answer tokens an unlearning run should target.
Hover a row's name for what its score is; hover a chip for the token, its exact score and its probability.</p>
<ul>
<li><span class="tv-chip tv-target" style="background:#ffffff;color:#000000">target</span> thick outline with a
corner triangle: the token is in the row's mask (trained on by a run).</li>
<li><span class="tv-chip" style="background:#ffffff;color:#000000">kept</span> no outline: not a target.</li>
<li><span class="tv-chip tv-span" style="background:#ffffff;color:#000000">fact</span> dotted underline: the token is
inside a ground-truth fact span of the data.</li>
<li>Colour: white → dark blue. With <b>colour scale: rank</b> (default) the darkest chip is the row's highest score and
the white one its lowest, whatever the raw numbers; the legend gives the raw min – max. <b>raw</b> colours the raw
score on one fixed range (0–1 when all scores lie in it).</li>
<li>The closing ⟨eos⟩ and the prompt are never targets.</li>
</ul></div>"""


def cut_note_html(fit) -> str:
    """The page's note for an answer cut to fit the model's context ('' when it fits)."""
    if fit is None or not fit.cut:
        return ""
    return (f'<div class="wb-cut-note" data-kept="{fit.kept}" data-total="{fit.total}" '
            f'data-context="{fit.context}">✂ <b>answer cut</b>: the model sees {fit.kept} of its {fit.total} '
            f'answer tokens (prompt {fit.prompt} + answer + EOS &gt; the model\'s context of {fit.context}); '
            f'the chips end at “✂ cut here”.</div>')


KEY_LINE = ("""<div class="wb-key" id="wb-key">key: <span class="tv-chip tv-target" style="background:#ffffff;"""
            """color:#000000">target</span> outline + corner triangle = in the row's mask · <span class="tv-chip tv-span" """
            """style="background:#ffffff;color:#000000">fact</span> dotted underline = ground-truth fact span · """
            """colour = the score (white low → dark blue high) · ✂ = answer cut to the context</div>""")


def question_html(info, total: int, split: str) -> str:
    """Sample header, question and answer as HTML; the data's text is escaped (never Markdown)."""
    return (f'<div class="wb-question"><b>Sample {info.index} of {total}</b> ({ESC(split)}, '
            f'<code>{ESC(info.uid)}</code>)<br><b>Q:</b> <span class="wb-q">{ESC(info.question)}</span><br>'
            f'<b>A:</b> <span class="wb-a">{ESC(info.answer)}</span>{cut_note_html(getattr(info, "fit", None))}</div>')


def cut_summary(fits: list) -> str:
    """One line for the sample list: how many samples of the split are cut and which ('' when none)."""
    cut = [i for i, f in enumerate(fits) if f.cut]
    if not cut:
        return ""
    shown = ", ".join(str(i) for i in cut[:20]) + (", …" if len(cut) > 20 else "")
    return (f"✂ {len(cut)} of {len(fits)} samples do not fit the model's context of {fits[cut[0]].context} "
            f"tokens and are shown cut (marked ✂ in the matches list): {shown}")


def _row(name: str, body: str, extra_class: str = "") -> str:
    return f'<div class="wb-selector {extra_class}" data-selector="{ESC(name)}">{body}</div>'


def selector_help(name: str) -> str | None:
    """The row name's hover text: SELECTOR_HELP, else the selector's own docstring's first line."""
    if name in SELECTOR_HELP:
        return SELECTOR_HELP[name]
    doc = (getattr(SELECTORS.get(name), "__doc__", None) or "").strip()
    return f"{name}: {doc.splitlines()[0]}" if doc else None


def _label(name: str) -> str:
    title = selector_help(name)
    attr = f' title="{ESC(title)}"' if title else ""
    return f'<div class="tv-row-label"{attr}>{ESC(name)}</div>'


def error_row(name: str, message: str) -> str:
    """A selector that could not run here: its message; ATWU's row offers the fit button in place."""
    action = ""
    if name == "atwu" and "no ATWU scorer" in message:
        message = "no ATWU scorer has been fitted for this model and data yet."
        action = (' <button class="wb-fit-atwu" type="button" id="wb-fit-atwu-inline">'
                  'fit the ATWU scorer now</button> (seconds on the built-in model; steps below)')
    return _row(name, f'<div class="tv-row">{_label(name)}'
                      f'<div class="tv-row-body wb-row-error">{ESC(message)}{action}</div></div>', "wb-unavailable")


def shown_tokens(info: SampleInfo) -> list[str]:
    """A sample's label tokens as a person reads them (the closing EOS as ⟨eos⟩, or as
    "✂ cut here" when the answer was cut to fit the model's context)."""
    fit = getattr(info, "fit", None)
    return display_tokens(info.tokens, info.eos, cut=bool(fit is not None and fit.cut))


def explore_html(view: SampleView, masks: dict[str, list[bool] | None], scale: str = "rank",
                 group: str | None = None) -> str:
    """Ground-truth spans (when the sample has them), then one row per selector with its legend.

    masks: each selector's mask (its default or a mask rule's, from `ExploreService.masks`).
    Colour = score (scale "rank": its rank in the row; "raw": the raw score), outline + corner
    triangle = mask, dotted underline = ground-truth span; hover (title) = token, exact score,
    probability; hover on a row name = what the selector scores. group "max" / "mean": one chip
    per word, its score the max / mean of its tokens' (tokenviz.words), a target if any token is.
    """
    info = view.info
    tokens = shown_tokens(info)
    probs, spans_all = info.probs, info.spans
    regroup = None
    if group in WORD_HOW:
        ids = word_ids(tokens, info.eos)
        tokens = join_words(ids, tokens)
        probs = aggregate(ids, info.probs, group)
        spans_all = any_per_word(ids, info.spans) if info.spans is not None else None

        def regroup(scores, mask):
            return aggregate(ids, scores, group), any_per_word(ids, mask)
    parts = []
    if spans_all is not None:
        spans = [bool(s) for s in spans_all]
        parts.append(_row("ground truth", render_rows([{
            "tokens": tokens, "scores": [float(s) for s in spans], "mask": spans, "probs": probs,
            "label": "ground truth", "legend_label": "in fact span", "sample_id": info.uid, "scale": scale,
            "label_title": SELECTOR_HELP["ground truth"]}]), "wb-truth"))
    for name, row in view.rows.items():
        if not row.ok:
            parts.append(error_row(name, row.error))
            continue
        mask = masks[name]
        scores = row.scores
        if regroup is not None:
            scores, mask = regroup(scores, mask)
        label = f"{name} ({count_targets(mask)})"
        parts.append(_row(name, render_rows([{
            "tokens": tokens, "scores": scores, "mask": mask, "probs": probs, "label": label,
            "legend_label": f"{name} score" + (f" ({group} over the word)" if regroup else ""),
            "spans_mask": spans_all, "sample_id": info.uid, "scale": scale,
            "label_title": selector_help(name)}])))
    grouped = f' data-group="{ESC(group)}"' if regroup is not None else ""
    return f'<div class="wb-explore" data-sample="{ESC(info.uid)}"{grouped}>{"".join(parts)}</div>'


def edit_html(info, mask: list, scores: list[float] | None, score_label: str, scale: str = "rank") -> str:
    """The one editable row of the Edit tab: chips clickable (data-idx); the FILL is the mask
    (target / not, `render_mask_chips`), the selector's score a bar under each chip and its hover."""
    chips = render_mask_chips(shown_tokens(info), [bool(m) for m in mask], scores, probs=info.probs,
                              row_label="mask", sample_id=info.uid, editable=True, spans_mask=info.spans,
                              scale=scale)
    legend = mask_legend_html(score_label if scores is not None else None)
    return f'<div class="wb-edit" data-sample="{ESC(info.uid)}">{chips}{legend}</div>'


def probs_html(tokens: list[str], probs: list[float], label: str) -> str:
    """Ground-truth answer tokens (display strings) coloured by p(token) under one model."""
    return render_rows([{"tokens": tokens, "scores": probs, "mask": [False] * len(tokens), "probs": probs,
                         "label": label, "legend_label": "p(token)", "vmin": 0.0, "vmax": 1.0}])


def progress_html(snap) -> str:
    """The Run tab's progress: the phase (loading, evaluating with its own bar over questions,
    training with epoch, step and loss, saving), the last FQ/MU, and once ended the seconds per phase."""
    total = snap.total_steps or 0
    pct = int(100 * snap.step / total) if total else 0
    phase = snap.phase or ""
    bits = [f"state: <b>{ESC(snap.state)}</b>"]
    if phase:
        bits.append(f"phase: <b>{ESC(phase)}</b>")
    if snap.run_id is not None:
        bits.append(f"run {snap.run_id}")
    cfg = snap.config or {}
    if cfg.get("model"):
        bits.append(f"{ESC(str(cfg.get('loss')))} on {ESC(str(cfg.get('model')))} / {ESC(str(cfg.get('data')))}")
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
    eval_bar = ""
    if phase == "evaluating" and snap.eval_total:
        eval_bar = (f'<div class="wb-eval-progress">evaluation: <progress max="{snap.eval_total}" '
                    f'value="{snap.eval_done or 0}" style="width:60%"></progress> {snap.eval_done or 0} of '
                    f'{snap.eval_total} questions</div>')
    times = ""
    if snap.phase_seconds:
        times = ('<div class="wb-phase-seconds">time per phase: ' + " · ".join(
            f"{ESC(k)} {v:.0f} s" for k, v in snap.phase_seconds.items()) + "</div>")
    return (f'<div class="wb-progress" data-state="{ESC(snap.state)}" data-phase="{ESC(phase)}" '
            f'data-run="{snap.run_id or ""}" data-step="{snap.step}">'
            f'<div>training steps: <progress max="100" value="{pct}" style="width:80%"></progress></div>{eval_bar}'
            f'<div class="wb-progress-text">{" · ".join(bits)} — {ESC(snap.message)}</div>{times}</div>')


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
