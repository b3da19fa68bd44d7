"""Video decoding with PyAV: a container (mp4, mov, avi, mkv, webm, flv, ...) becomes RGB frames with times.

- `probe_video` reads the header and the first packets (at most `PROBE_PACKETS`, no full decode) and
  returns a `VideoInfo`; every problem raises `DataError` naming the file.
- `iter_frames` streams the frames a `FrameSampler` (`emofuse.media.sampling`) asks for: each wanted
  time gets the decoded frame whose presentation time is nearest; decoding stops once the last wanted
  frame is passed, and only the chosen frames are converted. `read_frames` collects them in a list.
  Where it is safe and saves work, count and rate samplers decode from the keyframe before each chosen
  frame instead of from the start (`emofuse.media.seek`): the same frames, fewer decoded.
- Times are ``(pts - stream start) * time_base`` in seconds, so the first frame is at (about) 0 s.
- Rotation metadata (a display matrix, or the legacy ``rotate`` tag) is applied: frames come out upright.
- A file longer than the maximum duration (``max_duration``, ``$EMOFUSE_MAX_DURATION``, 10 min by default,
  as for audio) is refused before decoding when the sampler would read to its end; a sampler bounded by
  ``span_s`` or by a count at a rate reads only the start, whatever the file's length.
- `load_video_audio` decodes the audio track through `emofuse.media.audio.load_audio` (16 kHz mono).
  Audio and video are decoded independently, each to its own length.

Non-fatal problems are `VideoWarning`s: a damaged or truncated video track (the frames before the damage
are returned) and a rotation that is not a multiple of 90 degrees. ``import av`` stays inside functions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from emofuse.errors import DataError
from emofuse.media.checks import _limit_text, check_file, max_duration_limit
from emofuse.media.probe import (PROBE_PACKETS, VFR_TOLERANCE, NoVideoTrackError, VideoInfo, VideoWarning,  # noqa: F401
                                 _open, _probe, _Scan, _video_stream, _warn, probe_video, track_seconds)
from emofuse.media.sampling import SAMPLERS, FrameSampler, get_sampler, list_samplers
from emofuse.media.seek import SeekFailed, decode, make_plan

__all__ = ["PROBE_PACKETS", "SAMPLERS", "Frame", "FrameSampler", "NoVideoTrackError", "VideoInfo", "VideoWarning",
           "get_sampler", "has_video_track", "iter_frames", "list_samplers", "load_video_audio", "probe_video",
           "read_frames"]

#: a video track ending this much before its declared duration is reported as truncated (as for audio)
TRUNCATION_SECONDS = 0.25
TRUNCATION_SHARE = 0.05

SamplerLike = FrameSampler | str | Mapping[str, Any]


@dataclass
class Frame:
    """One decoded frame: its index in the video track, its presentation time and the RGB image."""

    index: int
    time_s: float
    image: np.ndarray  # uint8 RGB [H, W, 3], rotation already applied


# --- decoding --------------------------------------------------------------------------------

def iter_frames(path: str | Path, sampler: SamplerLike, *,
                max_duration: float | None = None) -> Iterator[Frame]:
    """Stream the frames ``sampler`` wants from ``path`` (see the module docstring).

    The file is probed and checked before anything is decoded (errors raise here, not on the first
    ``next``): `DataError` for every `probe_video` failure, for a file longer than the maximum duration
    when the sampler reads to its end, for more than ``max_frames`` frames in ``"all"`` mode (also raised
    mid-stream if the header understated them), and for a whole-clip count when the duration is unknown.
    """
    path = Path(path)
    sampler = get_sampler(sampler)
    check_file(path)
    container = _open(path)  # kept open: the frames are decoded from it when seeking pays
    try:
        info, scan = _probe(path, container)
        limit = max_duration_limit(max_duration)
        _check_bounds(path, info, sampler, limit)
        if sampler.mode == "count" and sampler.span_s is None and not math.isfinite(info.duration_s):
            raise DataError(path, "the video's duration is unknown, so frames cannot be spread over the whole "
                                  "clip; use a sampler with span_s or a rate")
    except BaseException:
        container.close()
        raise
    return _frames(path, info, sampler, limit, container, scan)


def read_frames(path: str | Path, sampler: SamplerLike, *,
                max_duration: float | None = None) -> list[Frame]:
    """All frames `iter_frames` yields, in a list (mind the memory for ``"all"`` on long clips)."""
    return list(iter_frames(path, sampler, max_duration=max_duration))


def load_video_audio(path: str | Path, sample_rate: int = 16000, *,
                     max_duration: float | None = None) -> np.ndarray:
    """The audio track of a video as float32 mono at ``sample_rate`` Hz, through
    `emofuse.media.audio.load_audio` (same checks and `AudioWarning`s); `DataError` "no audio track" when
    the file has none. The audio keeps its own length, whatever the video track's."""
    from emofuse.media.audio import load_audio

    return load_audio(path, sample_rate, max_duration=max_duration)


def _check_bounds(path: Path, info: VideoInfo, sampler: FrameSampler, limit: float) -> None:
    """Refuse, before decoding, a read past the maximum duration or an "all" past ``max_frames``."""
    seconds = min(sampler.read_seconds, info.duration_s) if math.isfinite(info.duration_s) else sampler.read_seconds
    if math.isfinite(seconds) and seconds > limit:
        raise DataError(path, f"the video lasts {info.duration_s:.1f} s, more than the maximum of "
                              f"{_limit_text(limit)}; refused before decoding (a sampler with span_s, or a count at a rate, reads only "
                              "the start)")
    if sampler.mode != "all":
        return
    frames = info.num_frames
    if frames is None and math.isfinite(info.duration_s) and math.isfinite(info.fps):
        frames = int(round(info.duration_s * info.fps))
    if frames is not None and sampler.span_s is not None and math.isfinite(info.fps):
        frames = min(frames, int(math.ceil(sampler.span_s * info.fps)))
    if frames is not None and frames > sampler.max_frames:
        raise DataError(path, _too_many(sampler, f"the video has about {frames} frames"))


def _too_many(sampler: FrameSampler, what: str) -> str:
    return (f"{what}, more than max_frames={sampler.max_frames} of the {sampler.name!r} sampler; use a count or "
            "rate sampler, a span_s, or a larger max_frames")


def _frames(path: Path, info: VideoInfo, sampler: FrameSampler, limit: float, container,
            scan: _Scan) -> Iterator[Frame]:
    """The sampler's frames: by seeking (`emofuse.media.seek`) when that is safe and saves decoding, else
    (or when a seek surprises) decoded from the start of the file, skipping the frames already given."""
    done = 0
    try:
        if sampler.mode != "all":
            for frame in _seeking(path, info, sampler, limit, container, scan):
                yield frame
                done += 1
            if done:
                return
    except SeekFailed:
        pass
    finally:
        container.close()
    times = None if sampler.mode == "all" else sampler.wanted_times(info.duration_s)
    for n, frame in enumerate(_from_start(path, info, sampler, times, limit)):
        if n >= done:
            yield frame


def _seeking(path: Path, info: VideoInfo, sampler: FrameSampler, limit: float, container,
             scan: _Scan) -> Iterator[Frame]:
    """The frames a `SeekPlan` gives (nothing when there is no plan), with the end-of-track check of
    `_decode` where a decoder from the start would have reached the end."""
    stream = _video_stream(path, container)
    plan = make_plan(scan, stream, sampler.wanted_times(info.duration_s), sampler.count is not None,
                     lambda last: _clip_end(info, last), limit)
    if plan is None:
        return
    decoded = decode(container, stream, plan)
    made: Frame | None = None
    for n, k in enumerate(plan.chosen):
        if n == plan.before_end and plan.reaches_end:
            _check_end(path, info, container, stream, scan.data_end, len(plan.pts), plan.times[-1])
        if made is None or made.index != k:
            index, frame = next(decoded)
            made = Frame(index, plan.times[index], _image(frame, info.rotation))
            yield made
        else:
            yield Frame(made.index, made.time_s, made.image.copy())
    if len(plan.chosen) == plan.before_end and plan.reaches_end:
        _check_end(path, info, container, stream, scan.data_end, len(plan.pts), plan.times[-1])


def _from_start(path: Path, info: VideoInfo, sampler: FrameSampler, times: Iterator[float] | None,
                limit: float) -> Iterator[Frame]:
    with _open(path) as container:
        stream = _video_stream(path, container)
        decoded = _decode(path, info, container, stream, limit)
        try:
            if times is None:
                for index, time_s, frame in decoded:
                    if sampler.span_s is not None and time_s >= sampler.span_s:
                        return
                    if index >= sampler.max_frames:
                        raise DataError(path, _too_many(sampler, "the video has more frames than its header says"))
                    yield Frame(index, time_s, _image(frame, info.rotation))
            else:
                yield from _nearest(decoded, times, sampler.count is not None, info)
        finally:
            decoded.close()


def _nearest(decoded: Iterator[tuple[int, float, Any]], times: Iterator[float], pad: bool,
             info: VideoInfo) -> Iterator[Frame]:
    """For each wanted time (ascending), the decoded frame with the nearest time (the earlier on a tie).
    Times past the last frame take the last frame when ``pad`` (a fixed count), else only before the clip's end."""
    made: Frame | None = None

    def make(item: tuple[int, float, Any]) -> Frame:
        nonlocal made
        if made is None or made.index != item[0]:
            made = Frame(item[0], item[1], _image(item[2], info.rotation))
            return made
        return Frame(made.index, made.time_s, made.image.copy())  # the same frame again: converted once

    prev = None
    want = next(times, None)
    for cur in decoded:
        while want is not None and cur[1] >= want:
            yield make(prev if prev is not None and want - prev[1] <= cur[1] - want else cur)
            want = next(times, None)
        if want is None:
            return  # the last wanted frame is passed: stop decoding
        prev = cur
    end = _clip_end(info, None if prev is None else prev[1])
    while prev is not None and want is not None and (pad or want < end):
        yield make(prev)
        want = next(times, None)


def _clip_end(info: VideoInfo, last: float | None) -> float:
    """Where a rate without count stops taking the last frame: the clip's duration (else one frame past
    the last frame's time ``last``)."""
    if math.isfinite(info.duration_s):
        return info.duration_s
    return last + 1 / info.fps if last is not None and info.fps > 0 else 0


def _decode(path: Path, info: VideoInfo, container, stream, limit: float) -> Iterator[tuple[int, float, Any]]:
    """``(index, time_s, av.VideoFrame)`` in presentation order; damage after the first frame is a warning.
    All tracks are demuxed (only the video decoded) so that the end of the file's data is known."""
    tb, start = stream.time_base, stream.start_time
    step = 1 / info.fps if info.fps > 0 else 0.0
    index, time_s, data_end = 0, 0.0, 0.0
    try:
        for packet in container.demux():
            if packet.pts is not None and packet.time_base is not None:
                data_end = max(data_end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
            if packet.stream.index != stream.index:
                continue
            for frame in packet.decode():
                if frame.pts is None:
                    time_s = time_s + step if index else 0.0
                else:
                    start = frame.pts if start is None else start
                    time_s = float((frame.pts - start) * tb)
                if time_s > limit:
                    raise DataError(path, f"the video lasts more than the maximum of {_limit_text(limit)}")
                yield index, time_s, frame
                index += 1
    except DataError:
        raise
    except Exception as exc:  # av.error.* raised mid-stream
        reason = getattr(exc, "strerror", None) or str(exc)
        if index == 0:
            raise DataError(path, f"corrupt video: no frame could be decoded ({reason})") from exc
        _warn(path, f"damaged or truncated video track: decoding failed after {time_s:.2f} s ({reason}); "
                    f"the {index} frames before the damage are used")
        return
    if index == 0:
        raise DataError(path, "the video track holds no decodable frame (corrupt or not a video)")
    _check_end(path, info, container, stream, data_end, index, time_s)


def _check_end(path: Path, info: VideoInfo, container, stream, data_end: float, frames: int, last: float) -> None:
    """At the end of the video track (``frames`` frames, the last at ``last`` s, every track's data ending at
    ``data_end`` s): warn when it looks cut short."""
    step = 1 / info.fps if info.fps > 0 else 0.0
    start_s = (container.start_time or 0) / 1_000_000
    problem = _truncation(container, stream, frames, last + step, data_end - start_s)
    if problem:
        _warn(path, f"truncated or damaged: {problem}; the {frames} frames decoded are used", 4)


def _truncation(container, stream, frames: int, video_end: float, data_end: float) -> str | None:
    """Why the file looks cut short (None: it does not): the video track ends well before the duration its
    header declares, fewer frames decode than the header counts, or the data of every track ends well
    before the file's declared duration."""
    def short(declared: float, got: float) -> bool:
        return declared - got > max(TRUNCATION_SECONDS, TRUNCATION_SHARE * declared)

    declared = track_seconds(stream)
    if declared is not None and short(declared, video_end):
        return f"video frames up to {video_end:.2f} s decoded, the header declares {declared:.2f} s"
    rate = float(stream.average_rate or 0)
    if stream.frames and rate and short(stream.frames / rate, frames / rate):
        return f"{frames} video frames decoded, the header counts {stream.frames}"
    total = container.duration / 1_000_000 if container.duration else None
    if total is not None and short(total, data_end):
        return f"the data ends at {data_end:.2f} s, the header declares {total:.2f} s"
    return None


def _image(frame, rotation: int) -> np.ndarray:
    """The frame as uint8 RGB ``[H, W, 3]``, turned upright (``rotation`` degrees clockwise)."""
    image = frame.to_ndarray(format="rgb24")
    if rotation:
        image = np.ascontiguousarray(np.rot90(image, k=-(rotation // 90)))
    return image


def has_video_track(path: str | Path) -> bool:
    """Whether ``path`` holds a video track with moving pictures (a cover picture attached to an audio
    file is not one). `DataError` naming the file when it is missing or not a readable container."""
    path = Path(path)
    check_file(path)
    with _open(path) as container:
        return any(not (s.disposition & getattr(type(s.disposition), "attached_pic", 1024))
                   for s in container.streams.video)
