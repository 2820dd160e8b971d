"""Pure helpers for looking at and editing token masks: colour map, chips HTML, mask edits and
the Edit tab's editor (`MaskEditor`: anchor, undo/redo, the EOS rule, reset).

No torch and no Gradio here: the app calls these with plain lists and strings.
"""
from .chips import (CHIPS_CSS, CUT_DISPLAY, EOS_DISPLAY, SPACE_MARK, auto_range, decode_token, display_token, display_tokens, legend_for,
                    MASK_CHIPS_CSS, mask_legend_html, raw_range, render_chips, render_mask_chips, render_rows)
from .colors import SCALES, contrast_ratio, dense_ranks, legend_html, score_to_color, text_color
from .mask_edit import EditHistory, brush, count_targets, reset, select_word, toggle, word_ids_from_tokens
from .mask_editor import MaskEditor

__all__ = ["CHIPS_CSS", "CUT_DISPLAY", "EOS_DISPLAY", "SPACE_MARK", "EditHistory", "MaskEditor", "auto_range", "brush", "count_targets",
           "decode_token", "display_token", "display_tokens", "legend_html", "legend_for", "raw_range", "SCALES",
           "contrast_ratio", "dense_ranks", "render_chips", "render_rows", "reset",
           "score_to_color", "select_word", "MASK_CHIPS_CSS", "mask_legend_html", "render_mask_chips", "text_color", "toggle", "word_ids_from_tokens"]
