"""Models: device choice, safe loading of local HF checkpoints, the built-in tiny models."""
from .device import dtype_for, pick_device
from .loading import LoaderFault, ModelLoadError, load_model, load_tokenizer, model_loading

__all__ = ["LoaderFault", "ModelLoadError", "model_loading", "dtype_for", "load_model", "load_tokenizer", "pick_device"]
