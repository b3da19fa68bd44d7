"""Log-mel spectrogram: 25 ms windows, 10 ms hop, 128 mel bands, in dB."""

from __future__ import annotations

from dataclasses import dataclass

import warnings

import librosa
import numpy as np

from emofuse.features.base import FeatureExtractor, register


@register
@dataclass
class LogMel(FeatureExtractor):
    """``[T, n_mels]`` log-mel power in dB (ref 1.0, floor 1e-10 -> -100 dB, so silence stays finite).

    Frames are centred (``T = 1 + N // hop_length``), so any non-empty clip gives >= 1 frame.
    """

    name = "logmel"
    n_fft: int = 400
    hop_length: int = 160
    n_mels: int = 128
    fmin: float = 0.0
    fmax: float | None = None

    def __post_init__(self) -> None:
        if self.n_fft < 16 or self.hop_length < 1 or self.n_mels < 1:
            raise ValueError("n_fft >= 16, hop_length >= 1 and n_mels >= 1 are required")

    produces = "sequence"

    @property
    def dim(self) -> int:
        return self.n_mels

    @property
    def frame_rate(self) -> float:  # type: ignore[override]
        """Frames per second: ``sample_rate / hop_length``."""
        return self.sample_rate / self.hop_length

    def compute(self, wave: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():
            # Clips shorter than one window are zero padded by librosa, which is what we want.
            warnings.filterwarnings("ignore", message="n_fft=.*too large", category=UserWarning)
            power = self._power(wave)
        db = librosa.power_to_db(power, ref=1.0, amin=1e-10, top_db=None)
        return np.ascontiguousarray(db.T, dtype=np.float32)

    def _power(self, wave: np.ndarray) -> np.ndarray:
        return librosa.feature.melspectrogram(
            y=wave, sr=self.sample_rate, n_fft=self.n_fft, hop_length=self.hop_length,
            n_mels=self.n_mels, fmin=self.fmin, fmax=self.fmax, center=True, pad_mode="constant",
        )
