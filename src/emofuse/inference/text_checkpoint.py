"""Fine-tuned text checkpoints: a folder with ``model.safetensors`` (encoder + head weights),
``config.json`` (the encoder's transformers config, head, labels, conversation window, per-class
thresholds of a multi-label head, training record) and ``tokenizer/`` (the tokenizer's JSON/text
files). Nothing is unpickled; every field of ``config.json`` is checked on load.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emofuse.errors import DataError

FORMAT = "emofuse-text-classifier"
VERSION = 1
_FIELDS = {"format", "version", "labels", "classifier", "context", "thresholds", "recipe", "dataset", "training",
           "created"}


@dataclass
class TextCheckpoint:
    """A loaded fine-tuned text classifier with its tokenizer and window settings."""

    folder: Path
    model: Any  # TextClassifier
    tokenizer: Any
    labels: list[str]
    context: Any  # ContextSpec
    thresholds: list[float] | None = None
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def multi_label(self) -> bool:
        return bool(self.model.multi_label)


def is_text_checkpoint(folder: str | Path) -> bool:
    """Whether ``folder`` holds a fine-tuned text checkpoint (its config.json says so)."""
    config = Path(folder) / "config.json"
    if not config.is_file():
        return False
    try:
        return json.loads(config.read_text(encoding="utf-8")).get("format") == FORMAT
    except (ValueError, OSError, AttributeError, RecursionError):
        return False  # not one of ours; the speech checkpoint loader names the problem


def save_text_checkpoint(folder: str | Path, model: Any, tokenizer: Any, labels: list[str], context: Any, *,
                         thresholds: list[float] | None = None, recipe: dict[str, Any] | None = None,
                         dataset: str | None = None, training: dict[str, Any] | None = None) -> Path:
    """Write the checkpoint into ``folder`` (built in a sibling temporary folder, then renamed)."""
    from datetime import datetime, timezone

    from safetensors.torch import save_file

    from emofuse.atomic import atomic_write_text

    folder = Path(folder)
    if folder.exists() and not (folder.is_dir() and (not any(folder.iterdir()) or is_text_checkpoint(folder))):
        raise DataError(folder, "exists and is not a text checkpoint folder: refusing to replace it")
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, str(tmp / "model.safetensors"))
    tokenizer.save_pretrained(str(tmp / "tokenizer"))
    for stray in (tmp / "tokenizer").glob("*.bin"):
        stray.unlink()
    config = {"format": FORMAT, "version": VERSION, "labels": list(labels),
              "classifier": {"encoder_config": model.encoder_config, "pooling": model.pooling,
                             "dropout": float(model.dropout.p), "multi_label": model.multi_label},
              "context": context.to_dict(), "thresholds": thresholds, "recipe": recipe, "dataset": dataset,
              "training": training or {}, "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    atomic_write_text(tmp / "config.json", json.dumps(config, indent=2, default=float) + "\n")
    if folder.exists():
        old = folder.with_name(f".{folder.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        folder.rename(old)
        tmp.rename(folder)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(folder)
    return folder


def load_text_checkpoint(folder: str | Path) -> TextCheckpoint:
    """Load and check a checkpoint written by `save_text_checkpoint` (`DataError` naming the file and field)."""
    from safetensors.torch import load_file

    from emofuse.encoders.base import import_transformers
    from emofuse.encoders.text_classifier import TextClassifier
    from emofuse.errors import ConfigError
    from emofuse.inputs.conversation import ContextSpec

    folder = Path(folder)
    config_file = folder / "config.json"
    config = _read_config(config_file)
    head = config["classifier"]
    try:
        model = TextClassifier(head["encoder_config"], len(config["labels"]), pooling=head.get("pooling", "cls"),
                               dropout=float(head.get("dropout", 0.1)), multi_label=bool(head.get("multi_label")))
        context = ContextSpec.from_dict(config["context"], "context")
    except (ConfigError, KeyError, TypeError) as exc:
        raise DataError(config_file, f"classifier/context: {exc}") from None
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise DataError(weights, "missing: the checkpoint has no weights")
    try:
        state = load_file(str(weights))
        model.load_state_dict(state, strict=True)
    except (RuntimeError, OSError, ValueError) as exc:
        raise DataError(weights, f"weights do not fit config.json ({str(exc)[:200]})") from None
    transformers = import_transformers()
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder / "tokenizer"), local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(folder / "tokenizer", f"cannot load the tokenizer: {exc}") from None
    thresholds = config.get("thresholds")
    return TextCheckpoint(folder, model.eval(), tokenizer, list(config["labels"]), context,
                          None if thresholds is None else [float(t) for t in thresholds], config)


def _read_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DataError(path, "missing: not a fine-tuned text checkpoint folder")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise DataError(path, f"not valid JSON ({exc})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise DataError(path, f"field format: not {FORMAT!r}")
    if config.get("version") != VERSION:
        raise DataError(path, f"field version: {config.get('version')!r}, this emofuse reads {VERSION}")
    unknown = sorted(set(config) - _FIELDS)
    if unknown:
        raise DataError(path, f"unknown field(s) {', '.join(unknown)}")
    labels = config.get("labels")
    if not isinstance(labels, list) or len(labels) < 2 or not all(isinstance(x, str) and x for x in labels) \
            or len(set(labels)) != len(labels):
        raise DataError(path, "field labels: must be a list of at least 2 distinct names")
    head = config.get("classifier")
    if not isinstance(head, dict) or not isinstance(head.get("encoder_config"), dict):
        raise DataError(path, "field classifier.encoder_config: must be the encoder's transformers config object")
    thresholds = config.get("thresholds")
    if thresholds is not None and (not isinstance(thresholds, list) or len(thresholds) != len(labels)
                                   or not all(isinstance(t, (int, float)) and 0 <= t <= 1 for t in thresholds)):
        raise DataError(path, "field thresholds: must be null or one number in [0, 1] per label")
    return config
