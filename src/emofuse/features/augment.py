"""Speed perturbation of audio features: training copies and test-time augmentation.

Speed perturbation (Ko et al., "Audio augmentation for speech recognition", Interspeech 2015)
plays a clip ``factor`` times faster, changing tempo and pitch together: the waveform is treated
as sampled at ``factor * sr`` and resampled to ``sr`` (0.9 makes it 11 % longer and lower). It is
what Kaldi's and SpeechBrain's ``speed_perturb`` do.

`SpeedPerturbed` wraps any audio extractor so that its output is cached like any other feature
(the factor is part of the cache key) and the whole pipeline - batching, resume, errors naming the
file - stays the same. It is what `emofuse.inputs.views.SpeedView` (the first kind of augmented
view) wraps audio extractors with. Recipes ask for it with ``data: {speed_perturb: [0.9, 1.1]}``
(training copies) and ``test_time_augment: true`` (average the class probabilities over the
original and the same factors at test time); see docs/usage.md, "Input plan".
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import soxr

from emofuse.errors import ConfigError
from emofuse.features.base import FeatureExtractor

#: Accepted speed factors (beyond this range speech stops sounding natural).
MIN_FACTOR, MAX_FACTOR = 0.5, 2.0


def speed_perturb(wave: np.ndarray, factor: float, sr: int) -> np.ndarray:
    """``wave`` played ``factor`` times faster (tempo and pitch), at the same rate ``sr``."""
    check_factor(factor)
    if factor == 1.0:
        return np.asarray(wave, dtype=np.float32)
    out = soxr.resample(np.asarray(wave, dtype=np.float32), sr * float(factor), sr, quality="HQ")
    return np.ascontiguousarray(out, dtype=np.float32)


def check_factor(factor: float) -> float:
    """``factor`` as a float, or `ConfigError` when it is not a number in [0.5, 2]."""
    try:
        value = float(factor)
    except (TypeError, ValueError):
        raise ConfigError(f"speed factor must be a number, got {factor!r}") from None
    if not MIN_FACTOR <= value <= MAX_FACTOR:
        raise ConfigError(f"speed factor must be in [{MIN_FACTOR}, {MAX_FACTOR}], got {factor!r}")
    return value


def check_factors(factors: Any, source: str = "speed_perturb") -> tuple[float, ...]:
    """A recipe's list of speed factors: numbers in [0.5, 2], distinct, none equal to 1."""
    if not isinstance(factors, (list, tuple)):
        raise ConfigError(f"{source} must be a list of speed factors, e.g. [0.9, 1.1], got {factors!r}")
    values = tuple(check_factor(f) for f in factors)
    if len(set(values)) != len(values) or 1.0 in values:
        raise ConfigError(f"{source} factors must be distinct and differ from 1.0 (the original), got {list(factors)}")
    return values


class SpeedPerturbed(FeatureExtractor):
    """The features of ``inner`` computed on the clip played ``factor`` times faster.

    Its name is ``<inner>-speed<factor>`` and its configuration is the inner one plus
    ``speed_perturb``, so cached entries never mix with the original features.
    """

    def __init__(self, inner: FeatureExtractor, factor: float) -> None:
        if inner.source != "audio":
            raise ConfigError(f"speed perturbation needs an audio extractor, {inner.name} reads {inner.source}")
        self.inner = inner
        self.factor = check_factor(factor)
        self.name = f"{inner.name}-speed{self.factor:g}"  # type: ignore[misc]  (instance, not class, name)
        self.sample_rate = inner.sample_rate  # type: ignore[misc]
        # the inner extractor's declarations (a vector stays a vector; frames keep their rate)
        self.modality, self.produces = inner.modality, inner.produces  # type: ignore[misc]
        self.frame_rate = inner.frame_rate  # type: ignore[misc]

    @property
    def dim(self) -> int:
        return self.inner.dim

    def config(self) -> dict[str, Any]:
        return {**self.inner.config(), "speed_perturb": self.factor}

    def identity(self) -> dict[str, Any]:
        return self.inner.identity()

    def compute(self, wave: np.ndarray) -> np.ndarray:
        return self.inner.compute(speed_perturb(wave, self.factor, self.sample_rate))

    def batch(self, waves: Sequence[np.ndarray], sr: int) -> list[np.ndarray]:
        perturbed = [speed_perturb(self.prepare(w, sr), self.factor, self.sample_rate) for w in waves]
        return self.inner.batch(perturbed, self.sample_rate)

    def __repr__(self) -> str:
        return f"SpeedPerturbed({self.inner!r}, factor={self.factor:g})"
