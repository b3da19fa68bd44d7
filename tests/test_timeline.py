"""Emotion timelines of long media (issue #15, item 3): streamed decoding, fixed and speech windows,
silent windows without a label, JSON / CSV / PNG output, ``emofuse predict --segments``."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import soundfile as sf

from emofuse.cli import main
from emofuse.errors import ConfigError, DataError
from emofuse.inference import timeline
from emofuse.inference.predictor import Predictor, sample_clips
from emofuse.inference.timeline import (
    VAD_MAX_SEGMENT,
    cut_segments,
    fixed_windows,
    predict_timeline,
    vad_segments,
)
from emofuse.media.audio import load_audio
from emofuse.media.stream import iter_audio
from tests.videogen import write_audio_only

SR = 16000


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return Predictor()


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    """silence 3 s, the shipped happy clip, silence 4 s, the angry clip, silence 1 s (with the clips' times)."""
    clips = {p.name.split("-")[2]: load_audio(p) for p in sample_clips()}
    happy, angry = clips["03"], clips["05"]
    parts, times, at = [], [], 0.0
    for wave, silence in ((None, 3.0), (happy, 4.0), (angry, 1.0)):
        if wave is not None:
            parts.append(wave)
            times.append((at, at + wave.size / SR))
            at += wave.size / SR
        parts.append(np.zeros(int(silence * SR), np.float32))
        at += silence
    path = tmp_path_factory.mktemp("timeline") / "long.flac"
    sf.write(path, np.concatenate(parts), SR)
    return path, times


def _blocks(wave: np.ndarray, size: int):
    for i in range(0, wave.size, size):
        yield wave[i : i + size]


@pytest.mark.parametrize("block", [700, 16000, 100000])
def test_fixed_windows_cover_the_audio_whatever_the_blocks(block):
    wave = np.arange(int(5.5 * SR), dtype=np.float32)
    cuts = list(fixed_windows(_blocks(wave, block), 2.0, 1.0))
    assert [(s, e) for s, e, _ in cuts] == [(0.0, 2.0), (1.0, 3.0), (2.0, 4.0), (3.0, 5.0), (4.0, 5.5)]
    for start, end, samples in cuts:  # each window holds exactly its own samples
        assert np.array_equal(samples, wave[int(start * SR) : int(end * SR)])
    short = list(fixed_windows(_blocks(wave[:8000], block), 2.0, None or 2.0))
    assert [(s, e) for s, e, _ in short] == [(0.0, 0.5)]


def test_speech_segments_are_joined_padded_and_cut(monkeypatch):
    monkeypatch.setattr(timeline, "VAD_PAD", 0.25)
    parts = vad_segments([(0.1, 2.0), (2.3, 3.0), (10.0, 10.2), (10.8, 11.0),
                          (20.0, 20.0 + 2.5 * VAD_MAX_SEGMENT)], 60.0)
    assert parts[0] == pytest.approx((0.0, 3.25))  # joined across the 0.3 s gap, padded 0.25 s, not before 0
    assert parts[1] == pytest.approx((9.75, 10.45))
    assert parts[2] == pytest.approx((10.55, 11.25))  # padding stops at the middle of a gap
    long_parts = parts[3:]
    assert len(long_parts) == 3 and all(e - s <= VAD_MAX_SEGMENT + 1e-9 for s, e in long_parts)
    assert long_parts[0][0] == pytest.approx(19.75) and long_parts[-1][1] == pytest.approx(45.25)
    wave = np.arange(60 * SR, dtype=np.float32)
    cuts = list(cut_segments(_blocks(wave, 12345), parts))
    assert [(s, e) for s, e, _ in cuts] == parts
    assert all(np.array_equal(w, wave[round(s * SR) : round(e * SR)]) for s, e, w in cuts)


def test_streamed_blocks_equal_the_whole_decode(tmp_path):
    rng = np.random.default_rng(0)
    stereo = (0.1 * rng.standard_normal((44100 * 7, 2))).astype(np.float32)
    wav = tmp_path / "long.wav"
    sf.write(wav, stereo, 44100)
    mp4 = write_audio_only(tmp_path / "long.mp4", stereo[:, 0], rate=44100)
    for path in (wav, mp4):
        blocks = list(iter_audio(path, block_seconds=2.0))
        assert len(blocks) > 2  # handed on as it decodes, not in one piece
        whole = load_audio(path)
        streamed = np.concatenate(blocks)
        assert streamed.size == whole.size
        np.testing.assert_allclose(streamed, whole, atol=1e-6)
    with pytest.raises(DataError, match="maximum"):
        list(iter_audio(wav, max_duration=3.0))


def test_predict_waveform_is_predict_file(predictor):
    clip = sample_clips()[0]
    by_file, by_wave = predictor.predict_file(clip), predictor.predict_waveform(load_audio(clip), name="clip")
    assert by_wave.label == by_file.label and by_wave.path == "clip"
    assert by_wave.probabilities == pytest.approx(by_file.probabilities, abs=1e-6)
    assert predictor.predict_waveform(np.zeros(2 * SR, np.float32)).status == "no_speech"
    with pytest.raises(DataError, match="finite mono"):
        predictor.predict_waveform(np.full(SR, np.nan, np.float32))


def _covering(start, end, times):
    overlap = [max(0.0, min(end, b) - max(start, a)) for a, b in times]
    best = int(np.argmax(overlap))
    return best if overlap[best] > 0 else None


def test_fixed_timeline_labels_speech_and_not_silence(predictor, long_clip):
    path, times = long_clip
    timeline = predict_timeline(predictor, path, window=2.0, hop=1.0)
    segments = timeline.segments
    assert timeline.mode == "fixed" and timeline.hop == 1.0 and timeline.duration == pytest.approx(times[-1][1] + 1.0)
    assert [s.start for s in segments] == [float(i) for i in range(len(segments))]
    for seg in segments:
        clip = _covering(seg.start, seg.end, times)
        if clip is None:  # silence only: never a label
            assert seg.status == "no_speech" and seg.label is None and seg.probabilities == {}
        elif seg.label is not None:
            assert sum(seg.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    labelled = [s.label for s in segments if s.label]
    assert "happy" in labelled and "angry" in labelled


def test_vad_timeline_follows_the_speech(predictor, long_clip):
    path, times = long_clip
    timeline = predict_timeline(predictor, path, vad=True)
    segs = timeline.segments
    assert timeline.mode == "vad" and timeline.hop is None
    assert segs[0].start == 0.0 and segs[-1].end == pytest.approx(timeline.duration)
    assert all(a.end == pytest.approx(b.start) for a, b in zip(segs, segs[1:]))  # no holes, no overlaps
    spoken = [s for s in segs if s.status != "no_speech"]
    assert [s.label for s in spoken] == ["happy", "angry"]
    for seg, (start, end) in zip(spoken, times):
        assert seg.start < end and seg.end > start


def test_outputs_json_csv_png(predictor, long_clip, tmp_path):
    path, _ = long_clip
    timeline = predict_timeline(predictor, path, window=3.0)
    data = json.loads(timeline.to_json(tmp_path / "t.json").read_text())
    assert set(data) >= {"path", "window", "hop", "mode", "labels", "segments"}
    assert set(data["segments"][0]) == {"start", "end", "label", "probabilities", "status", "message"}
    rows = list(csv.DictReader(open(timeline.to_csv(tmp_path / "t.csv"))))
    assert len(rows) == len(timeline.segments) and "p_happy" in rows[0]
    png = timeline.plot(tmp_path / "t.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_windows_are_refused(predictor, long_clip):
    path, _ = long_clip
    for window, hop in ((0, None), (2.0, 3.0), (float("nan"), None), (2.0, -1.0)):
        with pytest.raises(ConfigError):
            predict_timeline(predictor, path, window=window, hop=hop)


def test_cli_segments(long_clip, tmp_path, capsys):
    path, _ = long_clip
    out, png = tmp_path / "t.csv", tmp_path / "t.png"
    assert main(["predict", str(path), "--segments", "2.0:1.0", "--out", str(out), "--plot", str(png)]) == 0
    assert out.read_text().startswith("start,end,status,label") and png.is_file()
    assert main(["predict", str(path), "--segments", "vad"]) == 0
    assert "no_speech" in capsys.readouterr().out
    for bad in (["--segments", "1:2"], ["--segments", "often"], ["--out", str(tmp_path / "x.json")],
                ["--segments", "2", "--out", str(tmp_path / "x.txt")], ["--segments", "2", "--labels", "6"]):
        assert main(["predict", str(path), *bad]) == 2


def test_timeline_never_decodes_the_whole_file(predictor, long_clip, monkeypatch):
    """The streamed path only: a whole-file decode (what holds an hour of audio) is never called."""
    import emofuse.media.audio as audio

    def whole(*args, **kwargs):
        raise AssertionError("load_audio decodes the whole file")

    monkeypatch.setattr(audio, "load_audio", whole)
    path, _ = long_clip
    for vad in (False, True):
        assert any(s.label for s in predict_timeline(predictor, path, window=3.0, vad=vad).segments)


from tests.test_predict_text import tiny  # noqa: E402,F401  (the tiny text + audio checkpoints)


def test_predict_waveform_of_a_text_model_transcribes_the_waveform(tiny, monkeypatch):  # noqa: F811
    """A window in memory is transcribed as it is (no file to key the transcript cache by), a given text is read."""
    heard = []

    def transcribe(self, path, wave=None, *, cached=True):
        heard.append((str(path), wave.size, cached))
        return "kids are talking by the door"

    monkeypatch.setattr(Predictor, "transcribe", transcribe)
    predictor = Predictor(tiny["text_audio"])
    wave = load_audio(sample_clips()[0])
    pred = predictor.predict_waveform(wave, name="talk.wav@0-3s")
    assert pred.ok and pred.transcript_source == "asr" and heard == [("talk.wav@0-3s", wave.size, False)]
    given = predictor.predict_waveform(wave, name="w", text="This is terrible")
    assert given.transcript == "This is terrible" and given.transcript_source == "given" and len(heard) == 1
