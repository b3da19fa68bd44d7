"""Seeking to keyframes (emofuse.media.seek) gives exactly the frames of decoding from the start: the
same indices, times and pixels, for every sampler, on generated H.264 / HEVC / VP8 / VP9 videos with a
keyframe every few frames (with and without B-frames), and on the real actor-05 mp4s. Keyframes that do
not reset the decoder (open GOP) are never seeked to, and a seek that surprises falls back to the start."""

from __future__ import annotations

import warnings
from fractions import Fraction

import numpy as np
import pytest

from emofuse.media import seek, video
from emofuse.media.sampling import get_sampler

SAMPLERS = ["2fps", "2fps_8", "15_over_3.6s", "16_even", "4fps", "3fps_5", "2.5fps_4_over_1s", "1fps_3_over_9s"]


def _moving_frames(n: int, height: int = 64, width: int = 96) -> np.ndarray:
    """Textured frames that move (so that P- and B-frames carry real changes), each with its number drawn."""
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 255, (height, width * 2, 3), dtype=np.uint8)
    frames = np.stack([np.roll(texture, 3 * i, axis=1)[:, :width] for i in range(n)])
    for i in range(n):
        frames[i, :8, : 4 * (i % 24) + 4] = 255
    return frames


def _write(path, frames, fps=10, codec="libx264", options=None, pts_rate=None):
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001), options=options or {})
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _from_start(monkeypatch, path, sampler):
    with monkeypatch.context() as m:
        m.setattr(video, "make_plan", lambda *a, **k: None)
        return video.read_frames(path, sampler)


def _plan(path, sampler):
    container = video._open(path)
    try:
        info, scan = video._probe(path, container)
        s = get_sampler(sampler)
        return seek.make_plan(scan, video._video_stream(path, container), s.wanted_times(info.duration_s),
                              s.count is not None, lambda last: video._clip_end(info, last), 600.0)
    finally:
        container.close()


def _same(a, b):
    assert [f.index for f in a] == [f.index for f in b]
    assert [f.time_s for f in a] == [f.time_s for f in b]
    assert all(np.array_equal(x.image, y.image) for x, y in zip(a, b))


CASES = {  # name: (extension, codec, encoder options)
    "h264": ("mp4", "libx264", {"g": "10", "bf": "0"}),
    "h264_bframes": ("mp4", "libx264", {"g": "10", "bf": "2"}),
    "h264_mkv": ("mkv", "libx264", {"g": "7"}),
    "hevc": ("mp4", "libx265", {"x265-params": "keyint=10:min-keyint=10:scenecut=0:open-gop=0:log-level=none"}),
    "vp8": ("webm", "libvpx", {"g": "10"}),
    "vp9": ("webm", "libvpx-vp9", {"g": "10", "deadline": "realtime", "cpu-used": "8"}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_seeking_gives_the_frames_of_decoding_from_the_start(tmp_path, monkeypatch, case):
    ext, codec, options = CASES[case]
    path = _write(tmp_path / f"clip.{ext}", _moving_frames(43), codec=codec, options=options)  # 4.3 s
    used = 0
    for sampler in SAMPLERS:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # neither path warns on an intact file
            fast = video.read_frames(path, sampler)
            slow = _from_start(monkeypatch, path, sampler)
        _same(fast, slow)
        plan = _plan(path, sampler)
        if plan is not None:
            used += 1
            assert seek.decoded_count(plan) <= len(plan.pts) - seek.MIN_SAVED
    assert used >= 3  # seeking was really used, for most samplers


def test_the_real_clips_decode_the_same_and_seek(ravdess_video, monkeypatch):
    clips = sorted((ravdess_video / "ravdess-actor05-video" / "mp4").glob("*.mp4"))
    assert clips
    for clip in clips:
        for sampler in ("2fps", "2fps_8", "15_over_3.6s"):
            _same(video.read_frames(clip, sampler), _from_start(monkeypatch, clip, sampler))
        plan = _plan(clip, "2fps")
        assert plan is not None and seek.decoded_count(plan) < 0.65 * len(plan.pts)  # 55 of ~95 frames


@pytest.mark.parametrize("options", [{"x265-params": "keyint=10:min-keyint=10:scenecut=0:open-gop=1:bframes=3:"
                                                     "log-level=none"}])
def test_keyframes_that_do_not_reset_the_decoder_are_not_seeked_to(tmp_path, options):
    path = _write(tmp_path / "open.mp4", _moving_frames(43), codec="libx265", options=options)
    container = video._open(path)
    try:
        _, scan = video._probe(path, container)
    finally:
        container.close()
    assert len(scan.keyframes) > 1 and not scan.random_access
    assert _plan(path, "2fps") is None


def test_nal_unit_types():
    avcc = bytes([1, 100, 0, 31, 0xFF]) + bytes(20)  # 4-byte lengths
    idr = (3).to_bytes(4, "big") + bytes([0x65, 0, 0])
    sei_then_slice = (2).to_bytes(4, "big") + bytes([0x06, 0]) + (2).to_bytes(4, "big") + bytes([0x41, 0])
    assert seek.random_access("h264", avcc, idr) and not seek.random_access("h264", avcc, sei_then_slice)
    assert seek.random_access("h264", None, b"\x00\x00\x00\x01\x67\x00\x00\x01\x65\x88")  # Annex B: SPS, IDR
    assert not seek.random_access("h264", None, b"\x00\x00\x01\x41\x9a")
    assert seek.random_access("vp9", None, b"") and not seek.random_access("mjpeg", None, b"\xff\xd8")


def test_a_seek_that_surprises_falls_back_to_the_start(tmp_path, monkeypatch):
    path = _write(tmp_path / "clip.mp4", _moving_frames(43), options={"g": "10", "bf": "0"})
    real, failed = seek.decode, []

    def failing(container, stream, plan):
        for n, item in enumerate(real(container, stream, plan)):
            if n == 3:
                failed.append(n)
                raise seek.SeekFailed("test")
            yield item

    monkeypatch.setattr(video, "decode", failing)
    got = video.read_frames(path, "4fps")
    _same(got, _from_start(monkeypatch, path, "4fps"))
    assert failed and len(got) == 18  # 0, 0.25, ..., 4.25 s: no frame lost or given twice


def test_choose_is_the_decoders_rule():
    times = [0.0, 0.1, 0.2, 0.3]
    assert seek.choose(times, iter([0.04, 0.06, 0.3]), False, lambda t: 0.4) == ([0, 1, 3], 3, 3)
    assert seek.choose(times, iter([0.2, 0.35, 0.5]), True, lambda t: 0.4) == ([2, 3, 3], None, 1)
    assert seek.choose(times, iter([0.2, 0.35, 0.5]), False, lambda t: 0.4) == ([2, 3], None, 1)
