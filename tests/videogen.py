"""Small video files for tests, drawn with numpy and encoded with PyAV (``from videogen import write_video``).

`write_video` picks the container from the file extension (mp4, mov, mkv, webm, avi, flv) and a codec
that container holds; it can add an audio track (a mono float waveform, or silence), display-rotation
metadata, and explicit presentation times (variable frame rate). `pattern_frames` draws frames whose
index can be read back after lossy coding (`frame_number`).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Sequence

import numpy as np

#: (video codec, pixel format, audio codec) per extension
CODECS = {
    "mp4": ("libx264", "yuv420p", "aac"),
    "mov": ("libx264", "yuv420p", "aac"),
    "mkv": ("libx264", "yuv420p", "aac"),
    "webm": ("libvpx", "yuv420p", "libopus"),
    "avi": ("mjpeg", "yuvj420p", "pcm_s16le"),
    "flv": ("flv", "yuv420p", "aac"),
}
#: the sample rates the Opus encoder (webm) takes; other rates are resampled to 48 kHz
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
#: ticks per second of the time base used when explicit times are given
PTS_RATE = 1000


def write_video(path: str | Path, frames: Sequence[np.ndarray] | np.ndarray, fps: float = 10.0, *,
                codec: str | None = None, audio: np.ndarray | str | None = None, audio_rate: int = 16000,
                rotation: int | None = None, pts: Sequence[float] | None = None,
                rotate_tag: int | None = None, options: dict[str, str] | None = None) -> Path:
    """Write ``frames`` (uint8 RGB ``[H, W, 3]``, even H and W) to ``path`` and return the path.

    Args:
        fps: frame rate (the nominal rate when ``pts`` is given).
        codec: video codec (default: one the container holds, see `CODECS`).
        audio: a mono float waveform in [-1, 1] at ``audio_rate`` Hz for an audio track, or ``"silent"``
            for an all-zero track as long as the video; None: no audio track.
        rotation: display rotation in degrees, the clockwise turn a player applies to show the frames
            upright (stored as a display matrix: mp4, mov, mkv, webm only).
        pts: presentation time of each frame in seconds (variable frame rate); default ``i / fps``.
        rotate_tag: write the legacy ``rotate`` metadata tag instead of (or besides) the display matrix.
        options: muxer options, e.g. ``{"movflags": "faststart"}`` (mp4/mov index at the start).
    """
    import av

    path = Path(path)
    frames = [np.asarray(f, dtype=np.uint8) for f in frames]
    vcodec, pix_fmt, acodec = CODECS[path.suffix.lower().lstrip(".")]
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), "w", options=options or {}) as container:
        stream = container.add_stream(codec or vcodec, rate=rate)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = pix_fmt
        if pts is not None:
            stream.codec_context.time_base = Fraction(1, PTS_RATE)
        if rotation:
            stream.set_display_rotation(-rotation)  # PyAV takes counter-clockwise degrees
        if rotate_tag is not None:
            stream.metadata["rotate"] = str(rotate_tag)
        astream = None
        if audio is not None and not isinstance(audio, str) and acodec == "libopus" and audio_rate not in OPUS_RATES:
            audio, audio_rate = _resample(np.asarray(audio, np.float32), audio_rate, 48000), 48000
        if audio is not None:
            astream = container.add_stream(acodec, rate=audio_rate, layout="mono")
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            if pts is not None:
                frame.pts = int(round(pts[i] * PTS_RATE))
                frame.time_base = Fraction(1, PTS_RATE)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if astream is not None:
            seconds = (pts[-1] + 1 / fps) if pts is not None else len(frames) / fps
            wave = np.zeros(int(round(seconds * audio_rate)), np.float32) if isinstance(audio, str) else audio
            _write_audio(container, astream, np.asarray(wave, dtype=np.float32))
    return path


def _resample(wave: np.ndarray, rate: int, new_rate: int) -> np.ndarray:
    """Linear interpolation (good enough for test tones)."""
    n = int(round(len(wave) * new_rate / rate))
    return np.interp(np.arange(n) * rate / new_rate, np.arange(len(wave)), wave).astype(np.float32)


def _write_audio(container, stream, wave: np.ndarray) -> None:
    """Encode a mono float waveform into ``stream`` in blocks the encoder accepts."""
    import av

    fmt = stream.codec_context.format.name
    block = stream.codec_context.frame_size or 1024
    for start in range(0, len(wave), block):
        chunk = wave[start:start + block]
        if "s16" in fmt:
            data = (np.clip(chunk, -1, 1) * 32767).astype(np.int16)[None, :]
        else:
            data = chunk[None, :].astype(np.float32)
        frame = av.AudioFrame.from_ndarray(data, format=fmt, layout="mono")
        frame.sample_rate = stream.codec_context.sample_rate
        frame.pts = start
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def write_audio_only(path: str | Path, wave: np.ndarray, rate: int = 16000, *, cover: bool = False) -> Path:
    """An audio-only file (mp4/m4a: aac; mkv: aac; wav-like by extension as in `CODECS`) holding ``wave``;
    ``cover`` adds a cover picture (a video stream marked as an attached picture, mp4 only)."""
    import av

    path = Path(path)
    acodec = CODECS[path.suffix.lower().lstrip(".")][2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(acodec, rate=rate, layout="mono")
        if cover:
            picture = container.add_stream("mjpeg")
            picture.width = picture.height = 16
            picture.pix_fmt = "yuvj420p"
            picture.disposition = av.stream.Disposition.attached_pic
            for packet in picture.encode(av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")):
                container.mux(packet)
            for packet in picture.encode():
                container.mux(packet)
        _write_audio(container, stream, np.asarray(wave, dtype=np.float32))
    return path


def tone(seconds: float, rate: int = 16000, freq: float = 300.0, level: float = 0.3) -> np.ndarray:
    """A mono sine tone, float32."""
    t = np.arange(int(round(seconds * rate))) / rate
    return (level * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def pattern_frames(n: int, height: int = 64, width: int = 96) -> np.ndarray:
    """``n`` frames ``[n, H, W, 3]``: frame ``i`` has brightness bands encoding ``i`` (see `frame_number`)
    and a white top-left quarter, red top-right, green bottom-left, blue bottom-right marks orientation."""
    frames = np.zeros((n, height, width, 3), np.uint8)
    h, w = height // 2, width // 2
    for i in range(n):
        frames[i, :h, :w] = 255
        frames[i, :h, w:] = (255, 0, 0)
        frames[i, h:, :w] = (0, 255, 0)
        frames[i, h:, w:] = (0, 0, 255)
        # the frame number in a centre strip: 8 bits, one block each, black/grey
        strip = frames[i, h - 4:h + 4]
        block = width // 8
        for bit in range(8):
            strip[:, bit * block:(bit + 1) * block] = 200 if (i >> bit) & 1 else 20
    return frames


def frame_number(image: np.ndarray) -> int:
    """The frame number `pattern_frames` drew into ``image`` (upright, same size)."""
    height, width = image.shape[:2]
    row = image[height // 2 - 2:height // 2 + 2].astype(np.float32).mean(axis=(0, 2))
    block = width // 8
    return sum(1 << bit for bit in range(8) if row[bit * block + 2:(bit + 1) * block - 2].mean() > 110)


def quadrant_colours(image: np.ndarray) -> list[tuple[int, int, int]]:
    """The mean colour (rounded to 0/255 per channel) of the four corners: top-left, top-right,
    bottom-left, bottom-right, sampled away from the centre strip."""
    height, width = image.shape[:2]
    h, w = height // 4, width // 4
    corners = [image[:h, :w], image[:h, -w:], image[-h:, :w], image[-h:, -w:]]
    return [tuple(int(c > 127) * 255 for c in corner.reshape(-1, 3).mean(axis=0)) for corner in corners]
