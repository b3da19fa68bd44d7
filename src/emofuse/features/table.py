"""Extractors of per-clip rows a dataset gives (source kind ``"table"``).

``au``: the facial action-unit vector a dataset loader put in ``sample.sources["face"]`` (RAVDESS:
the clip means of OpenFace's 35 AU intensities and presences; a manifest: its ``face`` column's
``.npy``/``.npz`` file), as a ``[1, D]`` float32 vector. Not cached: the row is already in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from emofuse.errors import DataError
from emofuse.features.base import FeatureExtractor, register


@dataclass
class TableRow(FeatureExtractor):
    """A numeric row of ``sample.sources[column]`` as ``[1, D]`` float32 (D: the row's length)."""

    source = "table"
    produces = "vector"
    #: The `Sample.sources` key holding the row.
    column: ClassVar[str] = ""

    @property
    def dim(self) -> None:
        return None  # the dataset's table decides

    def process(self, inputs: list[Any]) -> list[np.ndarray | None]:
        rows = []
        for value in inputs:
            try:
                rows.append(np.asarray(value, dtype=np.float32).reshape(1, -1))
            except (TypeError, ValueError) as exc:
                raise DataError(None, f"{self.name}: sources[{self.column!r}] is not a numeric row ({exc})") from None
        return rows


@register
@dataclass
class ActionUnits(TableRow):
    """``[1, D]`` per-clip facial action units from ``sample.sources["face"]`` (RAVDESS: D = 35)."""

    name = "au"
    modality = "face"
    column = "face"
