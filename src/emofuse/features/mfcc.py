"""MFCC + deltas, and the same pipeline on a fractional-Fourier "spectrum" (``frft_mfcc``).

Pipeline (both extractors): pre-emphasis ``y[n] = x[n] - 0.97 x[n-1]``; centred frames of
``n_fft`` samples (zero padded at the edges) every ``hop_length``; Hamming window; power
spectrum of the first ``n_fft // 2 + 1`` bins; mel filterbank; dB; orthonormal DCT-II to
``n_mfcc`` coefficients; first and second deltas (9-frame regression, edge frames repeated).
``mfcc`` takes the power spectrum from the FFT, ``frft_mfcc`` from the discrete fractional
Fourier transform of order ``alpha`` (see `emofuse.features.frft`). With ``alpha = 1`` the two
coincide.
"""

from __future__ import annotations

from dataclasses import dataclass

import librosa
import numpy as np

from emofuse.features.base import FeatureExtractor, register
from emofuse.features.frft import dfrft_matrix


@dataclass
class _CepstralBase(FeatureExtractor):
    n_mfcc: int = 40
    n_mels: int = 64
    n_fft: int = 400
    hop_length: int = 160
    preemphasis: float = 0.97

    def __post_init__(self) -> None:
        if not 1 <= self.n_mfcc <= self.n_mels:
            raise ValueError(f"need 1 <= n_mfcc <= n_mels, got n_mfcc={self.n_mfcc}, n_mels={self.n_mels}")
        if self.n_fft < 16 or self.hop_length < 1:
            raise ValueError("n_fft >= 16 and hop_length >= 1 are required")
        if not 0.0 <= self.preemphasis < 1.0:
            raise ValueError(f"preemphasis must be in [0, 1), got {self.preemphasis}")

    produces = "sequence"

    @property
    def dim(self) -> int:
        return 3 * self.n_mfcc

    @property
    def frame_rate(self) -> float:  # type: ignore[override]
        """Frames per second: ``sample_rate / hop_length``."""
        return self.sample_rate / self.hop_length

    def frames(self, wave: np.ndarray) -> np.ndarray:
        """Pre-emphasised, Hamming-windowed, centred frames ``[T, n_fft]``."""
        emphasised = np.append(wave[:1], wave[1:] - self.preemphasis * wave[:-1]).astype(np.float32)
        padded = np.pad(emphasised, self.n_fft // 2)
        if padded.size < self.n_fft:
            padded = np.pad(padded, (0, self.n_fft - padded.size))
        framed = librosa.util.frame(padded, frame_length=self.n_fft, hop_length=self.hop_length, axis=0)
        return framed * np.hamming(self.n_fft + 1)[:-1].astype(np.float32)  # periodic Hamming

    def power_spectrum(self, frames: np.ndarray) -> np.ndarray:
        """``[T, n_fft // 2 + 1]`` power per frame; subclasses choose the transform."""
        raise NotImplementedError

    def compute(self, wave: np.ndarray) -> np.ndarray:
        power = self.power_spectrum(self.frames(wave))
        mel_fb = librosa.filters.mel(sr=self.sample_rate, n_fft=self.n_fft, n_mels=self.n_mels)
        mel_db = librosa.power_to_db(power @ mel_fb.T, ref=1.0, amin=1e-10, top_db=None)
        import scipy.fft  # imported here: scipy.fft costs ~0.4 s, which `emofuse predict` need not pay

        ceps = scipy.fft.dct(mel_db, type=2, norm="ortho", axis=1)[:, : self.n_mfcc]
        d1 = librosa.feature.delta(ceps, width=9, order=1, axis=0, mode="nearest")
        d2 = librosa.feature.delta(ceps, width=9, order=2, axis=0, mode="nearest")
        return np.ascontiguousarray(np.concatenate([ceps, d1, d2], axis=1), dtype=np.float32)


@register
@dataclass
class Mfcc(_CepstralBase):
    """``[T, 3 * n_mfcc]``: MFCC, delta, delta-delta from the FFT power spectrum."""

    name = "mfcc"

    def power_spectrum(self, frames: np.ndarray) -> np.ndarray:
        return np.abs(np.fft.rfft(frames, n=self.n_fft, axis=1)) ** 2


@register
@dataclass
class FrftMfcc(_CepstralBase):
    """``[T, 3 * n_mfcc]``: MFCC pipeline with each windowed frame transformed by the DFRFT of order ``alpha``.

    The frame is rotated about its centre (``ifftshift`` before the transform, as the DFT
    convention puts the time origin at index 0); the first ``n_fft // 2 + 1`` output bins are
    the "positive fractional frequencies". The transform is unitary; its output is scaled by
    ``sqrt(n_fft)`` so that ``alpha = 1`` gives exactly the FFT power of ``mfcc``.
    """

    name = "frft_mfcc"
    alpha: float = 0.9

    def __post_init__(self) -> None:
        super().__post_init__()
        self.alpha = float(self.alpha)
        if not np.isfinite(self.alpha):
            raise ValueError(f"alpha must be finite, got {self.alpha}")

    def power_spectrum(self, frames: np.ndarray) -> np.ndarray:
        matrix = dfrft_matrix(self.n_fft, self.alpha)
        centred = np.fft.ifftshift(frames.astype(np.float64), axes=1)
        coeffs = centred @ matrix.T
        return (np.abs(coeffs[:, : self.n_fft // 2 + 1]) ** 2 * self.n_fft).astype(np.float32)
