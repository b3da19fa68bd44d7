"""emofuse: multimodal emotion recognition (speech, face, text) with honest, speaker-independent evaluation."""

from emofuse.models.registry import create_model, list_models, register_model

__version__ = "0.1.0"

__all__ = ["__version__", "create_model", "list_models", "register_model"]
