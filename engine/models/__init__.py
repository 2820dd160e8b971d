"""Models: device choice, safe loading of local HF checkpoints, the built-in tiny models."""
from .device import dtype_for, pick_device
from .loading import ModelLoadError, load_model, load_tokenizer

__all__ = ["ModelLoadError", "dtype_for", "load_model", "load_tokenizer", "pick_device"]
