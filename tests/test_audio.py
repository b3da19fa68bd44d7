"""load_audio / audio_duration: good inputs are decoded correctly, bad ones raise DataError naming the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emofuse.audio import audio_duration, load_audio
from emofuse.errors import DataError


def _tone(seconds: float, sr: int, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _write(path: Path, wave: np.ndarray, sr: int) -> Path:
    sf.write(path, wave, sr)
    return path


def _dominant_freq(wave: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave))
    return float(np.fft.rfftfreq(wave.size, 1 / sr)[spectrum.argmax()])


@pytest.mark.parametrize("sr", [8000, 16000, 44100, 48000])
@pytest.mark.parametrize("fmt", ["wav", "flac"])
def test_resampled_to_target(tmp_path: Path, sr: int, fmt: str) -> None:
    path = _write(tmp_path / f"tone.{fmt}", _tone(1.0, sr), sr)
    wave = load_audio(path, 16000)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert abs(wave.size - 16000) <= 1
    assert _dominant_freq(wave, 16000) == pytest.approx(440.0, abs=2.0)
    assert audio_duration(path) == pytest.approx(1.0, abs=1e-3)


def test_stereo_is_averaged(tmp_path: Path) -> None:
    left, right = _tone(0.5, 16000, 300.0), _tone(0.5, 16000, 1000.0)
    path = _write(tmp_path / "stereo.wav", np.stack([left, right], axis=1), 16000)
    wave = load_audio(path)
    np.testing.assert_allclose(wave, (left + right) / 2, atol=1e-4)  # PCM16 quantisation


def test_short_clip_and_silence(tmp_path: Path) -> None:
    short = load_audio(_write(tmp_path / "short.wav", _tone(0.1, 48000), 48000))
    assert short.size == 1600
    silent = load_audio(_write(tmp_path / "silence.flac", np.zeros(16000, np.float32), 16000))
    assert silent.size == 16000 and not silent.any()


def test_max_seconds(tmp_path: Path) -> None:
    path = _write(tmp_path / "long.wav", _tone(3.0, 22050), 22050)
    assert load_audio(path, 16000, max_seconds=1.0).size == 16000


def test_ten_minute_clip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = _write(tmp_path / "ten_min.flac", (0.1 * rng.standard_normal(600 * 16000)).astype(np.float32), 16000)
    wave = load_audio(path)
    assert wave.size == 600 * 16000 and wave.dtype == np.float32
    assert audio_duration(path) == pytest.approx(600.0)


def test_video_container_audio_track(tmp_path: Path) -> None:
    av = pytest.importorskip("av")
    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=48000)
        stream.layout = "stereo"
        tone = _tone(1.0, 48000, 500.0)
        samples = np.stack([tone, tone])  # planar [channels, n]
        for start in range(0, samples.shape[1], 1024):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, start : start + 1024]),
                                               format="fltp", layout="stereo")
            frame.sample_rate = 48000
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    wave = load_audio(path)
    assert 15000 < wave.size < 17500  # AAC adds priming/padding samples
    assert _dominant_freq(wave, 16000) == pytest.approx(500.0, abs=3.0)
    assert audio_duration(path) == pytest.approx(1.0, abs=0.1)


def test_video_without_audio_track(tmp_path: Path) -> None:
    av = pytest.importorskip("av")
    path = tmp_path / "silent_video.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=5)
        stream.width = stream.height = 32
        for _ in range(3):
            frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    with pytest.raises(DataError, match="no audio track") as info:
        load_audio(path)
    assert info.value.path == path


def _expect_data_error(path: Path, match: str) -> None:
    with pytest.raises(DataError, match=match) as info:
        load_audio(path)
    assert info.value.path == path
    assert str(path) in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    _expect_data_error(tmp_path / "nope.wav", "not found")
    with pytest.raises(DataError, match="not found"):
        audio_duration(tmp_path / "nope.wav")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    path.touch()
    _expect_data_error(path, "empty")


def test_text_file_with_audio_extension(tmp_path: Path) -> None:
    path = tmp_path / "x.wav"
    path.write_text("this is not audio\n" * 20)
    _expect_data_error(path, "not a readable audio")


@pytest.mark.parametrize("fmt", ["wav", "flac"])
@pytest.mark.parametrize("keep", [0.5, 0.05])
def test_truncated_file(tmp_path: Path, fmt: str, keep: float) -> None:
    rng = np.random.default_rng(1)
    full = _write(tmp_path / f"full.{fmt}", (0.1 * rng.standard_normal(32000)).astype(np.float32), 16000)
    data = full.read_bytes()
    cut = tmp_path / f"cut.{fmt}"
    cut.write_bytes(data[: int(len(data) * keep)])
    _expect_data_error(cut, "truncated|corrupt")


def test_header_only_wav_has_no_samples(tmp_path: Path) -> None:
    path = _write(tmp_path / "zero.wav", np.zeros(0, np.float32), 16000)
    _expect_data_error(path, "no audio samples")


def test_nan_samples(tmp_path: Path) -> None:
    wave = _tone(0.2, 16000)
    wave[100] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(path, wave, 16000, subtype="FLOAT")
    _expect_data_error(path, "NaN")
