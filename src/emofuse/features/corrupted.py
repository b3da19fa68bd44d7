"""Extractor wrappers for robustness: features of corrupted clips, and of level-normalised clips.

- `Corrupted(inner, corruption_or_mix, pool)`: ``inner``'s features of each clip corrupted by one
  `emofuse.media.corrupt.Corruption` (a test condition) or by a `TrainingMix` (each clip its own
  draw from the training distribution). It reads the ``audio_sample`` source kind (the wave with
  its sample id and speaker): the noise, room or babble of a clip come from (seed, sample id) only,
  and babble mixes clips of the ``pool`` (speaker, audio path) from OTHER speakers. Its name and
  configuration name the corruption (and a fingerprint of the pool, for babble), so cached entries
  never mix. It is what `emofuse.inputs.views.CorruptionView` / `CorruptMixView` wrap with.
- `LevelNormalized(inner)`: ``inner``'s features of the clip normalised to a fixed active-speech
  level (`level_normalize`), so a clip recorded 20 dB louder or quieter gives the same features.
  Recipes ask for it with ``data: {utterance_norm: true}``; it is saved in the checkpoint's input
  plan and applied at prediction time too.
"""

from __future__ import annotations

import hashlib
from typing import Any, Sequence

import numpy as np

from emofuse.errors import ConfigError
from emofuse.features.base import FeatureExtractor
from emofuse.media.corrupt import (SR, BabbleSource, Corruption, Pool, TrainingMix, active_power,
                                   corrupt)

#: Bump when a corruption's algorithm changes, so cached features are recomputed.
CORRUPT_VERSION = 1
#: `level_normalize` targets: active-speech RMS (dBFS) and the peak limit (dBFS).
TARGET_DBFS, PEAK_DBFS = -26.0, -1.0


class _Wrapper(FeatureExtractor):
    """An extractor computing ``inner``'s features of a transformed clip (declarations copied)."""

    def __init__(self, inner: FeatureExtractor, what: str) -> None:
        if getattr(inner, "source", None) != "audio":
            raise ConfigError(f"{what} needs an audio extractor, {inner.name} reads {inner.source}")
        self.inner = inner
        self.sample_rate = inner.sample_rate  # type: ignore[misc]
        self.modality, self.produces = inner.modality, inner.produces  # type: ignore[misc]
        self.frame_rate = inner.frame_rate  # type: ignore[misc]
        self.missing_rows = inner.missing_rows  # type: ignore[misc]

    @property
    def dim(self) -> int | None:
        return self.inner.dim

    def identity(self) -> dict[str, Any]:
        return self.inner.identity()


def audio_pool(samples: Sequence[Any]) -> tuple[tuple[str, str], ...]:
    """(speaker, audio path) of the samples that have audio: the clips babble may mix."""
    return tuple((str(s.speaker), str(s.sources["audio"])) for s in samples
                 if s.sources.get("audio") is not None)


def pool_fingerprint(pool: Pool) -> str:
    """Content hash of a pool: its speakers and the SHA-256 of each clip (so a moved folder still hits)."""
    from emofuse.features.sources import clip_key

    entries = sorted(f"{speaker}\0{clip_key(path)}" for speaker, path in pool)
    return hashlib.sha256("\n".join(entries).encode()).hexdigest()[:16]


class Corrupted(_Wrapper):
    """``inner``'s features of each clip corrupted (see the module docstring)."""

    source = "audio_sample"  # type: ignore[assignment]

    def __init__(self, inner: FeatureExtractor, corruption: Corruption | TrainingMix, pool: Pool = ()) -> None:
        super().__init__(inner, "a corruption")
        if not isinstance(corruption, (Corruption, TrainingMix)):
            raise ConfigError(f"Corrupted needs a Corruption or a TrainingMix, got {corruption!r}")
        self.corruption = corruption
        self.pool = tuple((str(s), str(p)) for s, p in pool)
        if self.uses_pool and isinstance(corruption, Corruption) and not self.pool:
            raise ConfigError(f"corruption {corruption.name} mixes other speakers' clips: give the pool of "
                              "(speaker, audio path) of the data set's clips")
        self.sample_rate = SR  # type: ignore[misc]  (corruptions work at 16 kHz; inner resamples)
        self.name = f"{inner.name}-{corruption.name}"  # type: ignore[misc]
        self._babble = BabbleSource(self.pool) if self.pool else None
        self._fingerprint: str | None = None

    @property
    def uses_pool(self) -> bool:
        return isinstance(self.corruption, TrainingMix) or self.corruption.needs_pool

    def config(self) -> dict[str, Any]:
        what: dict[str, Any] = ({"mix_seed": self.corruption.seed} if isinstance(self.corruption, TrainingMix)
                                else {"kind": self.corruption.kind, "level": self.corruption.level,
                                      "seed": self.corruption.seed})
        what["version"] = CORRUPT_VERSION
        if self.uses_pool:
            if self._fingerprint is None:
                self._fingerprint = pool_fingerprint(self.pool)
            what["pool"] = self._fingerprint
        return {**self.inner.config(), "corruption": what}

    def corruption_of(self, sample_id: str) -> Corruption:
        """The corruption clip ``sample_id`` gets."""
        c = self.corruption
        return c.draw(sample_id) if isinstance(c, TrainingMix) else c

    def process(self, inputs: list[Any]) -> list[np.ndarray | None]:
        """Features of `emofuse.features.sources.ClipAudio` inputs (wave, sample id, speaker)."""
        waves = []
        for clip in inputs:
            c = self.corruption_of(clip.sample_id)
            if c.needs_pool and self._babble is None:
                raise ConfigError(f"{clip.path}: corruption {c.name} mixes other speakers' clips but no pool was given")
            waves.append(corrupt(clip.wave, c, clip.sample_id, babble=self._babble, speaker=clip.speaker))
        return self.inner.batch(waves, SR)

    def compute(self, wave: np.ndarray) -> np.ndarray:
        raise ConfigError(f"{self.name} corrupts a clip per sample id: compute it through the extraction "
                          "driver (emofuse.features.driver.extract) with samples")

    def __repr__(self) -> str:
        return f"Corrupted({self.inner!r}, {self.corruption!r}, pool of {len(self.pool)})"


def level_normalize(wave: np.ndarray, target_dbfs: float = TARGET_DBFS, peak_dbfs: float = PEAK_DBFS) -> np.ndarray:
    """``wave`` scaled so its active-speech RMS (`emofuse.media.corrupt.active_power`) is
    ``target_dbfs``, then peak-limited: samples beyond ``peak_dbfs`` are compressed smoothly (tanh)
    towards 0 dBFS. A silent clip is returned unchanged."""
    wave = np.asarray(wave, dtype=np.float32)
    power = active_power(wave)
    if power <= 0:
        return wave
    y = wave.astype(np.float64) * np.sqrt(10 ** (target_dbfs / 10) / power)
    knee = 10 ** (peak_dbfs / 20)
    over = np.abs(y) > knee
    if over.any():
        room = 1.0 - knee
        y[over] = np.sign(y[over]) * (knee + room * np.tanh((np.abs(y[over]) - knee) / room))
    return y.astype(np.float32)


class LevelNormalized(_Wrapper):
    """``inner``'s features of the clip normalised by `level_normalize` (see the module docstring)."""

    source = "audio"  # type: ignore[assignment]

    def __init__(self, inner: FeatureExtractor) -> None:
        super().__init__(inner, "utterance normalisation")
        self.name = f"{inner.name}-lnorm"  # type: ignore[misc]

    def config(self) -> dict[str, Any]:
        return {**self.inner.config(), "utterance_norm": {"target_dbfs": TARGET_DBFS, "peak_dbfs": PEAK_DBFS}}

    def compute(self, wave: np.ndarray) -> np.ndarray:
        return self.inner.compute(level_normalize(wave))

    def batch(self, waves: Sequence[np.ndarray], sr: int) -> list[np.ndarray]:
        return self.inner.batch([level_normalize(self.prepare(w, sr)) for w in waves], self.sample_rate)

    def __repr__(self) -> str:
        return f"LevelNormalized({self.inner!r})"
