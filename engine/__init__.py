"""Token-level unlearning engine: data, models, selectors, losses, training, metrics, store.

The engine never imports gradio; the app and the CLI are thin layers over it.
"""
