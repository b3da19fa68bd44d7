"""Dataset loaders: each turns a corpus on disk into a list of `Sample` records.

``prepare("ravdess", root, **options)`` dispatches by dataset name; ``default_labels`` gives
each corpus's class list in a fixed order (the model's output order).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from emofuse.data.cremad import CREMAD_LABELS, prepare_cremad
from emofuse.data.iemocap import IEMOCAP_ALL_LABELS, IEMOCAP_LABELS, prepare_iemocap
from emofuse.data.manifest import prepare_manifest
from emofuse.data.meld import MELD_LABELS, prepare_meld
from emofuse.data.ravdess import RAVDESS_LABELS, prepare_ravdess, ravdess_from_manifest
from emofuse.data.record import MODALITIES, Sample
from emofuse.errors import ConfigError

DATASETS = ("ravdess", "cremad", "iemocap", "meld", "manifest")

_PREPARE: dict[str, Callable[..., list[Sample]]] = {
    "ravdess": prepare_ravdess,
    "cremad": prepare_cremad,
    "iemocap": prepare_iemocap,
    "meld": prepare_meld,
    "manifest": prepare_manifest,
}
_LABELS = {"ravdess": RAVDESS_LABELS, "cremad": CREMAD_LABELS, "iemocap": IEMOCAP_LABELS, "meld": MELD_LABELS}


def _check_dataset(dataset: str) -> str:
    if dataset not in DATASETS:
        raise ConfigError(f"unknown dataset {dataset!r}; available: {', '.join(DATASETS)}")
    return dataset


def prepare(dataset: str, root: str | Path, **kwargs: Any) -> list[Sample]:
    """Load ``dataset`` from ``root`` (for ``"manifest"``: the CSV path) with loader options."""
    fn = _PREPARE[_check_dataset(dataset)]
    params = inspect.signature(fn).parameters
    allowed = [n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    unknown = [k for k in kwargs if k not in allowed]
    if unknown:
        raise ConfigError(f"{dataset}: unknown option(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}")
    return fn(root, **kwargs)


def default_labels(dataset: str) -> list[str]:
    """The class list of a corpus in its canonical order (a new list each call)."""
    if _check_dataset(dataset) == "manifest":
        raise ConfigError("a manifest has no fixed label set; pass labels explicitly or use labels_in(samples)")
    return list(_LABELS[dataset])


def labels_in(samples: Iterable[Sample], column: str = "label") -> list[str]:
    """The sorted distinct labels found in ``column`` of ``samples`` (None excluded)."""
    return sorted({lab for s in samples if (lab := s.label_for(column)) is not None})


__all__ = [
    "CREMAD_LABELS", "DATASETS", "IEMOCAP_ALL_LABELS", "IEMOCAP_LABELS", "MELD_LABELS", "MODALITIES",
    "RAVDESS_LABELS", "Sample", "default_labels", "labels_in", "prepare", "prepare_cremad",
    "prepare_iemocap", "prepare_manifest", "prepare_meld", "prepare_ravdess", "ravdess_from_manifest",
]
