"""Streaming decode: a long recording as consecutive 16 kHz mono blocks, never held whole.

`iter_audio` yields float32 blocks of about ``block_seconds`` each, decoded, mixed to mono and resampled
block by block with the same code and checks as `emofuse.media.audio.load_audio` (soundfile for wav/flac/ogg,
PyAV for containers; NaN/inf samples and implausible rates refused; the declared duration checked against
``max_duration`` before decoding, and the decoded length while decoding). Peak memory is a few blocks,
whatever the file's length; `emofuse.inference.timeline` reads long media through it.

Differences from `load_audio`, because nothing is kept: channels that cancel out when mixed are not
detected (the mix is used), and clipping is not reported.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from emofuse.errors import DataError
from emofuse.media.audio import (
    _Mono,
    audio_streams,
    _check_declared,
    _check_rate,
    _choose_track,
    _declared_seconds,
    _import_av,
    _limit_text,
    _open_container,
    _soundfile_info,
    _stream_channels,
    _stream_rate,
    _wav_missing_bytes,
    check_file,
)

#: the sample rate of the blocks
SAMPLE_RATE = 16000
#: the longest recording streamed by default (seconds): 4 hours
DEFAULT_STREAM_MAX_DURATION = 4 * 3600.0


class _StreamMono(_Mono):
    """`_Mono` that hands each resampled piece on instead of keeping it."""

    def __init__(self, path: Path, sr: int, channel: int | None = None) -> None:
        super().__init__(path, sr, SAMPLE_RATE, channel, None)
        self.pending: list[np.ndarray] = []

    def _emit(self, out: np.ndarray) -> None:
        if out.size:
            self.pending.append(np.asarray(out, dtype=np.float32))

    def take(self, last: bool = False) -> np.ndarray:
        """The samples produced since the last call (``last``: flush the resampler too)."""
        if last and self._stream is not None:
            self._emit(self._stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True))
            self._stream = None
        pieces, self.pending = self.pending, []
        return np.concatenate(pieces) if len(pieces) > 1 else pieces[0] if pieces else np.zeros(0, np.float32)


def iter_audio(path: str | Path, *, block_seconds: float = 30.0, max_duration: float | None = None,
               audio_track: int | None = None) -> Iterator[np.ndarray]:
    """Yield ``path``'s audio as consecutive float32 mono blocks at 16 kHz (each about ``block_seconds``
    long, the last one shorter; together exactly what `load_audio` returns, up to the resampler's
    block boundaries, which it handles identically).

    Raises:
        DataError: naming the file, for everything `load_audio` refuses (missing, not audio, NaN samples,
            longer than ``max_duration`` seconds, default `DEFAULT_STREAM_MAX_DURATION`, ...), or when it
            decodes to no samples at all.
    """
    path = Path(path)
    check_file(path)
    limit = DEFAULT_STREAM_MAX_DURATION if max_duration is None else float(max_duration)
    if not limit > 0:
        raise DataError(path, f"the maximum duration must be a positive number of seconds, got {max_duration}")
    info = _soundfile_info(path)
    if info is not None:
        if audio_track not in (None, 1):
            raise DataError(path, f"the file has 1 audio track; audio track {audio_track} does not exist")
        blocks = _soundfile_blocks(path, info, limit, block_seconds)
    else:
        blocks = _pyav_blocks(path, limit, audio_track, block_seconds)
    total = 0
    for block in blocks:
        total += block.size
        yield block
    if total == 0:
        raise DataError(path, "file contains no audio samples")


def _soundfile_blocks(path: Path, info, limit: float, block_seconds: float) -> Iterator[np.ndarray]:
    import soundfile as sf

    sr = int(info.samplerate)
    _check_rate(path, sr)
    missing = _wav_missing_bytes(path)
    if missing:
        raise DataError(path, f"truncated WAV file: header declares {missing} more data bytes than present")
    _check_declared(path, info.frames / sr, limit)
    mono = _StreamMono(path, sr)
    frames = max(1, int(block_seconds * sr))
    try:
        with sf.SoundFile(str(path)) as handle:
            while True:
                block = handle.read(frames, dtype="float32", always_2d=True)
                if block.shape[0] == 0:
                    break
                mono.add(block)
                if mono.frames > limit * sr:
                    raise DataError(path, f"the audio lasts more than the maximum of {_limit_text(limit)}")
                yield mono.take()
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise DataError(path, f"corrupt or truncated audio: {exc}") from exc
    yield mono.take(last=True)


def _pyav_blocks(path: Path, limit: float, audio_track: int | None, block_seconds: float) -> Iterator[np.ndarray]:
    """The chosen audio track, decoded frame by frame, handed on about every ``block_seconds``."""
    with _open_container(path) as container:
        streams = audio_streams(path, container, audio_track)
        for stream in streams:
            _check_rate(path, _stream_rate(stream))
            _check_declared(path, _declared_seconds(container, stream), limit)
    index = audio_track - 1 if audio_track is not None else _choose_track(path, len(streams)) if len(streams) > 1 \
        else 0
    av = _import_av()
    with _open_container(path) as container:
        stream = container.streams.audio[index]
        sr = _stream_rate(stream)
        layout = stream.layout.name if _stream_channels(stream) else None
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=sr)
        mono = _StreamMono(path, sr)
        every = max(1, int(block_seconds * sr))
        handed = 0
        try:
            for frame in itertools.chain(container.decode(stream), [None]):  # None flushes the resampler
                for converted in resampler.resample(frame):
                    mono.add(converted.to_ndarray().T)
                if mono.frames > math.floor(limit * sr):
                    raise DataError(path, f"the audio lasts more than the maximum of {_limit_text(limit)}")
                if mono.frames - handed >= every:
                    handed = mono.frames
                    yield mono.take()
        except DataError:
            raise
        except Exception as exc:  # av.error.* raised mid-stream
            reason = getattr(exc, "strerror", None) or str(exc)
            raise DataError(path, f"corrupt or truncated audio stream: decoding failed after "
                                  f"{mono.frames / sr:.2f} s ({reason})") from exc
    yield mono.take(last=True)
