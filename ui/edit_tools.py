"""The Edit tab's set-wide tools, laid out under the chips: the review queue, live accuracy,
phrase rules and span / word-list interop (one module each); live accuracy is refreshed after
anything that can change a mask."""
from __future__ import annotations

from .context import AppContext
from . import edit_rules, live_accuracy, mask_interop, review_queue
from .mask_set_data import MaskSetData


def build(ctx: AppContext, edit: dict, top: dict) -> dict:
    """edit: the Edit tab's mask_set, index, chips, status, view (event dict) and choices (fn)."""
    data = MaskSetData(ctx)
    review = review_queue.build(ctx, data, edit)
    acc = live_accuracy.build(ctx, data)
    rules = edit_rules.build(ctx, data, edit)
    interop = mask_interop.build(ctx, data, edit, top)
    refresh = dict(fn=acc["fn"], inputs=edit["mask_set"], outputs=acc["outputs"], api_visibility="undocumented",
                   show_progress="hidden")
    edit["chips"].change(**refresh)  # every edit of the open sample re-renders its chips
    edit["mask_set"].change(**refresh)
    for event in rules["changed"] + interop["changed"]:
        event.then(**refresh)
    return {"data": data, "review": review, "accuracy": acc, "rules": rules, "interop": interop}
