"""Edit tab, interop: export the open mask set as character spans, as our `target_words` word lists or
as the TPO authors' `common_words` (general-word spans; JSON lines), import either as a new mask set
and/or as the ground truth of live accuracy
(engine.masks.interop). A bad file is refused with its line and field before anything is written."""
from __future__ import annotations

import tempfile
from pathlib import Path

import gradio as gr

from engine.masks import (
    export_common_words,
    export_spans,
    export_words,
    masks_from_records,
    read_common_words_file,
    read_span_file,
    read_word_file,
    to_jsonl,
    truth_from_records,
)
from engine.fingerprint import text_hash
from engine.resolve import canonical_data

from .context import AppContext, fail, message_of, ok
from .mask_set_data import SPLIT, MaskSetData

FORMATS = {"character spans": "spans", "word lists (target_words)": "words",
           "general-word spans (common_words, the TPO authors' form)": "common_words"}


def _path_of(file) -> Path:
    return Path(file if isinstance(file, str) else getattr(file, "name", file))


class InteropHandlers:
    def __init__(self, ctx: AppContext, data: MaskSetData, choices):
        self.ctx, self.data, self.choices = ctx, data, choices

    def export(self, name: str, fmt: str):
        """(file path, status): one JSON line per forget sample."""
        try:
            sd = self.data.read(name)
            kind = FORMATS[fmt]
            export = {"spans": export_spans, "words": export_words, "common_words": export_common_words}[kind]
            rows = export(sd.samples, sd.offsets, sd.masks)
        except Exception as err:
            return None, fail(f"not exported: {message_of(err)}")
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        path = Path(tempfile.mkdtemp(prefix="masks-")) / f"{safe}.{kind}.jsonl"
        path.write_text(to_jsonl(rows), encoding="utf-8")
        return str(path), ok(f"exported {name!r} as {fmt} ({len(rows)} samples)")

    def read(self, file, fmt: str, model: str, data: str):
        """(records, samples, offsets) of an uploaded file checked against the forget split of `data`."""
        if file is None:
            raise ValueError("choose a JSON-lines file to import")
        path = _path_of(file)
        reader = {"spans": read_span_file, "words": read_word_file, "common_words": read_common_words_file}[FORMATS[fmt]]
        records = reader(path.read_text(encoding="utf-8"), path.name)
        if not records:
            raise ValueError(f"{path.name}: no records (one JSON object per line)")
        samples = self.ctx.explore.samples(data, SPLIT)
        return records, samples, path.name

    def import_file(self, file, fmt: str, new_name: str, as_set: bool, as_truth: bool, model: str, data: str):
        """Import into a new mask set (name given) and/or as ground truth; (mask set dropdown, status)."""
        try:
            if not as_set and not as_truth:
                raise ValueError("tick 'as a new mask set' and/or 'as ground truth'")
            records, samples, source = self.read(file, fmt, model, data)
            truth = truth_from_records(samples, records, source)  # MaskFileError for unmatched records
            done = []
            if as_set:
                name = (new_name or "").strip()
                if not name:
                    raise ValueError("give the new mask set a name")
                offsets = self.data.offsets(model, data)
                masks = masks_from_records(samples, offsets, records, source)
                payload = {s.uid: (text_hash(s.question, s.answer), [int(v) for v in (m or [0] * len(o))])
                           for s, m, o in zip(samples, masks, offsets)}
                self.ctx.masks.create_from_masks(name, model, data, payload)
                done.append(f"mask set {name!r} ({sum(m is not None for m in masks)} samples from the file)")
            if as_truth:
                self.data.imported_truth[canonical_data(data)] = truth
                done.append(f"ground truth for {data} ({sum(bool(t) for t in truth)} samples with spans)")
        except Exception as err:
            return gr.update(), fail(f"not imported: {message_of(err)}")
        return (self.choices(new_name.strip()) if as_set else gr.update()), ok(f"imported {source}: " + "; ".join(done))


def build(ctx: AppContext, data: MaskSetData, edit: dict, top: dict) -> dict:
    h = InteropHandlers(ctx, data, edit["choices"])
    with gr.Accordion("import / export spans and word lists (JSON lines)", open=False):
        gr.Markdown('Spans: `{"question", "answer", "spans": [{"start", "end"}]}`; word lists: '
                    '`{"question", "answer", "target_words": [...]}`; general-word spans (the TPO authors\' form, '
                    'targets are the other words): `{"question", "answer", "common_words": ["{\\"word\\", \\"start\\", \\"end\\"}", ...]}`; '
                    'one sample per line (the model / data above).')
        fmt = gr.Radio(list(FORMATS), value="character spans", label="format", elem_id="edit-io-format")
        with gr.Row():
            export = gr.Button("export the mask set", elem_id="edit-io-export")
            exported = gr.File(label="exported file", interactive=False, elem_id="edit-io-exported")
        with gr.Row():
            name = gr.Textbox(label="new mask set name", elem_id="edit-io-name")
            as_set = gr.Checkbox(value=True, label="as a new mask set")
            as_truth = gr.Checkbox(value=False, label="as ground truth for live accuracy")
            upload = gr.File(label="import JSON lines", file_types=[".jsonl", ".json"], type="filepath",
                             elem_id="edit-io-upload")
    status = edit["status"]
    export.click(h.export, [edit["mask_set"], fmt], [exported, status], api_name="masks_export")
    imported = upload.upload(h.import_file, [upload, fmt, name, as_set, as_truth, top["model"], top["data"]],
                             [edit["mask_set"], status], api_name="masks_import")
    return {"changed": [imported], "handlers": h}
