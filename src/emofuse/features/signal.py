"""Multichannel signal files and their extractors (source kind ``"signal"``, modality ``signal``).

A signal file is an ``.npz`` holding ``data`` (float ``[T, C]``: T samples of C channels, e.g.
heart rate, skin conductance, respiration) and ``rate`` (samples per second, a positive number).
It is read with ``allow_pickle=False``; anything else is a `DataError` naming the file.
`write_signal_file` writes one. A sample points at it with ``sources["signal"]``.

* ``signal_stats``: per-channel mean, standard deviation, minimum, maximum and slope (least
  squares, units per second) over the whole file -> ``[1, 5 C]`` (all means, then all stds, ...).
* ``signal_frames``: per-channel mean and standard deviation over consecutive windows of
  ``1 / frame_rate`` seconds -> ``[ceil(T * frame_rate / rate), 2 C]`` at ``frame_rate`` frames/s.
"""

from __future__ import annotations

import io
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emofuse.errors import DataError
from emofuse.features.base import FeatureExtractor, register


def _check_signal(data: Any, rate: Any, path: Path | None) -> tuple[np.ndarray, float]:
    """``(data [T, C] float32, rate)`` checked; `DataError` naming ``path`` and the problem."""
    data = np.asarray(data)
    if not np.issubdtype(data.dtype, np.floating):
        raise DataError(path, f"signal 'data' must be a float array, got dtype {data.dtype}")
    if data.ndim != 2 or data.shape[0] < 1 or data.shape[1] < 1:
        raise DataError(path, f"signal 'data' must be a non-empty [T, C] array, got shape {data.shape}")
    if not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).sum())
        raise DataError(path, f"signal 'data' contains {bad} NaN or infinite value(s)")
    rate_arr = np.asarray(rate)
    if rate_arr.size != 1 or not (np.issubdtype(rate_arr.dtype, np.integer) or np.issubdtype(rate_arr.dtype, np.floating)):
        raise DataError(path, f"signal 'rate' must be one number (samples per second), got {rate_arr!r:.60}")
    value = float(rate_arr.reshape(()))
    if not math.isfinite(value) or value <= 0:
        raise DataError(path, f"signal 'rate' must be a positive number of samples per second, got {value}")
    return np.ascontiguousarray(data, dtype=np.float32), value


def read_signal_file(path: str | Path) -> tuple[np.ndarray, float]:
    """``(data [T, C] float32, rate Hz)`` of a signal ``.npz`` (`DataError` naming the file: missing,
    unreadable or pickled, a missing key, a wrong dtype or shape, NaN/inf, a non-positive rate)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "signal file not found")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise DataError(path, "a signal file must be an .npz holding 'data' and 'rate'")
        with loaded:
            missing = [k for k in ("data", "rate") if k not in loaded.files]
            if missing:
                raise DataError(path, f"signal file lacks {' and '.join(repr(k) for k in missing)} "
                                      f"(has {sorted(loaded.files)}); expected 'data' [T, C] and 'rate' Hz")
            data, rate = loaded["data"], loaded["rate"]
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(path, f"not a readable .npz signal file ({exc})") from exc
    return _check_signal(data, rate, path)


def write_signal_file(path: str | Path, data: Any, rate: float) -> Path:
    """Write ``data`` (float ``[T, C]``, or ``[T]`` for one channel) sampled at ``rate`` Hz as a
    signal file, atomically; checked as `read_signal_file` checks it. Returns the path."""
    from emofuse.atomic import atomic_write_bytes

    path = Path(path)
    data = np.asarray(data)
    if data.ndim == 1:
        data = data[:, None]
    data, rate = _check_signal(data, rate, path)
    buffer = io.BytesIO()
    np.savez(buffer, data=data, rate=np.float64(rate))
    atomic_write_bytes(path, buffer.getvalue())
    return path


@dataclass
class _SignalBase(FeatureExtractor):
    source = "signal"
    modality = "signal"

    @property
    def dim(self) -> None:
        return None  # 2 or 5 per channel: the files decide the channel count

    def process(self, inputs: list[Any]) -> list[np.ndarray | None]:
        return [self.compute_signal(data, rate) for data, rate in inputs]

    def compute_signal(self, data: np.ndarray, rate: float) -> np.ndarray:
        raise NotImplementedError


@register
@dataclass
class SignalStats(_SignalBase):
    """``[1, 5 C]``: per-channel mean, std, min, max and slope (units per second)."""

    name = "signal_stats"
    produces = "vector"

    def compute_signal(self, data: np.ndarray, rate: float) -> np.ndarray:
        x = data.astype(np.float64)
        t = np.arange(x.shape[0], dtype=np.float64) / rate
        t -= t.mean()
        denom = float((t * t).sum())
        slope = (t[:, None] * (x - x.mean(0))).sum(0) / denom if denom > 0 else np.zeros(x.shape[1])
        stats = [x.mean(0), x.std(0), x.min(0), x.max(0), slope]
        return np.concatenate(stats)[None, :].astype(np.float32)


@register
@dataclass
class SignalFrames(_SignalBase):
    """``[T', 2 C]``: per-channel mean and std over consecutive ``1 / frame_rate`` s windows."""

    name = "signal_frames"
    produces = "sequence"
    frame_rate: float = 4.0  # type: ignore[assignment]  (an option here: frames per second)

    def __post_init__(self) -> None:
        self.frame_rate = float(self.frame_rate)
        if not 0 < self.frame_rate <= 1000:
            raise ValueError(f"frame_rate must be in (0, 1000] frames per second, got {self.frame_rate}")

    def compute_signal(self, data: np.ndarray, rate: float) -> np.ndarray:
        if rate < self.frame_rate:
            raise DataError(None, f"{self.name}: the signal has {rate:g} samples/s, fewer than the "
                                  f"{self.frame_rate:g} frames/s asked for")
        x = data.astype(np.float64)
        n_frames = max(1, math.ceil(x.shape[0] * self.frame_rate / rate))
        bounds = [min(x.shape[0], int(math.floor(i * rate / self.frame_rate))) for i in range(n_frames + 1)]
        bounds[-1] = x.shape[0]
        frames = [x[a:max(b, a + 1)] for a, b in zip(bounds[:-1], bounds[1:])]
        out = np.stack([np.concatenate([f.mean(0), f.std(0)]) for f in frames])
        return out.astype(np.float32)
