"""load_audio / audio_duration: good inputs are decoded correctly, bad ones raise DataError naming the file;
headers are checked before decoding, long files stream, and doubtful input gets an AudioWarning."""

from __future__ import annotations

import os
import struct
import threading
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import emofuse.media.audio as audio_mod
from emofuse.media.audio import AudioWarning, audio_duration, check_file, load_audio
from emofuse.errors import ConfigError, DataError
from emofuse.inference.predictor import sample_clips


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


# --- issue #10: bounded work, header checks, warnings, tracks, clear wording -------------------------



def _speech() -> np.ndarray:
    wave, sr = sf.read(sample_clips()[0], dtype="float32")
    assert sr == 16000
    return wave


def _riff(path: Path, pcm: bytes, rate: int, channels: int = 1) -> Path:
    """A PCM16 WAV whose header declares ``rate`` (whatever the samples are)."""
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * 2 * channels, 2 * channels, 16)
    path.write_bytes(b"RIFF" + struct.pack("<I", 36 + len(pcm)) + b"WAVEfmt " + struct.pack("<I", 16) + fmt
                     + b"data" + struct.pack("<I", len(pcm)) + pcm)
    return path


def write_av(path: Path, tracks: list[np.ndarray], fmt: str, *, video: bool = False, sr: int = 16000,
             options: dict[str, str] | None = None) -> Path:
    """A container with one mono AAC track per waveform (and optionally a tiny video stream)."""
    av = pytest.importorskip("av")
    with av.open(str(path), "w", format=fmt, options=options or {}) as container:
        streams = []
        for _ in tracks:
            stream = container.add_stream("aac", rate=sr)
            stream.layout = "mono"
            streams.append(stream)
        if video:
            vstream = container.add_stream("mpeg4", rate=10)
            vstream.width = vstream.height = 32
        for stream, wave in zip(streams, tracks):
            for start in range(0, wave.size, 1024):
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(wave[None, start : start + 1024]),
                                                   format="fltp", layout="mono")
                frame.sample_rate = sr
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode(None):
                container.mux(packet)
        if video:
            for _ in range(int(10 * tracks[0].size / sr)):
                frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
                for packet in vstream.encode(frame):
                    container.mux(packet)
            for packet in vstream.encode(None):
                container.mux(packet)
    return path


def _load_warned(path: Path, **kw) -> tuple[np.ndarray, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        wave = load_audio(path, **kw)
    return wave, [str(w.message) for w in caught if issubclass(w.category, AudioWarning)]


class _NoResampling:
    """Stands in for soxr: any resampling fails the test (refusal must come before it)."""

    def __getattr__(self, name):
        raise AssertionError(f"soxr.{name} used before the header was checked")


@pytest.mark.parametrize("rate", [1, 0, 3000, 500_000])
def test_implausible_sample_rate_refused_before_decoding(tmp_path: Path, monkeypatch, rate: int) -> None:
    """Item 1: a 124 KB WAV whose header says 1 Hz (17 h of audio) once ran without bound."""
    pcm = (np.resize(_speech(), 62_000) * 32767).astype("<i2").tobytes()
    path = _riff(tmp_path / f"rate_{rate}.wav", pcm, rate)
    monkeypatch.setattr(audio_mod, "soxr", _NoResampling())
    with pytest.raises(DataError) as info:
        load_audio(path)
    assert info.value.path == path
    assert "sample rate" in str(info.value) or "not an audio file" in str(info.value)


def test_declared_duration_over_the_maximum_is_refused(tmp_path: Path, monkeypatch) -> None:
    path = _write(tmp_path / "three_s.flac", _tone(3.0, 16000), 16000)
    monkeypatch.setattr(audio_mod, "soxr", _NoResampling())
    with pytest.raises(DataError, match=r"declares 3\.0 s .* maximum of 2 s") as info:
        load_audio(path, max_duration=2)
    assert info.value.path == path
    monkeypatch.setenv("EMOFUSE_MAX_DURATION", "2.5")
    with pytest.raises(DataError, match="maximum of 2.5 s"):
        load_audio(path)
    assert load_audio(path, max_duration=4).size == 48000  # the argument wins over the variable
    assert load_audio(path, max_seconds=1).size == 16000  # reading the start only is never refused
    monkeypatch.setenv("EMOFUSE_MAX_DURATION", "soon")
    with pytest.raises(ConfigError, match="EMOFUSE_MAX_DURATION"):
        load_audio(path)
    monkeypatch.delenv("EMOFUSE_MAX_DURATION")
    assert audio_mod.max_duration_limit() == audio_mod.DEFAULT_MAX_DURATION
    with pytest.raises(ConfigError):
        audio_mod.max_duration_limit(0)


def test_container_over_the_maximum_is_refused(tmp_path: Path) -> None:
    path = write_av(tmp_path / "speech.mka", [_speech()], "matroska")
    with pytest.raises(DataError, match="maximum of 1 s"):
        load_audio(path, max_duration=1)


def test_long_file_is_resampled_block_by_block(tmp_path: Path) -> None:
    """60 s of 192 kHz stereo: the old decoder held the whole 192 kHz mono signal (46 MB) before
    resampling; streaming keeps the peak near the 16 kHz output (3.8 MB) plus a block."""
    rng = np.random.default_rng(0)
    path = _write(tmp_path / "long.wav", (0.1 * rng.standard_normal((192_000 * 60, 2))).astype(np.float32), 192_000)
    tracemalloc.start()
    try:
        wave = load_audio(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert wave.size == 16000 * 60
    assert peak < 30e6, f"peak {peak / 1e6:.0f} MB"


def test_stream_resampling_matches_one_shot(tmp_path: Path) -> None:
    import soxr

    tone = _tone(2.0, 44100)
    wave = load_audio(_write(tmp_path / "t.wav", tone, 44100))
    reference = soxr.resample(sf.read(tmp_path / "t.wav", dtype="float32")[0], 44100, 16000, quality="HQ")
    np.testing.assert_allclose(wave, reference, atol=1e-6)


def test_truncated_container_is_reported(tmp_path: Path) -> None:
    """Item 5: half of a container once decoded 1.34 of 3.24 s without a word."""
    for name, fmt, options in [("clip.mkv", "matroska", None), ("clip.mp4", "mp4", {"movflags": "faststart"})]:
        full = write_av(tmp_path / name, [_speech()], fmt, video=True, options=options)
        cut = tmp_path / f"half_{name}"
        cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
        try:
            _, notes = _load_warned(cut)
        except DataError as exc:  # a decode error at the cut is reported as such
            assert exc.path == cut and "truncated" in str(exc)
        else:
            assert any("truncated" in n and str(cut) in n for n in notes), notes
        _, notes = _load_warned(full)
        assert not notes


def test_several_audio_tracks_pick_the_one_with_speech(tmp_path: Path) -> None:
    """Item 6: a silent first track once hid the speech on the second."""
    speech = _speech()
    for name, fmt in [("two.mp4", "mp4"), ("two.mkv", "matroska")]:
        path = write_av(tmp_path / name, [np.zeros_like(speech), speech], fmt, video=True)
        wave, notes = _load_warned(path)
        assert np.abs(wave).max() > 0.1
        assert any("audio track 2 of 2 used" in n and "track 1 holds no speech" in n for n in notes), notes
        first, notes = _load_warned(path, audio_track=1)
        assert np.abs(first).max() < 1e-3 and any("audio track 1 of 2 used" in n for n in notes)
        with pytest.raises(DataError, match="has 2 audio track.*track 3 does not exist"):
            load_audio(path, audio_track=3)
    with pytest.raises(DataError, match="1 audio track"):
        load_audio(_write(tmp_path / "one.wav", speech, 16000), audio_track=2)


def test_phase_cancelled_stereo_uses_the_strongest_channel(tmp_path: Path) -> None:
    speech = _speech()
    path = _write(tmp_path / "phase.wav", np.stack([speech, -speech], axis=1), 16000)
    wave, notes = _load_warned(path)
    np.testing.assert_allclose(wave, speech, atol=1e-4)
    assert any("cancel out" in n and "channel 1" in n for n in notes), notes
    _, notes = _load_warned(_write(tmp_path / "left.wav", np.stack([speech, 0 * speech], axis=1), 16000))
    assert not notes  # speech on one channel only: the mix is fine


def test_clipping_and_out_of_range_samples_warn(tmp_path: Path) -> None:
    speech = _speech()
    _, notes = _load_warned(_write(tmp_path / "clipped.wav", np.clip(speech * 30, -1, 1), 16000))
    assert any("clipping" in n for n in notes), notes
    path = tmp_path / "loud.wav"
    sf.write(path, speech * 1e6, 16000, subtype="FLOAT")
    wave, notes = _load_warned(path)
    assert np.abs(wave).max() > 1e4  # the samples are kept as they are; prediction refuses them
    assert any("beyond full scale" in n for n in notes), notes
    _, notes = _load_warned(sample_clips()[0])
    assert not notes


def test_random_bytes_named_flac_are_not_an_audio_file(tmp_path: Path) -> None:
    """Item 13: once "audio track has no sample rate"."""
    rng = np.random.default_rng(0)
    for name, content in [("random.flac", rng.bytes(65536)), ("text.flac", b"This is not audio. " * 200),
                          ("random.wav", rng.bytes(65536)), ("random.mp4", rng.bytes(65536))]:
        path = tmp_path / name
        path.write_bytes(content)
        _expect_data_error(path, "not an audio file")


def test_symlink_loop_is_named(tmp_path: Path) -> None:
    """Item 13: once "file not found"."""
    a, b = tmp_path / "a.wav", tmp_path / "b.wav"
    os.symlink(b, a)
    os.symlink(a, b)
    _expect_data_error(a, "symbolic link loop")
    dangling = tmp_path / "dangling.wav"
    os.symlink(tmp_path / "gone.wav", dangling)
    _expect_data_error(dangling, "broken symbolic link")


def test_proc_file_is_special_not_empty() -> None:
    """Item 13: /proc/self/status once was "file is empty"."""
    path = Path("/proc/self/status")
    if not path.exists():
        pytest.skip("no /proc on this system")
    with pytest.raises(DataError) as info:
        load_audio(path)
    assert "empty" not in str(info.value) and "not a regular file" in str(info.value)


def test_fifo_and_directory_are_refused_without_waiting(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    result: list[BaseException] = []
    worker = threading.Thread(target=lambda: result.append(pytest.raises(DataError, check_file, fifo).value),
                              daemon=True)
    worker.start()
    worker.join(5)
    assert result and "named pipe" in str(result[0])
    _expect_data_error(tmp_path, "not a regular file: it is a directory")


def test_checks_module_names_are_reexported_by_emofuse_audio(tmp_path: Path, monkeypatch) -> None:
    """The file/header checks live in emofuse.media.checks; emofuse.media.audio still gives the same objects,
    and load_audio calls the checks module's functions (patch them there, not on emofuse.media.audio)."""
    import emofuse.media.checks as checks

    for name in ("AudioWarning", "check_file", "max_duration_limit", "DEFAULT_MAX_DURATION", "MAX_DURATION_ENV",
                 "MIN_SAMPLE_RATE", "MAX_SAMPLE_RATE", "CLIP_LEVEL", "CLIP_SHARE"):
        assert getattr(audio_mod, name) is getattr(checks, name), name
        assert name in audio_mod.__all__
    assert set(audio_mod.__all__) <= set(dir(audio_mod))
    path = _write(tmp_path / "tone.wav", _tone(1.0, 16000), 16000)
    monkeypatch.delenv("EMOFUSE_MAX_DURATION", raising=False)
    monkeypatch.setattr(checks, "DEFAULT_MAX_DURATION", 0.5)
    with pytest.raises(DataError, match="maximum of 0.5 s"):
        load_audio(path)
