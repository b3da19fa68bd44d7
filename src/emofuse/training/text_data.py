"""The official splits of the text corpora a fine-tuned text model trains on, as token windows.

`text_splits` reads MELD (7 classes, one label, dialogues) or GoEmotions (28 classes or Ekman 7,
multi-label: a binary target row per comment); `token_datasets` lays every sample out with
`emofuse.inputs.conversation` (the same code prediction uses) as a `TokenDataset` per split.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emofuse.errors import ConfigError, DataError

TEXT_DATASETS = ("meld", "goemotions", "goemotions_ekman")


@dataclass
class TextSplits:
    """Samples and targets (class index, or a multi-hot row) of the train / dev / test parts."""

    dataset: str
    samples: dict[str, list[Any]]
    targets: dict[str, np.ndarray]
    labels: list[str]
    multi_label: bool
    note: str


def text_splits(dataset: str, root: str | Path) -> TextSplits:
    """The official split of ``dataset`` from ``root`` (its folder, or a data root holding it)."""
    if dataset not in TEXT_DATASETS:
        raise ConfigError(f"text fine-tuning reads {', '.join(TEXT_DATASETS)}; got {dataset!r}")
    root = Path(root)
    if dataset == "meld":
        from emofuse.data.meld import MELD_LABELS, NOT_SPEAKER_DISJOINT, prepare_meld

        folder = _folder(root, "meld-text", "train_sent_emo.csv")
        samples = {part: prepare_meld(folder, split=part) for part in ("train", "dev", "test")}
        targets = {part: np.array([MELD_LABELS.index(s.label) for s in ss]) for part, ss in samples.items()}
        return TextSplits(dataset, samples, targets, list(MELD_LABELS), False, NOT_SPEAKER_DISJOINT)
    from emofuse.data.goemotions import EKMAN_LABELS, GOEMOTIONS_LABELS, NOT_SPEAKER_DISJOINT, prepare_goemotions
    from emofuse.evaluation.multilabel import binarize

    folder = _folder(root, "goemotions", "original")
    taxonomy, labels = ("original", GOEMOTIONS_LABELS) if dataset == "goemotions" else ("ekman", EKMAN_LABELS)
    samples = {part: prepare_goemotions(folder, taxonomy=taxonomy, split=part) for part in ("train", "dev", "test")}
    targets = {part: binarize([s.labels for s in ss], labels).astype(np.float32) for part, ss in samples.items()}
    return TextSplits(dataset, samples, targets, list(labels), True, NOT_SPEAKER_DISJOINT)


def _folder(root: Path, name: str, marker: str) -> Path:
    if (root / marker).exists():
        return root
    if (root / name / marker).exists():
        return root / name
    raise DataError(root, f"no {name}/ folder here (looked for {name}/{marker})")


def token_datasets(splits: TextSplits, tokenizer: Any, context: Any) -> dict[str, Any]:
    """Token windows of every part (`emofuse.inputs.conversation`), one `TokenDataset` per part."""
    from emofuse.inputs.conversation import encode_window, windows_for_samples
    from emofuse.training.text import TokenDataset

    out = {}
    for part, samples in splits.samples.items():
        windows = windows_for_samples(samples, context)
        encoded = [encode_window(tokenizer, w, context, where=s.id).as_array() for w, s in zip(windows, samples)]
        out[part] = TokenDataset(encoded, splits.targets[part])
    return out
