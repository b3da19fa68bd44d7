"""Audio decoding: the one place where files become float32 mono waveforms at a target rate.

`load_audio` reads with soundfile (wav, flac, ogg, ...) and falls back to PyAV for
containers soundfile cannot open (mp4, flv, webm, m4a, mkv, ...), so the audio track of a
video works too. Every problem a user can cause (missing, empty, special, truncated or
non-audio file, no audio track, NaN/inf samples) raises `DataError` naming the file.

Bounded work for any input:
- the header is checked before anything is decoded: sample rates outside 4-384 kHz
  (`MIN_SAMPLE_RATE`, `MAX_SAMPLE_RATE`) and declared durations over the maximum are refused;
- the maximum duration per file is `DEFAULT_MAX_DURATION` seconds (10 min), or the
  ``EMOFUSE_MAX_DURATION`` environment variable, or the ``max_duration`` argument; a file
  longer than that is refused (``max_seconds`` reads only the start of it instead);
- decoding, channel mixing and resampling (soxr, block by block) stream, so peak memory
  stays near the size of the 16 kHz mono output.

Non-fatal problems are `AudioWarning`s (``warnings.warn``): clipping, samples beyond full
scale, channels that cancel out when mixed (the strongest channel is used instead), a
container that decodes much shorter than it declares (truncated), and, for a file with
several audio tracks, which track was used (the one with the most speech, see
`emofuse.media.vad`, unless ``audio_track`` picks one).

The file and header checks and the warnings live in `emofuse.media.checks`; their public names
are importable from here too.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr

from emofuse.media.checks import (  # the header and file checks, and the warnings (public names re-exported)
    CLIP_LEVEL,
    CLIP_SHARE,
    DEFAULT_MAX_DURATION,
    MAX_DURATION_ENV,
    MAX_SAMPLE_RATE,
    MIN_SAMPLE_RATE,
    AudioWarning,
    _check_declared,
    _check_rate,
    _limit_text,
    _wav_missing_bytes,
    _warn,
    _warn_levels,
    check_file,
    max_duration_limit,
)
from emofuse.errors import DataError

__all__ = ["CANCEL_RATIO", "CLIP_LEVEL", "CLIP_SHARE", "DEFAULT_MAX_DURATION", "MAX_DURATION_ENV", "MAX_SAMPLE_RATE",
           "MIN_SAMPLE_RATE", "TRACK_PROBE_SECONDS", "TRUNCATION_SECONDS", "TRUNCATION_SHARE", "AudioWarning",
           "audio_duration", "check_file", "load_audio", "max_duration_limit"]

#: samples per block (all channels together) when streaming; keeps peak memory small
_BLOCK_SAMPLES = 1 << 20
#: the mono mix "cancels" when its energy is this far below the strongest channel's (-20 dB)
CANCEL_RATIO = 0.01
#: a container decoding this much shorter than it declares is reported as truncated
TRUNCATION_SECONDS = 0.25
TRUNCATION_SHARE = 0.05
#: seconds of each audio track that speech detection hears when choosing among several
TRACK_PROBE_SECONDS = 30.0


def load_audio(path: str | Path, target_sr: int = 16000, *, max_seconds: float | None = None,
               max_duration: float | None = None, audio_track: int | None = None) -> np.ndarray:
    """Decode ``path`` to a float32 mono waveform ``[N]`` at ``target_sr`` Hz.

    Args:
        path: audio file, or a video/container file with an audio track.
        target_sr: output sample rate.
        max_seconds: read at most this many seconds from the start (None: the whole file).
        max_duration: refuse files longer than this many seconds (None: `max_duration_limit`);
            not used when ``max_seconds`` bounds the read.
        audio_track: which audio track to use, counting from 1 (None: the only one, or the one
            with the most speech when there are several).

    Raises:
        DataError: the file is missing, empty, special, truncated/corrupt, not audio, has an
            implausible sample rate or duration, has no (such) audio track, decodes to zero
            samples, or contains NaN/inf samples.
        ConfigError: ``max_duration``/``$EMOFUSE_MAX_DURATION`` is not a positive number.
    """
    path = Path(path)
    check_file(path)
    if target_sr <= 0:
        raise DataError(path, f"target sample rate must be positive, got {target_sr}")
    if max_seconds is not None and not max_seconds > 0:
        raise DataError(path, f"max_seconds must be positive, got {max_seconds}")
    if audio_track is not None and (isinstance(audio_track, bool) or int(audio_track) != audio_track
                                    or audio_track < 1):
        raise DataError(path, f"audio tracks are numbered from 1, got {audio_track!r}")
    limit = None if max_seconds is not None else max_duration_limit(max_duration)

    info = _soundfile_info(path)
    if info is not None:
        if audio_track not in (None, 1):
            raise DataError(path, f"the file has 1 audio track; audio track {audio_track} does not exist")
        decode = _soundfile_decoder(path, info, target_sr, max_seconds, limit)
    else:
        decode = _pyav_decoder(path, target_sr, max_seconds, limit, audio_track)

    mono = decode(None)
    channel = mono.cancelled_channel()
    if channel is not None:
        ratio = mono.mix_energy / float(mono.energy.max())
        level = "silent" if ratio < 1e-10 else f"{-10 * math.log10(ratio):.0f} dB below the strongest channel"
        del mono
        mono = decode(channel)
        _warn(path, f"the channels cancel out when mixed to mono (the mix is {level}; opposite phase?): "
                    f"channel {channel + 1} alone is used")
    wave = mono.finish()
    if wave.size == 0:
        raise DataError(path, "file contains no audio samples")
    _warn_levels(path, mono)
    return wave


def audio_duration(path: str | Path) -> float:
    """Duration in seconds from the file header (no full decode where the format allows)."""
    path = Path(path)
    check_file(path)
    info = _soundfile_info(path)
    if info is not None:
        _check_rate(path, int(info.samplerate))
        return float(info.frames) / float(info.samplerate)
    with _open_container(path) as container:
        if not container.streams.audio:
            raise DataError(path, "no audio track in file")
        declared = _declared_seconds(container, container.streams.audio[0])
    if declared is not None:
        return declared
    # Header carries no duration: decode to count samples.
    return load_audio(path, target_sr=16000).size / 16000.0


class _Mono:
    """Mixes blocks ``[frames, channels]`` to mono (or takes one ``channel``) and resamples them
    block by block, noting the peak level, clipped samples and per-channel energies."""

    def __init__(self, path: Path, sr: int, target_sr: int, channel: int | None,
                 expected_frames: int | None = None) -> None:
        self.path, self.sr, self.channel = path, sr, channel
        self._stream = None if sr == target_sr else soxr.ResampleStream(sr, target_sr, 1, dtype="float32",
                                                                       quality="HQ")
        # the output is written into one buffer sized from the header, so it is never held twice
        size = 0 if not expected_frames else int(math.ceil(expected_frames * target_sr / sr)) + 64
        self._buffer = np.empty(size, dtype=np.float32)
        self._filled = 0
        self._out: list[np.ndarray] = []  # output beyond the buffer (a header that understated the length)
        self.frames = 0  # input frames taken, at ``sr``
        self.samples = 0  # input samples, all channels
        self.peak = 0.0
        self.clipped = 0
        self.energy: np.ndarray | None = None  # per channel, sum of squares
        self.mix_energy = 0.0

    def add(self, block: np.ndarray) -> None:
        if block.shape[0] == 0:
            return
        if not np.isfinite(block).all():
            raise DataError(self.path, "audio contains NaN or infinite samples")
        magnitude = np.abs(block)
        self.peak = max(self.peak, float(magnitude.max()))
        self.clipped += int(np.count_nonzero((magnitude >= CLIP_LEVEL) & (magnitude <= 1.0)))
        self.samples += block.size
        del magnitude
        if self.channel is None:
            mono = block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]
            if block.shape[1] > 1:
                energy = np.einsum("ij,ij->j", block, block, dtype=np.float64)
                self.energy = energy if self.energy is None or self.energy.shape != energy.shape else self.energy + energy
                self.mix_energy += float(np.dot(mono, mono))
        else:
            mono = block[:, self.channel]
        mono = np.ascontiguousarray(mono, dtype=np.float32)
        self.frames += mono.size
        self._emit(mono if self._stream is None else self._stream.resample_chunk(mono))

    def _emit(self, out: np.ndarray) -> None:
        if not self._out and self._filled + out.size <= self._buffer.size:
            self._buffer[self._filled : self._filled + out.size] = out
            self._filled += out.size
        else:
            self._out.append(out)

    def cancelled_channel(self) -> int | None:
        """The strongest channel when the channels cancel out in the mono mix (else None)."""
        if self.channel is not None or self.energy is None or self.frames == 0:
            return None
        strongest = int(self.energy.argmax())
        if self.energy[strongest] / self.frames < 1e-8:  # all channels near silent (< -80 dBFS)
            return None
        return strongest if self.mix_energy < CANCEL_RATIO * self.energy[strongest] else None

    def finish(self) -> np.ndarray:
        if self._stream is not None:
            self._emit(self._stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True))
            self._stream = None
        head = self._buffer[: self._filled]
        if self._filled < self._buffer.size // 2:  # the header overstated the length: do not keep the slack
            head = head.copy()
        wave = np.concatenate([head, *self._out]) if self._out else head
        self._buffer, self._out = np.zeros(0, dtype=np.float32), []
        return wave


# --- soundfile (wav, flac, ogg, aiff, ...) ---------------------------------------------------

def _soundfile_info(path: Path):
    try:
        return sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError):
        return None  # not a format libsndfile knows: try the container decoder


def _soundfile_decoder(path: Path, info, target_sr: int, max_seconds: float | None, limit: float | None):
    """Check the header, then return ``decode(channel) -> _Mono`` reading the file block by block."""
    sr = int(info.samplerate)
    _check_rate(path, sr)
    missing = _wav_missing_bytes(path)
    if missing:
        raise DataError(path, f"truncated WAV file: header declares {missing} more data bytes than present")
    _check_declared(path, info.frames / sr, limit)
    wanted = info.frames if max_seconds is None else min(info.frames, int(math.ceil(max_seconds * sr)))
    block_frames = max(1, _BLOCK_SAMPLES // max(1, int(info.channels)))

    def decode(channel: int | None) -> _Mono:
        mono = _Mono(path, sr, target_sr, channel, wanted)
        try:
            with sf.SoundFile(str(path)) as handle:
                while mono.frames < wanted:
                    block = handle.read(min(block_frames, wanted - mono.frames), dtype="float32", always_2d=True)
                    if block.shape[0] == 0:
                        break
                    mono.add(block)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise DataError(path, f"corrupt or truncated audio: {exc}") from exc
        if mono.frames < wanted:
            raise DataError(path, f"truncated audio: header declares {wanted} frames, only {mono.frames} decoded")
        return mono

    return decode


# --- PyAV (mp4, mkv, webm, mp3, m4a, ...) ----------------------------------------------------

def _import_av():
    import av  # imported lazily: PyAV loads FFmpeg, which is slow and rarely needed

    return av


def _open_container(path: Path):
    av = _import_av()
    try:
        return av.open(str(path))
    except Exception as exc:  # av.error.InvalidDataError and friends
        reason = getattr(exc, "strerror", None) or str(exc)
        raise DataError(path, f"not an audio file (not a readable audio or video format: {reason})") from exc


def _stream_rate(stream) -> int:
    """The stream's sample rate from the header (0 when unknown, e.g. an unknown codec)."""
    codec = getattr(stream, "codec_context", None)
    return int(getattr(stream, "rate", 0) or getattr(codec, "sample_rate", 0) or 0)


def _stream_channels(stream) -> int:
    return int(getattr(getattr(stream, "codec_context", None), "channels", 0) or 0)


def _declared_seconds(container, stream) -> float | None:
    """The audio stream's duration from the header (mkv/webm: the track's DURATION tag; the container's when the
    stream states none)."""
    from emofuse.media.video import track_seconds

    own = track_seconds(stream)
    if own is not None:
        return own
    if container.duration is not None:
        return float(container.duration) / 1_000_000.0  # av.time_base is microseconds
    return None


def audio_streams(path: Path, container: Any, audio_track: int | None) -> list[Any]:
    """The container's audio streams; `DataError` when it has none or no track ``audio_track`` (from 1)."""
    streams = list(container.streams.audio)
    if not streams:
        raise DataError(path, "no audio track in file")
    if audio_track is not None and audio_track > len(streams):
        raise DataError(path, f"the file has {len(streams)} audio track(s); audio track {audio_track} does not exist")
    return streams


def _pyav_decoder(path: Path, target_sr: int, max_seconds: float | None, limit: float | None,
                  audio_track: int | None):
    """Check the header (tracks, rate, duration), pick the track, and return ``decode(channel)``."""
    with _open_container(path) as container:
        streams = audio_streams(path, container, audio_track)
        if all(getattr(s, "codec_context", None) is None for s in streams):
            raise DataError(path, f"unsupported audio codec: the {container.format.name} container holds audio in a "
                                  "codec no decoder here can read")
        if all(_stream_rate(s) == 0 and not _stream_channels(s) for s in streams):
            raise DataError(path, f"not an audio file: no valid audio stream header found (the content does not "
                                  f"look like {container.format.name} or any other audio format)")
        for stream in streams:
            _check_rate(path, _stream_rate(stream))
            _check_declared(path, _declared_seconds(container, stream), limit)
    if audio_track is not None:
        index = audio_track - 1
        if len(streams) > 1:
            _warn(path, f"audio track {audio_track} of {len(streams)} used (as asked)")
    elif len(streams) > 1:
        index = _choose_track(path, len(streams))
    else:
        index = 0

    def decode(channel: int | None) -> _Mono:
        return _decode_track(path, index, target_sr, max_seconds, limit, channel)

    return decode


def _choose_track(path: Path, n_tracks: int) -> int:
    """The track (0-based) with the most speech in its first `TRACK_PROBE_SECONDS`; named in a warning."""
    from emofuse.media.vad import speech_segments

    speech: list[float | None] = []
    for index in range(n_tracks):
        try:
            wave = _decode_track(path, index, 16000, TRACK_PROBE_SECONDS, None, None, probe=True).finish()
            speech.append(speech_segments(wave, 16000).speech_seconds)
        except DataError:
            speech.append(None)  # undecodable track
    usable = [i for i, s in enumerate(speech) if s is not None]
    if not usable:
        raise DataError(path, f"none of the {n_tracks} audio tracks can be decoded")
    best = max(usable, key=lambda i: (speech[i], -i))  # most speech, first on ties
    if not speech[best]:
        reason = "no track holds speech"
    else:
        others = [f"track {i + 1} " + ("cannot be decoded" if s is None else "holds no speech" if not s
                                       else f"holds {s:.1f} s of speech against {speech[best]:.1f} s")
                  for i, s in enumerate(speech) if i != best]
        reason = "; ".join(others)
    _warn(path, f"audio track {best + 1} of {n_tracks} used ({reason}; choose one with --audio-track)")
    return best


def _decode_track(path: Path, index: int, target_sr: int, max_seconds: float | None, limit: float | None,
                  channel: int | None, *, probe: bool = False) -> _Mono:
    """Decode audio track ``index`` (0-based) frame by frame into a `_Mono`: at most ``max_seconds``;
    refused past ``limit`` seconds; a warning when it ends well before its declared duration."""
    av = _import_av()
    with _open_container(path) as container:
        stream = container.streams.audio[index]
        sr = _stream_rate(stream)
        _check_rate(path, sr)
        declared = _declared_seconds(container, stream)
        layout = stream.layout.name if _stream_channels(stream) else None
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=sr)  # planar float32 at one rate
        stop = None if max_seconds is None else int(math.ceil(max_seconds * sr))
        refuse = None if limit is None else int(math.floor(limit * sr))
        expected = None if declared is None else int(math.ceil(declared * sr))
        if stop is not None:
            expected = stop if expected is None else min(expected, stop)
        mono = _Mono(path, sr, target_sr, channel, expected)
        try:
            for frame in itertools.chain(container.decode(stream), [None]):  # None flushes the resampler
                for converted in resampler.resample(frame):
                    block = converted.to_ndarray().T  # [n, channels]
                    if stop is not None:
                        block = block[: stop - mono.frames]
                    mono.add(block)
                    if refuse is not None and mono.frames > refuse:
                        raise DataError(path, f"the audio lasts more than the maximum of {_limit_text(limit)}")
                if stop is not None and mono.frames >= stop:
                    break
        except DataError:
            raise
        except Exception as exc:  # av.error.* raised mid-stream
            of = "" if declared is None else f" of the {declared:.2f} s declared"
            reason = getattr(exc, "strerror", None) or str(exc)
            raise DataError(path, f"corrupt or truncated audio stream: decoding failed after {mono.frames / sr:.2f} s"
                                  f"{of} ({reason})") from exc
    decoded = mono.frames / sr
    complete = stop is None or mono.frames < stop
    if not probe and complete and declared is not None and declared - decoded > max(
            TRUNCATION_SECONDS, TRUNCATION_SHARE * declared):
        _warn(path, f"truncated or damaged: only {decoded:.2f} s of audio decoded, the header declares "
                    f"{declared:.2f} s")
    return mono
