"""Dataset loaders: each turns a corpus on disk into a list of `Sample` records.

Every corpus module registers a `DatasetSpec` (`emofuse.data.specs`): ``prepare("ravdess", root,
**options)`` dispatches to its loader by name (``"manifest"``: the generic CSV loader), and
``default_labels`` gives its class list in a fixed order (the model's output order).
`load_dataset` loads a registered corpus or a CSV manifest with its label set and folds.
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
from emofuse.data.specs import (DatasetInstance, DatasetSpec, get_dataset, list_datasets, load_dataset,
                                register_dataset)
from emofuse.errors import ConfigError

#: the name `prepare` gives the generic CSV manifest loader
MANIFEST = "manifest"


def __getattr__(name: str) -> Any:
    if name == "DATASETS":  # the registered names, then "manifest" (read from the registry)
        return (*list_datasets(), MANIFEST)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _loader(dataset: str) -> Callable[..., list[Sample]]:
    return prepare_manifest if dataset == MANIFEST else get_dataset(dataset).loader


def prepare(dataset: str, root: str | Path, **kwargs: Any) -> list[Sample]:
    """Load ``dataset`` from ``root`` (for ``"manifest"``: the CSV path) with loader options."""
    fn = _loader(dataset)
    params = inspect.signature(fn).parameters
    allowed = [n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    unknown = [k for k in kwargs if k not in allowed]
    if unknown:
        raise ConfigError(f"{dataset}: unknown option(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}")
    return fn(root, **kwargs)


def default_labels(dataset: str) -> list[str]:
    """The class list of a corpus in its canonical order (a new list each call)."""
    if dataset == MANIFEST:
        raise ConfigError("a manifest has no fixed label set; pass labels explicitly or use labels_in(samples)")
    return list(get_dataset(dataset).labels)


def labels_in(samples: Iterable[Sample], column: str = "label") -> list[str]:
    """The sorted distinct labels found in ``column`` of ``samples`` (None excluded)."""
    return sorted({lab for s in samples if (lab := s.label_for(column)) is not None})


__all__ = [
    "CREMAD_LABELS", "DATASETS", "DatasetInstance", "DatasetSpec", "IEMOCAP_ALL_LABELS", "IEMOCAP_LABELS",
    "MELD_LABELS", "MODALITIES", "RAVDESS_LABELS", "Sample", "default_labels", "get_dataset", "labels_in",
    "list_datasets", "load_dataset", "prepare", "prepare_cremad", "prepare_iemocap", "prepare_manifest",
    "prepare_meld", "prepare_ravdess", "ravdess_from_manifest", "register_dataset",
]
