"""Word-aligned feature sequences a CMU-MOSEI loader gives (source kind ``"table"``, not cached).

`emofuse.data.mosei` aligns the SDK's computational sequences to the words of each segment and puts
them in ``sample.sources``; these extractors hand them on as ``[W, D]`` float32 sequences (one row per
word):

* ``mosei_glove`` (text): GloVe word vectors, ``sources["mosei_text"]`` (D = 300);
* ``mosei_covarep`` (audio): COVAREP acoustic features averaged over each word, ``sources["mosei_audio"]`` (74);
* ``mosei_facet`` (face): FACET 4.2 facial features averaged over each word, ``sources["mosei_visual"]`` (35).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from emofuse.errors import DataError
from emofuse.features.base import FeatureExtractor, register


@dataclass
class AlignedSequence(FeatureExtractor):
    """``sample.sources[column]`` as a ``[W, D]`` float32 sequence (one row per word)."""

    source = "table"
    produces = "sequence"
    column: ClassVar[str] = ""

    @property
    def dim(self) -> None:
        return None  # the computational sequence decides

    def process(self, inputs: list[Any]) -> list[np.ndarray | None]:
        out = []
        for value in inputs:
            array = np.asarray(value, dtype=np.float32)
            if array.ndim != 2:
                raise DataError(None, f"{self.name}: sources[{self.column!r}] must be [words, D], got {array.shape}")
            out.append(array if array.shape[0] else None)
        return out


@register
@dataclass
class MoseiGlove(AlignedSequence):
    """``[W, 300]`` GloVe vectors of a MOSEI segment's words."""

    name = "mosei_glove"
    modality = "text"
    column = "mosei_text"


@register
@dataclass
class MoseiCovarep(AlignedSequence):
    """``[W, 74]`` COVAREP features averaged over each word of a MOSEI segment."""

    name = "mosei_covarep"
    modality = "audio"
    column = "mosei_audio"


@register
@dataclass
class MoseiFacet(AlignedSequence):
    """``[W, 35]`` FACET 4.2 features averaged over each word of a MOSEI segment."""

    name = "mosei_facet"
    modality = "face"
    column = "mosei_visual"
