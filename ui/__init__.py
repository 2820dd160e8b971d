"""Gradio tabs of the workbench app (layout + event wiring; handlers call engine/ and tokenviz/)."""
