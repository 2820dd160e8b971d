"""The browser side of mask editing: mouse gestures on chips become one `click` event to Python.

Runs once as the gr.HTML's `js_on_load` (Gradio 6): `element` is the component's root, which
stays while its HTML is re-rendered, so the listeners are delegated to it. A gesture sends
`trigger('click', {action, start, end})`, which Python receives as `gr.EventData`:

    plain click on a chip        -> {action: "toggle", start: i, end: i}
    shift-click on a chip        -> {action: "shift",  start: i, end: i}   (brush from the anchor)
    alt-click on a chip          -> {action: "word",   start: i, end: i}   (the whole word)
    drag from chip i to chip j   -> {action: "brush",  start: i, end: j}

While dragging, the chips in range get class `wb-brushing` (a preview only; Python decides).
"""

CHIPS_JS = r"""
let down = null;
const chipOf = (e) => {
  const chip = e.target.closest ? e.target.closest('.tv-chip') : null;
  return chip && element.contains(chip) ? chip : null;
};
const clearPreview = () => element.querySelectorAll('.wb-brushing').forEach((c) => c.classList.remove('wb-brushing'));
element.addEventListener('mousedown', (e) => {
  const chip = chipOf(e);
  if (!chip || e.button !== 0) return;
  down = Number(chip.dataset.idx);
  e.preventDefault();
});
element.addEventListener('mouseover', (e) => {
  const chip = chipOf(e);
  if (down === null || !chip) return;
  const a = Math.min(down, Number(chip.dataset.idx)), b = Math.max(down, Number(chip.dataset.idx));
  element.querySelectorAll('.tv-chip').forEach((c) => {
    const i = Number(c.dataset.idx);
    c.classList.toggle('wb-brushing', i >= a && i <= b);
  });
});
element.addEventListener('mouseup', (e) => {
  const chip = chipOf(e);
  const start = down;
  down = null;
  clearPreview();
  if (!chip || start === null) return;
  const end = Number(chip.dataset.idx);
  let action = 'toggle';
  if (e.shiftKey) action = 'shift';
  else if (e.altKey) action = 'word';
  else if (start !== end) action = 'brush';
  const s = action === 'brush' ? start : end;
  trigger('click', {action: action, start: s, end: end});
});
document.addEventListener('mouseup', () => { if (down !== null) { down = null; clearPreview(); } });
"""

SHORTCUTS_JS = r"""
() => {
  // Keyboard shortcuts (not while typing in a field): Ctrl/Cmd+Z undo and Ctrl+Y / Ctrl+Shift+Z redo in
  // Edit; ← / → (or p / n) previous / next sample in the visible tab.
  const visible = (id) => { const el = document.getElementById(id); return el && el.offsetParent !== null ? el : null; };
  const press = (ids) => { for (const id of ids) { const el = visible(id); if (el) { el.click(); return true; } } return false; };
  document.addEventListener('keydown', (e) => {
    const t = e.target;
    if (t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.isContentEditable)) return;
    const mod = e.ctrlKey || e.metaKey;
    let done = false;
    if (mod && !e.shiftKey && e.key.toLowerCase() === 'z') done = press(['edit-undo']);
    else if (mod && (e.key.toLowerCase() === 'y' || (e.shiftKey && e.key.toLowerCase() === 'z'))) done = press(['edit-redo']);
    else if (!mod && !e.altKey && (e.key === 'ArrowRight' || e.key === 'n')) done = press(['explore-next', 'edit-next']);
    else if (!mod && !e.altKey && (e.key === 'ArrowLeft' || e.key === 'p')) done = press(['explore-prev', 'edit-prev']);
    if (done) e.preventDefault();
  });
}
"""

APP_CSS = """
.wb-banner { padding: 8px 12px; background: #fff4d6; border: 1px solid #e0c060; border-radius: 6px; }
.wb-banner.wb-error { background: #fde2e1; border-color: #d9534f; }
.wb-row-error { color: #8a1f11; font-size: 13px; padding: 4px 0; }
.wb-selector { border-bottom: 1px solid var(--border-color-primary, #eee); padding: 2px 0; }
.wb-row-error { color: var(--error-text-color, #8a1f11); }
.wb-fit-atwu { margin-left: 6px; padding: 2px 8px; border-radius: 4px; border: 1px solid currentColor; cursor: pointer; }
.wb-how ul { margin: 4px 0 0 18px; } .wb-how li { margin: 4px 0; }
.tv-chip.wb-brushing { outline: 2px dashed #d95f02 !important; }
.wb-edit .tv-chips { font-size: 15px; }
.dark #compare-plot .main-svg { background: var(--background-fill-primary, #0b0f19) !important; }
.dark #compare-plot .bg { fill: var(--background-fill-secondary, #1f2937) !important; }
.dark #compare-plot text { fill: #e5e7eb !important; }
.dark #compare-plot .gridlayer path, .dark #compare-plot .zerolinelayer path { stroke: #4b5563 !important; }
.dark #compare-plot .legend .bg { fill: transparent !important; }
#explore-working:not(:has(.wb-working)), #explore-search-status:not(:has(p)) { display: none; }
.wb-key { font-size: 12px; margin: 2px 0; } .wb-key .tv-chip { margin: 0 2px; }
.wb-working { padding: 4px 8px; border-left: 4px solid #2171b5; background: var(--background-fill-secondary, #f3f4f6); }
.wb-aligned-wrap, .tv-aligned td { padding: 0; } .tv-aligned th { font-size: 11px; text-align: left; white-space: nowrap; }
.tv-aligned th.tv-al-tok { font-weight: normal; font-family: ui-monospace, monospace; white-space: pre; }
.wb-cut-note { margin-top: 4px; padding: 2px 6px; border-left: 4px solid #d62728; }
"""
