"""Extractors of a sample's own fields (source kind ``"meta"``): speaker metadata one-hots.

* ``speaker_meta``: ``[is_male, is_female]`` from ``sample.meta["gender"]`` (absent when unknown).
* ``speaker_identity``: one-hot of the MELD speaker (six Friends leads + other; absent elsewhere).

Not cached: they are read from the sample in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from emofuse.features.base import FeatureExtractor, register

#: MELD speakers with their own ``speaker_identity`` column (the six Friends leads, 83% of the
#: utterances); every other speaker shares the last column, "other".
MELD_MAIN_SPEAKERS = ("Chandler", "Joey", "Monica", "Phoebe", "Rachel", "Ross")


def speaker_meta_vector(sample: Any) -> np.ndarray | None:
    """Speaker metadata one-hot ``[is_male, is_female]`` from ``sample.meta["gender"]`` (None if unknown)."""
    gender = str(sample.meta.get("gender", "")).upper()[:1]
    if gender not in ("M", "F"):
        return None
    return np.array([[gender == "M", gender == "F"]], dtype=np.float32)


def speaker_identity_vector(sample: Any) -> np.ndarray | None:
    """Speaker identity one-hot ``[Chandler, Joey, Monica, Phoebe, Rachel, Ross, other]`` (MELD only).

    MELD has no gender or age annotation. Who speaks is a legitimate input there because MELD's
    official split is not speaker-disjoint (the leads speak in train, dev and test), so scores on it
    are not speaker-independent with or without this vector; it must not be used for
    speaker-independent claims. Other datasets give None (absent meta).
    """
    if sample.dataset != "meld":
        return None
    vector = np.zeros((1, len(MELD_MAIN_SPEAKERS) + 1), dtype=np.float32)
    name = sample.speaker.strip()
    vector[0, MELD_MAIN_SPEAKERS.index(name) if name in MELD_MAIN_SPEAKERS else -1] = 1.0
    return vector


@register
@dataclass
class SpeakerMeta(FeatureExtractor):
    """``[1, 2]`` speaker gender one-hot (`speaker_meta_vector`)."""

    name = "speaker_meta"
    source = "meta"
    modality = "meta"
    produces = "vector"

    @property
    def dim(self) -> int:
        return 2

    def process(self, inputs: list[Any]) -> list[np.ndarray | None]:
        return [speaker_meta_vector(s) for s in inputs]


@register
@dataclass
class SpeakerIdentity(FeatureExtractor):
    """``[1, 7]`` MELD speaker one-hot (`speaker_identity_vector`)."""

    name = "speaker_identity"
    source = "meta"
    modality = "meta"
    produces = "vector"

    @property
    def dim(self) -> int:
        return len(MELD_MAIN_SPEAKERS) + 1

    def process(self, inputs: list[Any]) -> list[np.ndarray | None]:
        return [speaker_identity_vector(s) for s in inputs]
