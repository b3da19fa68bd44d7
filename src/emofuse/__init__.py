"""emofuse: multimodal emotion recognition (speech, face, text) with honest, speaker-independent evaluation."""

from __future__ import annotations

from typing import Any

__version__ = "0.3.0"

__all__ = ["AudioVisualPredictor", "Predictor", "__version__", "create_model", "list_models", "register_model"]


def __getattr__(name: str) -> Any:
    """The registry functions, `Predictor` and `AudioVisualPredictor`, imported on first use so that ``import emofuse`` (and the CLI's
    ``--help``) does not pay for importing PyTorch."""
    if name in ("create_model", "list_models", "register_model"):
        from emofuse.models import registry

        return getattr(registry, name)
    if name in ("Predictor", "Prediction"):
        from emofuse.inference import predictor

        return getattr(predictor, name)
    if name == "AudioVisualPredictor":
        from emofuse.inference import audio_visual

        return audio_visual.AudioVisualPredictor
    raise AttributeError(f"module 'emofuse' has no attribute {name!r}")
