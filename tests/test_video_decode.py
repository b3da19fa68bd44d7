"""Video decoding (emofuse.media.video): containers, samplers, timestamps, rotation, VFR, audio track,
and every damaged or unusual input, on small videos generated in tmp_path (tests/videogen.py), plus
real clips (realdata: the actor-05 mp4 and face-crop avi, the CREMA-D flv)."""

from __future__ import annotations

import dataclasses
import itertools
import math
import subprocess
import sys
import warnings

import numpy as np
import pytest
from videogen import (CODECS, frame_number, pattern_frames, quadrant_colours, tone, write_audio_only,
                      write_video)

from emofuse.errors import ConfigError, DataError
from emofuse.media import video
from emofuse.media.audio import AudioWarning
from emofuse.media.video import (SAMPLERS, Frame, FrameSampler, VideoWarning, get_sampler, has_video_track,
                                 iter_frames, list_samplers, load_video_audio, probe_video, read_frames)

EXTS = sorted(CODECS)
WHITE, RED, GREEN, BLUE = (255, 255, 255), (255, 0, 0), (0, 255, 0), (0, 0, 255)


def _nearest_reference(times: list[float], wanted: list[float], pad: bool, end: float) -> list[int]:
    """Brute force: for each wanted time, the index of the nearest frame time (the earlier on a tie);
    without ``pad`` (no fixed count), wanted times from the clip's ``end`` on are dropped."""
    out = []
    for want in wanted:
        if not pad and want >= end:
            break
        dist = [abs(t - want) for t in times]
        out.append(int(np.argmin(dist)))  # argmin returns the first (earlier) on ties
    return out


def _no_warnings():
    return warnings.catch_warnings(record=True)


# --- samplers ----------------------------------------------------------------------------------

def test_published_presets():
    assert list_samplers() == ["15_over_3.6s", "2fps_8", "all"]
    assert SAMPLERS["2fps_8"] == FrameSampler("rate", count=8, rate=2)
    assert SAMPLERS["15_over_3.6s"] == FrameSampler("count", count=15, span_s=3.6)
    assert SAMPLERS["all"] == FrameSampler("all")
    assert list(get_sampler("2fps_8").wanted_times(None)) == [0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5]
    fifteen = list(get_sampler("15_over_3.6s").wanted_times(10.0))
    assert np.allclose(fifteen, (np.arange(15) + 0.5) * 0.24)  # the centre of each of 15 equal segments


@pytest.mark.parametrize("sampler", [*SAMPLERS.values(), FrameSampler("rate", rate=4), FrameSampler("count", count=16),
                                     FrameSampler("rate", rate=2.5, count=3, span_s=1.0),
                                     FrameSampler("all", span_s=2.0, max_frames=50),
                                     FrameSampler("count", count=4, span_s=1.5), FrameSampler("rate", rate=1 / 3),
                                     FrameSampler("count", count=2, span_s=1e-3 / 7)])
def test_sampler_name_and_dict_round_trip(sampler):
    assert get_sampler(sampler.name) == sampler
    assert FrameSampler.from_dict(sampler.to_dict()) == sampler
    assert get_sampler(sampler.to_dict()) == sampler
    assert get_sampler(sampler) is sampler


def test_sampler_numbers_have_one_spelling():
    as_int = get_sampler({"mode": "rate", "rate": 2, "count": 8})
    assert as_int.to_dict() == SAMPLERS["2fps_8"].to_dict() and as_int.name == "2fps_8"


@pytest.mark.parametrize("bad", ["3fpz", "nope", {"mode": "count"}, {"mode": "rate", "count": 3},
                                 {"mode": "all", "count": 3}, {"mode": "count", "count": 0},
                                 {"mode": "count", "count": 2.5}, {"mode": "rate", "rate": -1},
                                 {"mode": "rate", "rate": float("nan")}, {"mode": "fast"},
                                 {"mode": "all", "max_frames": 0}, {"mode": "all", "colour": 1}, {"count": 3}, 7])
def test_bad_samplers_are_config_errors(bad):
    with pytest.raises(ConfigError):
        get_sampler(bad)


# --- containers, timestamps, sampling ------------------------------------------------------------

@pytest.mark.parametrize("ext", EXTS)
def test_every_container_decodes_all_frames_with_times(tmp_path, ext):
    path = write_video(tmp_path / f"clip.{ext}", pattern_frames(12), fps=8)
    info = probe_video(path)
    assert (info.width, info.height, info.num_frames, info.rotation) == (96, 64, 12, 0)
    assert info.fps == pytest.approx(8) and info.duration_s == pytest.approx(1.5, abs=0.01)
    assert not info.variable_frame_rate and not info.has_audio and info.codec
    frames = read_frames(path, "all")
    assert [f.index for f in frames] == list(range(12))
    assert [frame_number(f.image) for f in frames] == list(range(12))
    assert np.allclose([f.time_s for f in frames], np.arange(12) / 8, atol=1e-3)
    image = frames[0].image
    assert image.dtype == np.uint8 and image.shape == (64, 96, 3) and image.flags.c_contiguous
    assert quadrant_colours(image) == [WHITE, RED, GREEN, BLUE]  # RGB order, upright


@pytest.mark.parametrize("ext", ["mp4", "webm", "avi"])
@pytest.mark.parametrize("sampler", ["2fps_8", "15_over_3.6s", "16_even", "3fps", "2.5fps_4_over_1s", "all_over_1.2s"])
def test_samplers_pick_the_nearest_frame(tmp_path, ext, sampler):
    fps, n = 10, 31  # 3.1 s: "2fps_8" and "15_over_3.6s" ask for times past the end
    path = write_video(tmp_path / f"clip.{ext}", pattern_frames(n), fps=fps)
    s = get_sampler(sampler)
    frames = read_frames(path, s)
    times = list(np.arange(n) / fps)
    if s.mode == "all":
        expected = [i for i, t in enumerate(times) if t < s.span_s]
    else:
        wanted = itertools.takewhile(lambda t: t < n / fps + 1, s.wanted_times(n / fps))  # "3fps" is endless
        expected = _nearest_reference(times, list(wanted), pad=s.count is not None, end=n / fps)
    assert [f.index for f in frames] == expected
    assert [frame_number(f.image) for f in frames] == expected
    assert np.allclose([f.time_s for f in frames], [times[i] for i in expected], atol=1e-3)


def test_fixed_counts_repeat_the_last_frame_past_the_end(tmp_path):
    path = write_video(tmp_path / "short.mp4", pattern_frames(21), fps=10)  # 2.1 s
    frames = read_frames(path, "2fps_8")
    assert [f.index for f in frames] == [0, 5, 10, 15, 20, 20, 20, 20]
    assert [f.time_s for f in frames][-4:] == pytest.approx([2.0] * 4)
    assert np.array_equal(frames[-1].image, frames[-2].image)
    assert frames[-1].image is not frames[-2].image  # a copy: drawing on one frame leaves the other alone
    assert len(read_frames(path, "2fps")) == 5  # without a count: only times inside the clip


def test_decoding_stops_after_the_last_wanted_frame(tmp_path, monkeypatch):
    path = write_video(tmp_path / "long.mkv", pattern_frames(200, 32, 48), fps=10)  # 20 s
    decoded, converted = [], []
    real_decode, real_image = video._decode, video._image

    def counting_decode(*args):
        for item in real_decode(*args):
            decoded.append(item[0])
            yield item

    def counting_image(frame, rotation):
        converted.append(frame)
        return real_image(frame, rotation)

    monkeypatch.setattr(video, "_decode", counting_decode)
    monkeypatch.setattr(video, "_image", counting_image)
    stream = iter_frames(path, "2fps_8")
    assert not decoded  # nothing decoded before the first next()
    frames = list(stream)
    assert [f.index for f in frames] == [0, 5, 10, 15, 20, 25, 30, 35]
    assert max(decoded) <= 36  # stopped right after frame 35, not at frame 199
    assert len(converted) == 8  # only the chosen frames become arrays
    decoded.clear()
    every = iter_frames(path, "all")
    assert next(every).index == 0 and max(decoded) <= 1  # "all" streams too: one frame at a time
    every.close()


def test_errors_come_before_the_first_frame(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        iter_frames(tmp_path / "missing.mp4", "all")  # raised by the call, not by next()


def test_count_over_the_whole_clip_when_no_span(tmp_path):
    path = write_video(tmp_path / "clip.mp4", pattern_frames(40), fps=10)
    frames = read_frames(path, FrameSampler("count", count=4))
    assert [f.index for f in frames] == [5, 15, 25, 35]  # centres of four 1 s segments


# --- variable frame rate ---------------------------------------------------------------------------

@pytest.mark.parametrize("ext", ["mkv", "mp4", "webm"])
def test_variable_frame_rate_uses_timestamps(tmp_path, ext):
    pts = [0, 0.1, 0.2, 0.25, 0.3, 0.5, 0.9, 1.0, 1.05, 1.1, 1.2, 1.3, 1.8, 1.9]
    path = write_video(tmp_path / f"vfr.{ext}", pattern_frames(len(pts)), fps=10, pts=pts)
    info = probe_video(path)
    assert info.variable_frame_rate
    frames = read_frames(path, "all")
    assert np.allclose([f.time_s for f in frames], pts, atol=2e-3)
    picked = read_frames(path, "4fps")
    wanted = [0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
    assert [f.index for f in picked] == _nearest_reference(pts, wanted, pad=False, end=info.duration_s)
    assert [frame_number(f.image) for f in picked] == [f.index for f in picked]
    constant = write_video(tmp_path / f"cfr.{ext}", pattern_frames(len(pts)), fps=10)
    assert not probe_video(constant).variable_frame_rate


# --- rotation --------------------------------------------------------------------------------------

# the stored frame has white/red/green/blue quarters (top-left, top-right, bottom-left, bottom-right);
# turned clockwise by 90/180/270 degrees it shows:
TURNED = {90: [GREEN, WHITE, BLUE, RED], 180: [BLUE, GREEN, RED, WHITE], 270: [RED, BLUE, WHITE, GREEN]}


@pytest.mark.parametrize("ext", ["mp4", "mov", "mkv", "webm"])
@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_display_matrix_rotation_is_applied(tmp_path, ext, rotation):
    path = write_video(tmp_path / f"rot.{ext}", pattern_frames(4), fps=5, rotation=rotation)
    info = probe_video(path)
    assert info.rotation == rotation
    assert (info.width, info.height) == ((64, 96) if rotation in (90, 270) else (96, 64))
    for frame in read_frames(path, "all"):
        assert frame.image.shape == (info.height, info.width, 3) and frame.image.flags.c_contiguous
        assert quadrant_colours(frame.image) == TURNED[rotation]


def test_legacy_rotate_tag_is_applied(tmp_path):
    path = write_video(tmp_path / "tag.mkv", pattern_frames(3), fps=5, rotate_tag=90)
    assert probe_video(path).rotation == 90
    assert quadrant_colours(read_frames(path, "all")[0].image) == TURNED[90]


def test_odd_rotation_snaps_with_a_warning(tmp_path):
    path = write_video(tmp_path / "odd.mkv", pattern_frames(3), fps=5, rotate_tag=100)
    with pytest.warns(VideoWarning, match="not a multiple of 90"):
        assert probe_video(path).rotation == 90


# --- audio track -----------------------------------------------------------------------------------

@pytest.mark.parametrize("ext", EXTS)
def test_audio_track_through_the_audio_path(tmp_path, ext):
    path = write_video(tmp_path / f"av.{ext}", pattern_frames(20), fps=10, audio=tone(2.0, 22050), audio_rate=22050)
    assert probe_video(path).has_audio
    wave = load_video_audio(path)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert len(wave) / 16000 == pytest.approx(2.0, abs=0.15)  # encoder padding at most
    middle = wave[4000:28000]
    assert np.sqrt(np.mean(middle ** 2)) == pytest.approx(0.3 / math.sqrt(2), rel=0.1)


@pytest.mark.parametrize("ext", ["mp4", "mkv", "avi"])
def test_no_audio_track(tmp_path, ext):
    path = write_video(tmp_path / f"mute.{ext}", pattern_frames(5), fps=5)
    assert not probe_video(path).has_audio
    assert len(read_frames(path, "all")) == 5  # the video decodes
    with pytest.raises(DataError, match="no audio track") as err:
        load_video_audio(path)
    assert err.value.path == path and str(path) in str(err.value)


@pytest.mark.parametrize("ext", ["mp4", "webm", "avi"])
def test_silent_audio_track_decodes_to_zeros(tmp_path, ext):
    path = write_video(tmp_path / f"silent.{ext}", pattern_frames(10), fps=10, audio="silent")
    with warnings.catch_warnings():
        warnings.simplefilter("error", AudioWarning)
        wave = load_video_audio(path)
    assert len(wave) / 16000 == pytest.approx(1.0, abs=0.1) and not np.any(wave)
    assert len(read_frames(path, "all")) == 10


@pytest.mark.parametrize("ext", ["mp4", "mkv", "flv", "avi"])
def test_audio_and_video_of_different_lengths(tmp_path, ext):
    long_audio = write_video(tmp_path / f"la.{ext}", pattern_frames(10), fps=10, audio=tone(2.5))
    short_audio = write_video(tmp_path / f"sa.{ext}", pattern_frames(20), fps=10, audio=tone(0.5))
    with warnings.catch_warnings():
        warnings.simplefilter("error", VideoWarning)  # neither video track is reported as truncated
        if ext in ("mp4", "mkv"):  # tracks with their own declared durations: no audio warning either
            warnings.simplefilter("error", AudioWarning)
        else:  # flv/avi state only the file's duration: audio shorter than the video is warned about
            warnings.simplefilter("ignore", AudioWarning)
        assert len(read_frames(long_audio, "all")) == 10
        assert len(read_frames(short_audio, "all")) == 20
        assert probe_video(long_audio).duration_s == pytest.approx(1.0, abs=0.01)
        assert len(load_video_audio(long_audio)) / 16000 == pytest.approx(2.5, abs=0.15)
        assert len(load_video_audio(short_audio)) / 16000 == pytest.approx(0.5, abs=0.15)


# --- no video, not a video, damaged ------------------------------------------------------------------

def test_no_video_track(tmp_path):
    audio_only = write_audio_only(tmp_path / "speech.mp4", tone(1.0))
    with pytest.raises(DataError, match="no video track.*only audio") as err:
        probe_video(audio_only)
    assert err.value.path == audio_only
    with pytest.raises(DataError, match="no video track"):
        read_frames(audio_only, "2fps_8")
    assert len(load_video_audio(audio_only)) > 0  # its audio is still usable
    cover = write_audio_only(tmp_path / "song.mp4", tone(1.0), cover=True)
    with pytest.raises(DataError, match="no video track.*cover picture"):
        probe_video(cover)


def test_has_video_track(tmp_path):
    assert has_video_track(write_video(tmp_path / "clip.mkv", pattern_frames(2), fps=5))
    assert not has_video_track(write_audio_only(tmp_path / "speech.mp4", tone(0.5)))
    assert not has_video_track(write_audio_only(tmp_path / "song.mp4", tone(0.5), cover=True))
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n" * 100)
    with pytest.raises(DataError, match="not a readable video file"):
        has_video_track(text)
    with pytest.raises(DataError, match="file not found"):
        has_video_track(tmp_path / "missing.mp4")


def test_non_video_files_with_video_extensions(tmp_path):
    import soundfile as sf

    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n" * 100)
    noise = tmp_path / "noise.mkv"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    wav = tmp_path / "speech.avi"
    sf.write(wav, tone(1.0), 16000, format="WAV")
    empty = tmp_path / "empty.webm"
    empty.write_bytes(b"")
    for path, reason in [(text, "not a readable video"), (noise, "not a readable video"),
                         (wav, "no video track.*only audio"), (empty, "empty"), (tmp_path, "not a regular file")]:
        with pytest.raises(DataError, match=reason) as err:
            read_frames(path, "all")
        assert err.value.path == path


@pytest.mark.parametrize("ext", ["mkv", "webm", "avi", "flv"])
def test_truncated_file_returns_the_frames_before_the_damage(tmp_path, ext):
    whole = write_video(tmp_path / f"whole.{ext}", pattern_frames(30), fps=10, audio="silent")
    cut = tmp_path / f"cut.{ext}"
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) * 6 // 10])
    with pytest.warns(VideoWarning, match="truncated or damaged") as record:
        frames = read_frames(cut, "all")
    assert str(cut) in str(record[0].message)
    assert 5 <= len(frames) < 30
    numbers = [frame_number(f.image) for f in frames]
    # in order; a frame whose reference frame was cut may be missing
    assert numbers == sorted(set(numbers)) and numbers[0] == 0
    assert np.allclose([f.time_s for f in frames], np.array(numbers) / 10, atol=1e-3)  # each keeps its own time
    with _no_warnings() as record:
        warnings.simplefilter("always")
        assert len(read_frames(whole, "all")) == 30
    assert not [w for w in record if issubclass(w.category, VideoWarning)]


def test_truncated_mp4(tmp_path):
    # the index (moov) at the end, as most writers put it: a cut file has no index, so no frame at all
    whole = write_video(tmp_path / "whole.mp4", pattern_frames(30), fps=10, audio="silent")
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 8 // 10])
    with pytest.raises(DataError) as err:
        read_frames(cut, "all")
    assert err.value.path == cut and "truncated" in str(err.value)
    # index at the start ("faststart"): the frames before the cut come back with a warning
    fast = write_video(tmp_path / "fast.mp4", pattern_frames(30), fps=10, audio="silent",
                       options={"movflags": "faststart"})
    cut.write_bytes(fast.read_bytes()[: fast.stat().st_size * 8 // 10])
    with pytest.warns(VideoWarning, match="damaged or truncated"):
        frames = read_frames(cut, "all")
    assert 1 <= len(frames) < 30 and [frame_number(f.image) for f in frames] == list(range(len(frames)))


def test_file_cut_before_any_frame(tmp_path):
    whole = write_video(tmp_path / "whole.mkv", pattern_frames(10), fps=10)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(whole.read_bytes()[:300])
    with pytest.raises(DataError) as err:
        read_frames(cut, "all")
    assert err.value.path == cut


# --- bounds: maximum duration, max_frames ------------------------------------------------------------

def test_long_files_are_refused_when_read_to_the_end(tmp_path, monkeypatch):
    path = write_video(tmp_path / "long.mp4", pattern_frames(40, 32, 48), fps=10)  # 4 s
    monkeypatch.setenv("EMOFUSE_MAX_DURATION", "2")
    for sampler in ["all", "16_even", "3fps", "2fps_8"]:  # "2fps_8" reads 3.5 s
        with pytest.raises(DataError, match="more than the maximum of 2 s") as err:
            iter_frames(path, sampler)
        assert err.value.path == path
    assert len(read_frames(path, "all_over_1.5s")) == 15  # bounded samplers read only the start
    assert len(read_frames(path, "2fps_4")) == 4
    assert len(read_frames(path, "all", max_duration=5)) == 40  # the argument overrides the variable
    with pytest.raises(DataError, match="maximum"):
        read_frames(path, "all", max_duration=1)


def test_max_frames_bounds_all(tmp_path, monkeypatch):
    path = write_video(tmp_path / "clip.mkv", pattern_frames(30, 32, 48), fps=10)
    with pytest.raises(DataError, match="max_frames=10") as err:
        iter_frames(path, "all_max10")
    assert err.value.path == path
    assert len(read_frames(path, "all_over_0.5s_max10")) == 5
    # a header that understates the frames: refused while decoding, at frame 11
    real_probe = video._probe  # what iter_frames (and probe_video) read the header with

    def understated(p, container):
        info, scan = real_probe(p, container)
        return dataclasses.replace(info, num_frames=5, duration_s=0.5), scan

    monkeypatch.setattr(video, "_probe", understated)
    stream = iter_frames(path, "all_max10")
    got = []
    with pytest.raises(DataError, match="more frames than its header says"):
        for frame in stream:
            got.append(frame)
    assert len(got) == 10


def test_frames_are_frames():
    frame = Frame(3, 0.3, np.zeros((2, 2, 3), np.uint8))
    assert (frame.index, frame.time_s, frame.image.shape) == (3, 0.3, (2, 2, 3))


def test_importing_the_module_does_not_load_pyav():
    code = "import sys, emofuse.media.video; assert 'av' not in sys.modules, 'av imported'"
    subprocess.check_call([sys.executable, "-c", code])


# --- real clips ----------------------------------------------------------------------------------------

@pytest.mark.realdata
def test_actor05_720p_mp4(ravdess_video):
    path = sorted((ravdess_video / "ravdess-actor05-video" / "mp4").glob("*.mp4"))[0]
    info = probe_video(path)
    assert (info.width, info.height, info.codec, info.rotation) == (1280, 720, "h264", 0)
    assert info.fps == pytest.approx(29.97, abs=0.01) and not info.variable_frame_rate and info.has_audio
    frames = list(iter_frames(path, "all"))
    assert len(frames) == info.num_frames and 80 <= len(frames) <= 130
    assert np.allclose(np.diff([f.time_s for f in frames]), 1001 / 30000, atol=1e-3)
    assert frames[0].time_s == 0 and frames[0].image.shape == (720, 1280, 3)
    eight = read_frames(path, "2fps_8")
    inside = [f for f, want in zip(eight, np.arange(8) / 2) if want <= info.duration_s]
    assert all(abs(f.time_s - want) <= 0.5 / info.fps for f, want in zip(inside, np.arange(8) / 2))
    assert len(eight) == 8 and len(read_frames(path, "15_over_3.6s")) == 15
    wave = load_video_audio(path)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert len(wave) / 16000 == pytest.approx(info.duration_s, abs=0.1) and np.abs(wave).max() > 0.01


@pytest.mark.realdata
def test_actor05_facecrop_avi(ravdess_video):
    path = sorted((ravdess_video / "ravdess-actor05-video" / "facecrop").glob("*.avi"))[0]
    info = probe_video(path)
    assert (info.num_frames, info.fps, info.duration_s, info.has_audio) == (15, 5.0, 3.0, False)
    frames = read_frames(path, "all")
    assert [f.index for f in frames] == list(range(15))
    assert np.allclose([f.time_s for f in frames], np.arange(15) / 5)
    assert frames[0].image.shape == (info.height, info.width, 3)
    assert [f.index for f in read_frames(path, "2fps_8")] == [0, 2, 5, 7, 10, 12, 14, 14]
    with pytest.raises(DataError, match="no audio track"):
        load_video_audio(path)


@pytest.mark.realdata
def test_cremad_flv(cremad_dir):
    path = cremad_dir / "1001_DFA_ANG_XX.flv"
    if not path.is_file():
        pytest.skip(f"real data missing: {path}")
    info = probe_video(path)
    assert (info.width, info.height, info.num_frames, info.has_audio) == (480, 360, 67, True)
    assert info.fps == pytest.approx(29.97, abs=0.05) and not info.variable_frame_rate  # ms rounding is not VFR
    frames = read_frames(path, "all")
    assert len(frames) == 67 and frames[0].time_s == 0.0
    assert np.all(np.diff([f.time_s for f in frames]) > 0.03)
    wave = load_video_audio(path)
    assert len(wave) / 16000 == pytest.approx(info.duration_s, abs=0.1) and np.abs(wave).max() > 0.01
