"""Audio decoding: the one place where files become float32 mono waveforms at a target rate.

`load_audio` reads with soundfile (wav, flac, ogg, ...) and falls back to PyAV for
containers soundfile cannot open (mp4, flv, webm, m4a, ...), so the audio track of a
video works too. Channels are averaged, the result is resampled with soxr. Every
problem a user can cause (missing, empty, truncated or non-audio file, no audio
track, NaN/inf samples) raises `DataError` naming the file.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from emofuse.errors import DataError

#: Frames per soundfile block when down-mixing; keeps peak memory near the mono size.
_BLOCK_FRAMES = 1 << 20


def load_audio(path: str | Path, target_sr: int = 16000, *, max_seconds: float | None = None) -> np.ndarray:
    """Decode ``path`` to a float32 mono waveform ``[N]`` at ``target_sr`` Hz.

    Args:
        path: audio file, or a video/container file with an audio track.
        target_sr: output sample rate.
        max_seconds: read at most this many seconds from the start (None: the whole file).

    Raises:
        DataError: the file is missing, empty, truncated/corrupt, not audio, has no audio
            track, decodes to zero samples, or contains NaN/inf samples.
    """
    path = Path(path)
    _check_file(path)
    if target_sr <= 0:
        raise DataError(path, f"target sample rate must be positive, got {target_sr}")
    if max_seconds is not None and max_seconds <= 0:
        raise DataError(path, f"max_seconds must be positive, got {max_seconds}")

    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError):
        info = None  # not a format libsndfile knows: try the container decoder
    if info is not None:
        wave, sr = _read_soundfile(path, info, max_seconds)
    else:
        wave, sr = _read_pyav(path, max_seconds)

    if wave.size == 0:
        raise DataError(path, "file contains no audio samples")
    if not np.isfinite(wave).all():
        raise DataError(path, "audio contains NaN or infinite samples")
    if sr != target_sr:
        wave = soxr.resample(wave, sr, target_sr, quality="HQ").astype(np.float32, copy=False)
    return np.ascontiguousarray(wave, dtype=np.float32)


def audio_duration(path: str | Path) -> float:
    """Duration in seconds from the file header (no full decode where the format allows)."""
    path = Path(path)
    _check_file(path)
    try:
        info = sf.info(str(path))
        return float(info.frames) / float(info.samplerate)
    except (sf.LibsndfileError, RuntimeError, TypeError):
        pass
    av = _import_av()
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise DataError(path, "no audio track in file")
            stream = container.streams.audio[0]
            if stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
            if container.duration is not None:
                return float(container.duration) / 1_000_000.0  # av.time_base is microseconds
    except DataError:
        raise
    except Exception as exc:  # PyAV raises many error types (av.error.*)
        raise DataError(path, f"cannot read audio: {exc}") from exc
    # Header carries no duration: decode to count samples.
    return load_audio(path, target_sr=16000).size / 16000.0


def _check_file(path: Path) -> None:
    if not path.exists():
        raise DataError(path, "file not found")
    if not path.is_file():
        raise DataError(path, "not a regular file")
    if path.stat().st_size == 0:
        raise DataError(path, "file is empty (0 bytes)")


def _read_soundfile(path: Path, info: sf._SoundFileInfo, max_seconds: float | None) -> tuple[np.ndarray, int]:
    """Read with libsndfile block by block, averaging channels as we go."""
    sr = int(info.samplerate)
    missing = _wav_missing_bytes(path)
    if missing:
        raise DataError(path, f"truncated WAV file: header declares {missing} more data bytes than present")
    wanted = info.frames if max_seconds is None else min(info.frames, int(math.ceil(max_seconds * sr)))
    out = np.empty(max(wanted, 0), dtype=np.float32)
    filled = 0
    try:
        with sf.SoundFile(str(path)) as handle:
            while filled < wanted:
                block = handle.read(min(_BLOCK_FRAMES, wanted - filled), dtype="float32", always_2d=True)
                if block.shape[0] == 0:
                    break
                out[filled : filled + block.shape[0]] = block.mean(axis=1)
                filled += block.shape[0]
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise DataError(path, f"corrupt or truncated audio: {exc}") from exc
    if filled < wanted:
        raise DataError(path, f"truncated audio: header declares {wanted} frames, only {filled} decoded")
    return out, sr


def _wav_missing_bytes(path: Path) -> int:
    """Bytes a RIFF/WAVE ``data`` chunk declares beyond the end of the file (0 if complete or not WAV).

    libsndfile silently shortens such files, so truncation is detected from the header here.
    Streaming writers put 0 or 0xFFFFFFFF in the size field; those count as complete.
    """
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return 0
        pos = 12
        while pos + 8 <= size:
            handle.seek(pos)
            chunk_id, chunk_size = struct.unpack("<4sI", handle.read(8))
            if chunk_id == b"data":
                if chunk_size in (0, 0xFFFFFFFF):
                    return 0
                return max(0, pos + 8 + chunk_size - size)
            pos += 8 + chunk_size + (chunk_size & 1)
    return 0


def _import_av():
    import av  # imported lazily: PyAV loads FFmpeg, which is slow and rarely needed

    return av


def _read_pyav(path: Path, max_seconds: float | None) -> tuple[np.ndarray, int]:
    """Decode the first audio stream of any FFmpeg-readable container, averaging channels."""
    av = _import_av()
    chunks: list[np.ndarray] = []
    try:
        container = av.open(str(path))
    except Exception as exc:  # av.error.InvalidDataError and friends
        raise DataError(path, f"not a readable audio or video file ({exc})") from exc
    with container:
        if not container.streams.audio:
            raise DataError(path, "no audio track in file")
        stream = container.streams.audio[0]
        sr = int(stream.rate or stream.codec_context.sample_rate or 0)
        if sr <= 0:
            raise DataError(path, "audio track has no sample rate")
        limit = None if max_seconds is None else int(math.ceil(max_seconds * sr))
        resampler = av.AudioResampler(format="fltp")  # planar float32, keeps layout and rate
        total = 0
        try:
            for frame in container.decode(stream):
                for converted in resampler.resample(frame):
                    planes = converted.to_ndarray()  # [channels, n]
                    chunks.append(planes.mean(axis=0).astype(np.float32, copy=False))
                    total += planes.shape[1]
                if limit is not None and total >= limit:
                    break
        except Exception as exc:
            raise DataError(path, f"corrupt audio stream: {exc}") from exc
    wave = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
    if limit is not None:
        wave = wave[:limit]
    return wave, sr
