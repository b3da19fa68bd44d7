"""Loading frozen pretrained encoders (Hugging Face ``transformers``) from local folders.

Hub downloads are disabled: an encoder is a folder holding a saved model (``config.json`` and
weights). ``transformers`` is imported only when an encoder is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emofuse.errors import ConfigError, DataError


@dataclass
class LoadedEncoder:
    """A frozen pretrained encoder and its preprocessor (tokenizer / feature extractor or None)."""

    model: Any
    preprocessor: Any | None
    hidden_size: int


def import_transformers() -> Any:
    try:
        import transformers
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigError("loading a pretrained encoder needs the 'transformers' package: pip install transformers") from exc
    transformers.logging.set_verbosity_error()
    return transformers


def check_model_folder(path: str | Path) -> Path:
    """``path`` as a folder holding a saved Hugging Face model (DataError naming it otherwise)."""
    folder = Path(path)
    if not folder.is_dir():
        raise DataError(folder, "encoder folder not found (hub downloads are disabled: pass a local folder)")
    if not (folder / "config.json").is_file():
        raise DataError(folder, "not a saved Hugging Face model: config.json is missing")
    return folder


def load_frozen_model(folder: Path) -> Any:
    transformers = import_transformers()
    try:
        model = transformers.AutoModel.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(folder, f"cannot load the encoder weights: {exc}") from exc
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def load_preprocessor(folder: Path, factory: Any, what: str) -> Any:
    """``factory.from_pretrained(folder)`` offline (a tokenizer or feature extractor), or a `DataError`
    naming the folder and ``what`` could not be loaded."""
    try:
        return factory.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(folder, f"cannot load the {what}: {exc}") from exc
