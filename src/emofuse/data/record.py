"""The one sample record every dataset loader produces."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:  # numpy is not imported at run time: `emofuse COMMAND --help` lists datasets without it
    import numpy as np

from emofuse.data.modalities import list_modalities

Source = Union[Path, "np.ndarray", str]
"""A modality source: a media file (`Path`), a feature array (`np.ndarray`) or raw text (`str`)."""


@dataclass
class Sample:
    """One labelled example.

    Attributes:
        id: unique id within the dataset (e.g. the RAVDESS file stem).
        speaker: speaker/actor id; evaluation folds are disjoint on it.
        dataset: dataset name (``"ravdess"``, ``"cremad"``, ...).
        label: the global emotion label (None when unlabelled).
        sources: per-modality source, e.g. ``{"audio": Path(...), "face": np.ndarray(35)}``;
            ``"video"`` for a video file, ``"text"`` for a transcript string.
        extra_labels: further label columns, e.g. per-modality labels ``{"label_audio": "sad"}``.
        meta: parsed metadata (filename fields, gender, intensity, dialogue id, ...).
        labels: every label of a multi-label sample (GoEmotions), ``label`` being the first of them;
            empty for single-label corpora.
    """

    id: str
    speaker: str
    dataset: str
    label: str | None
    sources: dict[str, Source] = field(default_factory=dict)
    extra_labels: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    labels: tuple[str, ...] = ()

    def label_for(self, column: str = "label") -> str | None:
        """The label in ``column``: ``"label"`` is the global one, anything else an extra column."""
        if column == "label":
            return self.label
        return self.extra_labels.get(column)


def __getattr__(name: str) -> Any:
    # ``MODALITIES``: the registered modality names (`emofuse.data.modalities`), read when asked for,
    # so a modality registered later is included
    if name == "MODALITIES":
        return tuple(list_modalities())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
