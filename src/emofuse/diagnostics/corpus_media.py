"""The media files of the bad-input corpus (`emofuse.diagnostics.corpus`), made by code.

`Material` holds the shipped sample clips as 16 kHz mono waveforms; the writers below make WAV/FLAC/
Ogg/AIFF (soundfile), hand-built RIFF headers, MP4/Matroska/MP3 (PyAV), truncated copies, special
files (FIFOs, symlinks, unreadable files) and non-audio bytes. Each ``Callable[[Path, Material], None]``
is a `Case.build`.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from emofuse.inference.predictor import sample_clips

SR = 16000  # the rate of the shipped sample clips and of the model's input


class Material:
    """The shipped sample clips as float32 mono waveforms at 16 kHz, read once."""

    def __init__(self) -> None:
        self.clips = sample_clips()
        self._waves: dict[int, np.ndarray] = {}

    def speech(self, i: int = 0) -> np.ndarray:
        if i not in self._waves:
            wave, sr = sf.read(str(self.clips[i]), dtype="float32", always_2d=True)
            wave = wave.mean(axis=1)
            self._waves[i] = wave if sr == SR else soxr.resample(wave, sr, SR).astype(np.float32)
        return self._waves[i]

    def at_rate(self, rate: int, i: int = 0) -> np.ndarray:
        return self.speech(i) if rate == SR else soxr.resample(self.speech(i), SR, rate).astype(np.float32)

    def loudest(self, seconds: float, i: int = 0) -> np.ndarray:
        """The ``seconds``-long stretch of clip ``i`` with the most energy (a bit of real speech)."""
        wave, n = self.speech(i), max(1, int(round(seconds * SR)))
        energy = np.convolve(wave.astype(np.float64) ** 2, np.ones(n), mode="valid")
        start = int(energy.argmax())
        return wave[start : start + n]


# ---------------------------------------------------------------- writers


def write_sf(path: Path, wave: np.ndarray, rate: int = SR, subtype: str | None = None, fmt: str | None = None) -> None:
    sf.write(str(path), wave, rate, subtype=subtype, format=fmt)


def pcm16(wave: np.ndarray) -> bytes:
    return (np.clip(wave, -1, 1) * 32767).astype("<i2").tobytes()


def write_riff(path: Path, data: bytes, rate: int, *, channels: int = 1, bits: int = 16, fmt_tag: int = 1,
               declared: int | None = None, data_chunk: bool = True) -> None:
    """A RIFF/WAVE file written by hand, so its header can say what the data is not."""
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", fmt_tag, channels, rate, (rate * block) & 0xFFFFFFFF, block, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    if data_chunk:
        body += b"data" + struct.pack("<I", len(data) if declared is None else declared) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", min(len(body), 0xFFFFFFFF)) + body)


def write_av(path: Path, tracks: list[np.ndarray], *, fmt: str, codec: str = "aac", video: bool = False,
             rate: int = SR, options: dict[str, str] | None = None) -> None:
    """A container written with PyAV: one audio stream per entry of ``tracks`` (mono), and with
    ``video`` a tiny 32x32 MPEG-4 picture stream as long as the first track (or 3 s)."""
    import av

    with av.open(str(path), "w", format=fmt, options=options or {}) as container:
        picture = None
        if video:
            picture = container.add_stream("mpeg4", rate=10)
            picture.width, picture.height, picture.pix_fmt = 32, 32, "yuv420p"
        streams = []
        for _ in tracks:
            stream = container.add_stream(codec, rate=rate)
            stream.layout = "mono"
            streams.append(stream)
        if picture is not None:
            seconds = len(tracks[0]) / rate if tracks else 3.0
            for i in range(int(seconds * 10)):
                image = np.full((32, 32, 3), (i * 7) % 255, np.uint8)
                container.mux(picture.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
            container.mux(picture.encode())
        for stream, wave in zip(streams, tracks):
            step = 1152 if codec == "mp3" else 1024
            for i in range(0, len(wave), step):
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(wave[None, i : i + step], np.float32),
                                                   format="fltp", layout="mono")
                frame.sample_rate, frame.pts = rate, i
                container.mux(stream.encode(frame))
            container.mux(stream.encode())


def cut(path: Path, fraction: float = 0.5, keep: int | None = None) -> None:
    """Keep the first ``fraction`` of the file's bytes, or the first ``keep`` bytes (a download that
    stopped part-way)."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction) if keep is None else keep])


def cut_at_packet(path: Path, fraction: float = 0.5) -> None:
    """Keep the container's packets that end in the first ``fraction`` of its bytes: a clean cut that
    a decoder does not notice (the index still declares the full length)."""
    import av

    size = path.stat().st_size
    with av.open(str(path)) as container:
        ends = [p.pos + p.size for p in container.demux() if p.pos is not None and p.size]
    cut(path, keep=max(e for e in ends if e <= size * fraction))


def tiny_png() -> bytes:
    """An 8x8 grey PNG image."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + bytes(range(0, 256, 32)) for _ in range(8))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


# ---------------------------------------------------------------- builders


def speech_wav(subtype: str = "PCM_16", rate: int = SR, fmt: str = "WAV") -> Callable[[Path, Material], None]:
    return lambda p, m: write_sf(p, m.at_rate(rate), rate, subtype, fmt)


def speech_mp4(path: Path, m: Material, faststart: bool = False) -> None:
    write_av(path, [m.speech()], fmt="mp4", video=True, options={"movflags": "faststart"} if faststart else None)


def speech_mp3(path: Path, m: Material) -> None:
    write_av(path, [m.speech()], fmt="mp3", codec="mp3")


def truncated(maker: Callable[[Path, Material], None], fraction: float = 0.5,
              keep: int | None = None) -> Callable[[Path, Material], None]:
    def build(path: Path, m: Material) -> None:
        maker(path, m)
        cut(path, fraction, keep)
    return build


def channels(gains: list[float]) -> Callable[[Path, Material], None]:
    return lambda p, m: write_sf(p, np.stack([m.speech() * g for g in gains], axis=1), SR, "PCM_16")


def samples(make: Callable[[Material], np.ndarray], subtype: str = "PCM_16") -> Callable[[Path, Material], None]:
    return lambda p, m: write_sf(p, make(m).astype(np.float32), SR, subtype, "WAV")


def raw_bytes(data: bytes) -> Callable[[Path, Material], None]:
    return lambda p, m: p.write_bytes(data)


def declared_rate(rate: int, seconds: float | None = None, nbytes: int | None = None) -> Callable[[Path, Material], None]:
    """Speech PCM16 under a header that declares ``rate`` Hz: ``nbytes`` of the 16 kHz clip as they
    are (a wrong header), or ``seconds`` of the clip resampled to ``rate``."""
    def build(path: Path, m: Material) -> None:
        if nbytes is not None:
            data = pcm16(np.concatenate([m.speech(2), m.speech(0)]))[:nbytes]
        else:
            data = pcm16(m.at_rate(rate)[: int((seconds or 1.0) * rate)])
        write_riff(path, data, rate)
    return build


def symlink(target: str) -> Callable[[Path, Material], None]:
    return lambda p, m: os.symlink(target, p)


def symlink_loop(path: Path, m: Material) -> None:
    other = path.with_name("loop_b.wav")
    os.symlink(other.name, path)
    os.symlink(path.name, other)


def unreadable(path: Path, m: Material) -> None:
    write_sf(path, m.speech(), SR, "PCM_16")
    path.chmod(0)


def rng() -> np.random.Generator:
    return np.random.default_rng(0)
