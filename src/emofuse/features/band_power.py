"""Channel-group signals (source kinds ``eeg`` and ``peripheral``) and their extractors.

A sample carries a group of channels in ``sample.sources["eeg"]`` (or ``["peripheral"]``) as either

* a `.npz` signal file (`emofuse.features.signal.read_signal_file`: ``data`` [T, C], ``rate`` Hz), e.g.
  one trial given to ``emofuse predict --source eeg=trial.npz``, or
* an `emofuse.data.deap.MatTrial`: one trial's channel range of a DEAP ``sXX.mat`` file (read with
  scipy, never unpickled), as the DEAP loader gives it.

Each kind keys its cache entries by the file's content (plus trial and channels for a ``.mat`` trial).

Extractors (per channel, band-major: every channel's first band, then every channel's second, ...):

* ``eeg_band_power`` / ``peripheral_band_power``: ``[1, B C]`` log10 band power over the whole
  trial, from Welch's periodogram (Hann windows of ``window_seconds``, half overlap), integrated over
  theta 4-8, alpha 8-13, beta 13-30 and gamma 30-45 Hz (the peripheral one also 0.05-4 Hz first:
  skin conductance, respiration and temperature change slowly);
* ``eeg_band_frames`` / ``peripheral_band_frames``: ``[T', B C]`` the same per consecutive window of
  ``frame_seconds`` (a sequence for sequence models such as OF-CMAER-CAT);
* ``eeg_raw`` / ``peripheral_raw``: ``[T', C]`` the signal resampled to ``rate`` Hz (polyphase
  anti-aliasing filter), the input of the 1-D CNN encoder (`emofuse.models.signal_cnn`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from emofuse.errors import DataError
from emofuse.features.base import FeatureExtractor, register
from emofuse.features.sources import SourceKind, clip_key, register_source, text_key

#: EEG frequency bands (Hz): theta, alpha, beta, gamma
EEG_BANDS: tuple[tuple[str, float, float], ...] = (("theta", 4.0, 8.0), ("alpha", 8.0, 13.0),
                                                   ("beta", 13.0, 30.0), ("gamma", 30.0, 45.0))
#: peripheral channels: a slow band first, then the EEG bands
PERIPHERAL_BANDS = (("slow", 0.05, 4.0), *EEG_BANDS)


class ChannelGroupSource(SourceKind):
    """``sample.sources[<name>]``: a ``.npz`` signal file or a `MatTrial` (see the module docstring)."""

    batch_size = 8
    unit = "trial"

    def __init__(self, name: str, description: str) -> None:
        self.name = name  # type: ignore[misc]
        self.description = description  # type: ignore[misc]

    def read(self, sample: Any, extractor: Any) -> Any | None:
        from emofuse.data.deap import MatTrial

        value = sample.sources.get(self.name)
        if isinstance(value, MatTrial):
            return value
        return Path(value) if isinstance(value, (str, Path)) else None

    def key(self, raw: Any) -> str:
        if isinstance(raw, Path):
            return clip_key(raw)
        return text_key(f"{clip_key(raw.path)}\0trial {raw.trial}\0channels {raw.start}:{raw.stop}\0from {raw.first}")

    def load(self, raw: Any, extractor: Any) -> tuple[np.ndarray, float]:
        if isinstance(raw, Path):
            from emofuse.features.signal import read_signal_file

            return read_signal_file(raw)
        from emofuse.data.deap import read_mat_trial

        return read_mat_trial(raw)

    def describe(self, raw: Any) -> str:
        return str(Path(raw).resolve()) if isinstance(raw, Path) else raw.describe()

    def where(self, raw: Any, sample: Any) -> Path:
        return raw if isinstance(raw, Path) else raw.path

    def order(self, raw: Any) -> Any:
        # the trials of one .mat file one after another: the file is read once (`read_mat_trial`)
        return (str(raw), 0) if isinstance(raw, Path) else (str(raw.path), raw.trial)


register_source(ChannelGroupSource("eeg", "EEG channels: a .npz signal file, or a trial of a DEAP .mat file"))
register_source(ChannelGroupSource("peripheral", "peripheral physiological channels: a .npz signal file, or a "
                                                 "trial of a DEAP .mat file"))


def band_powers(x: np.ndarray, rate: float, bands: tuple[tuple[str, float, float], ...],
                window_seconds: float) -> np.ndarray:
    """``[B C]`` log10 band power of ``x [T, C]`` (Welch, Hann windows of ``window_seconds``, half
    overlap), band-major."""
    from scipy.signal import welch

    nperseg = max(8, min(x.shape[0], int(round(window_seconds * rate))))
    freqs, psd = welch(x, fs=rate, nperseg=nperseg, axis=0)  # psd [F, C]
    out = []
    for name, low, high in bands:
        if high > rate / 2:
            raise DataError(None, f"the {name} band ({low:g}-{high:g} Hz) needs a sampling rate above "
                                  f"{2 * high:g} Hz, the signal has {rate:g} Hz")
        inside = (freqs >= low) & (freqs < high)
        if not inside.any():  # a window too short to resolve the band: its nearest frequency bin
            inside = np.abs(freqs - (low + high) / 2) == np.abs(freqs - (low + high) / 2).min()
        power = psd[inside].sum(0) * (freqs[1] - freqs[0] if freqs.size > 1 else 1.0)
        out.append(np.log10(power + 1e-12))
    return np.concatenate(out)


@dataclass
class _BandPower(FeatureExtractor):
    """Whole-trial band power (subclasses set ``name``, ``source``, ``modality`` and ``bands``)."""

    produces = "vector"
    bands: ClassVar[tuple[tuple[str, float, float], ...]] = EEG_BANDS
    window_seconds: float = 2.0

    def __post_init__(self) -> None:
        self.window_seconds = float(self.window_seconds)
        if not 0 < self.window_seconds <= 60:
            raise ValueError(f"window_seconds must be in (0, 60], got {self.window_seconds}")

    @property
    def dim(self) -> None:
        return None  # bands x the file's channels

    def process(self, inputs: list[Any]) -> list[np.ndarray | None]:
        return [self.compute_signal(data, rate) for data, rate in inputs]

    def compute_signal(self, data: np.ndarray, rate: float) -> np.ndarray:
        return band_powers(data.astype(np.float64), rate, self.bands, self.window_seconds)[None, :].astype(np.float32)


@dataclass
class _BandFrames(_BandPower):
    """Band power per consecutive window of ``frame_seconds`` -> ``[T', B C]``."""

    produces = "sequence"
    frame_seconds: float = 4.0

    def __post_init__(self) -> None:
        super().__post_init__()
        self.frame_seconds = float(self.frame_seconds)
        if not 0 < self.frame_seconds <= 600:
            raise ValueError(f"frame_seconds must be in (0, 600], got {self.frame_seconds}")

    @property
    def frame_rate(self) -> float:  # type: ignore[override]
        return 1.0 / self.frame_seconds

    def compute_signal(self, data: np.ndarray, rate: float) -> np.ndarray:
        step = max(1, int(round(self.frame_seconds * rate)))
        x = data.astype(np.float64)
        starts = range(0, max(1, x.shape[0] - step + 1), step) if x.shape[0] >= step else [0]
        frames = [band_powers(x[a:a + step], rate, self.bands, min(self.window_seconds, self.frame_seconds))
                  for a in starts]
        return np.stack(frames).astype(np.float32)


@dataclass
class _Resampled(FeatureExtractor):
    """The signal resampled to ``rate`` Hz -> ``[T', C]`` (polyphase filter, `scipy.signal.resample_poly`)."""

    produces = "sequence"
    rate: float = 32.0

    def __post_init__(self) -> None:
        self.rate = float(self.rate)
        if not 0 < self.rate <= 1000:
            raise ValueError(f"rate must be in (0, 1000] samples per second, got {self.rate}")

    @property
    def dim(self) -> None:
        return None

    @property
    def frame_rate(self) -> float:  # type: ignore[override]
        return self.rate

    def process(self, inputs: list[Any]) -> list[np.ndarray | None]:
        from scipy.signal import resample_poly

        out = []
        for data, rate in inputs:
            ratio = Fraction(self.rate / rate).limit_denominator(1000)
            x = data.astype(np.float64)
            if ratio != 1:
                x = resample_poly(x, ratio.numerator, ratio.denominator, axis=0)
            out.append(np.ascontiguousarray(x[:max(1, math.ceil(data.shape[0] * self.rate / rate))], dtype=np.float32))
        return out


@register
@dataclass
class EEGBandPower(_BandPower):
    """``[1, 4 C]`` log band power (theta, alpha, beta, gamma) of each EEG channel over the trial."""

    name = "eeg_band_power"
    source = "eeg"
    modality = "eeg"


@register
@dataclass
class PeripheralBandPower(_BandPower):
    """``[1, 5 C]`` log band power (0.05-4 Hz, theta, alpha, beta, gamma) of each peripheral channel."""

    name = "peripheral_band_power"
    source = "peripheral"
    modality = "peripheral"
    bands = PERIPHERAL_BANDS


@register
@dataclass
class EEGBandFrames(_BandFrames):
    """``[T', 4 C]`` EEG band power per ``frame_seconds`` window."""

    name = "eeg_band_frames"
    source = "eeg"
    modality = "eeg"


@register
@dataclass
class PeripheralBandFrames(_BandFrames):
    """``[T', 5 C]`` peripheral band power per ``frame_seconds`` window."""

    name = "peripheral_band_frames"
    source = "peripheral"
    modality = "peripheral"
    bands = PERIPHERAL_BANDS


@register
@dataclass
class EEGRaw(_Resampled):
    """``[T', C]`` the EEG resampled to ``rate`` Hz."""

    name = "eeg_raw"
    source = "eeg"
    modality = "eeg"


@register
@dataclass
class PeripheralRaw(_Resampled):
    """``[T', C]`` the peripheral channels resampled to ``rate`` Hz."""

    name = "peripheral_raw"
    source = "peripheral"
    modality = "peripheral"
