"""Edit tab, review queue: samples in the order engine.masks.review puts them (vote entropy of
the selectors' default masks summed per sample, ties by the current mask's size, smaller first),
"accept and next" on one key (a, outside text boxes), and a reviewed / total counter kept in the store.

Voters: every registered selector except `oracle` (it is the ground truth, not a guess); those
that cannot run on the data (e.g. `atwu` without a scorer) are left out and named.
"""
from __future__ import annotations

import html

import gradio as gr

from engine.masks import next_to_review, review_queue
from engine.selectors import SELECTORS

from .context import AppContext, fail, message_of, ok
from .mask_set_data import MaskSetData

VOTERS = [s for s in SELECTORS if s != "oracle"]

# "a" anywhere on the page but in a text field presses the visible accept button
ACCEPT_KEY_JS = r"""
document.addEventListener('keydown', (e) => {
  if (e.key !== 'a' || e.ctrlKey || e.metaKey || e.altKey || e.shiftKey) return;
  const t = e.target;
  if (t && (t.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(t.tagName))) return;
  const btn = document.querySelector('#edit-accept');
  if (!btn || btn.offsetParent === null) return;
  e.preventDefault();
  btn.click();
});
"""


def counter_html(reviewed: int, total: int, note: str = "") -> str:
    return (f'<span id="edit-review-count" data-reviewed="{reviewed}" data-total="{total}">reviewed '
            f'<b>{reviewed} / {total}</b>{" · " + html.escape(note) if note else ""}</span>')


class ReviewHandlers:
    def __init__(self, ctx: AppContext, data: MaskSetData):
        self.ctx, self.data = ctx, data

    def voters(self, model: str, data: str) -> tuple[dict[str, list], dict[str, str]]:
        """({selector: per-sample default masks}, {selector: why it could not run}); scores cached."""
        masks, unavailable = {}, {}
        for name in VOTERS:
            try:
                defaults = self.ctx.explore.default_masks(model, data, name)
            except ValueError as err:
                unavailable[name] = message_of(err)
                continue
            masks[name] = [defaults[s.uid][1] for s in self.ctx.explore.samples(data, "forget")]
        return masks, unavailable

    def queue(self, name: str):
        """(queue items, SetData, unavailable voters)."""
        sd = self.data.read(name)
        masks, unavailable = self.voters(sd.ms.model, sd.ms.data)
        if not masks:
            raise ValueError("no selector could run on this data, so there is no disagreement to order by")
        return review_queue(masks, sd.masks), sd, unavailable

    def counter(self, name: str | None, note: str = ""):
        if not name:
            return counter_html(0, 0, "choose a mask set")
        try:
            sd = self.data.read(name)
            return counter_html(len(self.ctx.store.reviewed(name) & {s.uid for s in sd.samples}), len(sd.samples), note)
        except Exception as err:
            return counter_html(0, 0, message_of(err))

    def accept_next(self, name: str, index, accept: bool = True):
        """Mark the open sample reviewed (when `accept`), open the first unreviewed one of the queue:
        (index, counter, status)."""
        try:
            items, sd, unavailable = self.queue(name)
            if accept:
                i = int(index or 0)
                if not 0 <= i < len(sd.samples):
                    raise IndexError(f"sample {i} is out of range (0..{len(sd.samples) - 1})")
                self.ctx.masks.review(name, sd.samples[i].uid)
            reviewed = self.ctx.store.reviewed(name)
            done = {k for k, s in enumerate(sd.samples) if s.uid in reviewed}
            nxt = next_to_review(items, done)
        except Exception as err:
            return gr.update(), self.counter(name), fail(f"review: {message_of(err)}")
        left_out = f" ({', '.join(unavailable)} could not vote)" if unavailable else ""
        if nxt is None:
            return gr.update(), self.counter(name, "all reviewed"), ok("every sample is reviewed")
        item = next(it for it in items if it.index == nxt)
        note = f"next: sample {nxt}, disagreement {item.disagreement:.2f} bits"
        return nxt, self.counter(name, note), ok(f"{note}{left_out}")

    def api_queue(self, name: str) -> dict:
        """For API clients: the queue order and the voters."""
        items, _, unavailable = self.queue(name)
        return {"queue": [{"index": it.index, "disagreement": it.disagreement, "mask_size": it.mask_size}
                          for it in items], "unavailable": unavailable,
                "reviewed": sorted(self.ctx.store.reviewed(name))}


def build(ctx: AppContext, data: MaskSetData, edit: dict) -> dict:
    h = ReviewHandlers(ctx, data)
    with gr.Row():
        counter = gr.HTML(elem_id="edit-review", js_on_load=ACCEPT_KEY_JS)
        start = gr.Button("review queue: open the next sample", elem_id="edit-review-next", size="sm")
        accept = gr.Button("accept and next (a)", elem_id="edit-accept", variant="primary", size="sm")
    mask_set, index, view, status = edit["mask_set"], edit["index"], edit["view"], edit["status"]
    lock = dict(concurrency_limit=1, concurrency_id="edit")
    start.click(lambda n, i: h.accept_next(n, i, accept=False), [mask_set, index], [index, counter, status],
                api_name="review_next", **lock).then(**view, api_visibility="undocumented")
    accept.click(h.accept_next, [mask_set, index], [index, counter, status], api_name="review_accept",
                 **lock).then(**view, api_visibility="undocumented")
    mask_set.change(h.counter, mask_set, counter, api_visibility="undocumented")
    gr.api(h.api_queue, api_name="review_queue")
    return {"handlers": h}
