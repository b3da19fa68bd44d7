"""eGeMAPS v02 (Eyben et al., 2016) via openSMILE: 88 functionals or 25 low-level descriptors.

Licence note: the openSMILE binary shipped in the ``opensmile`` wheel is under audEERING's
research licence (non-commercial use only).

Undefined values: openSMILE fills a segment with NaN when it is too short to hold one analysis
frame (under roughly 60 ms). Clips shorter than ``min_seconds`` are therefore zero padded at the
end before analysis, and any NaN openSMILE still returns (a legitimately undefined value) is
replaced by 0. Infinite values are never produced by the eGeMAPS configuration; if one appears
it is reported as an error rather than hidden.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from emofuse.errors import DataError
from emofuse.features.base import FeatureExtractor, register


@dataclass
class _EgemapsBase(FeatureExtractor):
    min_seconds: float = 0.1
    _smile: Any = field(default=None, init=False, repr=False, compare=False)

    #: openSMILE feature level (``Functionals`` or ``LowLevelDescriptors``); fixed by the name.
    level: ClassVar[str] = ""

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_seconds <= 10.0:
            raise ValueError(f"min_seconds must be in [0, 10], got {self.min_seconds}")

    def _smile_instance(self):
        if self._smile is None:
            import opensmile  # loads libSMILEapi; deferred so importing emofuse stays cheap

            level = getattr(opensmile.FeatureLevel, self.level)
            self._smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02, feature_level=level)
        return self._smile

    @property
    def feature_names(self) -> list[str]:
        """openSMILE's names for the D columns."""
        return list(self._smile_instance().feature_names)

    def compute(self, wave: np.ndarray) -> np.ndarray:
        min_len = int(round(self.min_seconds * self.sample_rate))
        if wave.size < min_len:
            wave = np.pad(wave, (0, min_len - wave.size))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Segment too short", category=UserWarning)
            values = self._smile_instance().process_signal(wave, self.sample_rate).to_numpy(dtype=np.float32)
        if np.isinf(values).any():
            raise DataError(None, f"{self.name}: openSMILE returned infinite values")
        values = np.nan_to_num(values, nan=0.0)
        if values.shape[0] == 0:  # no complete LLD frame: one all-zero (undefined) frame
            values = np.zeros((1, self.dim), dtype=np.float32)
        return np.ascontiguousarray(values, dtype=np.float32)


@register
@dataclass
class Egemaps(_EgemapsBase):
    """``[1, 88]`` eGeMAPSv02 functionals of the whole clip."""

    name = "egemaps"
    level = "Functionals"
    produces = "vector"

    @property
    def dim(self) -> int:
        return 88


@register
@dataclass
class EgemapsLld(_EgemapsBase):
    """``[T, 25]`` eGeMAPSv02 low-level descriptors (10 ms hop)."""

    name = "egemaps_lld"
    level = "LowLevelDescriptors"
    produces = "sequence"
    frame_rate = 100.0  # eGeMAPSv02 low-level descriptors: 10 ms hop

    @property
    def dim(self) -> int:
        return 25
