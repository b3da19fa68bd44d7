"""Video decoding with PyAV: a container (mp4, mov, avi, mkv, webm, flv, ...) becomes RGB frames with times.

- `probe_video` reads the header and the first packets (at most `PROBE_PACKETS`, no full decode) and
  returns a `VideoInfo`; every problem raises `DataError` naming the file.
- `iter_frames` streams the frames a `FrameSampler` (`emofuse.media.sampling`) asks for: each wanted
  time gets the decoded frame whose presentation time is nearest; decoding stops once the last wanted
  frame is passed, and only the chosen frames are converted. `read_frames` collects them in a list.
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
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from emofuse.errors import DataError
from emofuse.media.checks import _limit_text, check_file, max_duration_limit
from emofuse.media.sampling import SAMPLERS, FrameSampler, get_sampler, list_samplers

__all__ = ["PROBE_PACKETS", "SAMPLERS", "Frame", "FrameSampler", "VideoInfo", "VideoWarning", "get_sampler",
           "has_video_track", "iter_frames", "list_samplers", "load_video_audio", "probe_video", "read_frames"]

#: packets of the video track `probe_video` reads (timestamps only, one frame decoded) to measure the
#: frame rate, detect a variable one, and count the frames of a short file exactly
PROBE_PACKETS = 600
#: frame intervals differing from the median by more than this share (and 2 time-base ticks) mean VFR
VFR_TOLERANCE = 0.1
#: a video track ending this much before its declared duration is reported as truncated (as for audio)
TRUNCATION_SECONDS = 0.25
TRUNCATION_SHARE = 0.05

SamplerLike = FrameSampler | str | Mapping[str, Any]


class VideoWarning(UserWarning):
    """A video decoded, but with a problem worth knowing (truncated or damaged track, odd rotation)."""


@dataclass(frozen=True)
class VideoInfo:
    """What `probe_video` learns about a file's (first) video track.

    ``width``/``height`` are those of the frames as returned (upright, after ``rotation``); ``rotation``
    is the clockwise turn in degrees (0, 90, 180, 270) applied to show the stored frames upright;
    ``fps`` is the average frame rate; ``duration_s`` the video track's length (measured from the
    timestamps when the whole track fits in `PROBE_PACKETS` packets, else from the header; NaN when
    unknown); ``num_frames`` is exact for such short files, the header's count otherwise (None: unknown);
    ``declared_duration_s`` is the track duration the header states (None: not stated).
    """

    path: Path
    width: int
    height: int
    fps: float
    duration_s: float
    num_frames: int | None
    rotation: int
    variable_frame_rate: bool
    has_audio: bool
    codec: str
    declared_duration_s: float | None = None


@dataclass
class Frame:
    """One decoded frame: its index in the video track, its presentation time and the RGB image."""

    index: int
    time_s: float
    image: np.ndarray  # uint8 RGB [H, W, 3], rotation already applied


# --- probing ---------------------------------------------------------------------------------

def probe_video(path: str | Path) -> VideoInfo:
    """Describe the first video track of ``path``; `DataError` (naming the file) for every failure:
    missing/empty/special file, not a readable container, no video track, unsupported codec, no
    decodable frame."""
    path = Path(path)
    check_file(path)
    with _open(path) as container:
        stream = _video_stream(path, container)
        pts, packets, last_duration, first, complete = _scan(path, container, stream)
        rotation = _rotation(path, first, stream)
        tb = stream.time_base
        start = stream.start_time if stream.start_time is not None else min(pts, default=0)
        steps = np.diff(np.unique(pts)) if pts else np.zeros(0)
        declared = track_seconds(stream)
        if complete and pts:
            step = last_duration or (float(np.median(steps)) if steps.size else 0)
            duration = float((max(pts) - start + step) * tb)
        elif declared is not None:
            duration = declared
        else:
            duration = container.duration / 1_000_000 if container.duration else math.nan
        num_frames = packets if complete else (stream.frames or None)
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if rate:
            fps = float(rate)
        elif steps.size:
            fps = float(1 / (np.median(steps) * tb))
        else:
            fps = math.nan
        width, height = stream.codec_context.width, stream.codec_context.height
        if rotation in (90, 270):
            width, height = height, width
        return VideoInfo(path=path, width=int(width), height=int(height), fps=fps, duration_s=duration,
                         num_frames=num_frames, rotation=rotation, variable_frame_rate=_is_vfr(steps),
                         has_audio=bool(container.streams.audio), codec=stream.codec_context.name,
                         declared_duration_s=declared)


def _open(path: Path):
    import av  # lazily: PyAV loads FFmpeg

    try:
        return av.open(str(path), metadata_errors="replace")
    except Exception as exc:  # av.error.InvalidDataError and friends
        reason = getattr(exc, "strerror", None) or str(exc)
        raise DataError(path, f"not a readable video file (damaged, truncated, or not a video format: "
                              f"{reason})") from exc


def _video_stream(path: Path, container):
    """The first real video track (cover pictures do not count); `DataError` when there is none."""
    import av

    cover = int(av.stream.Disposition.attached_pic)
    streams = [s for s in container.streams.video if not int(s.disposition) & cover]
    if not streams and not container.streams.video and not container.streams.audio:
        raise DataError(path, "no video track in file: no audio or video track was found (a damaged or truncated "
                              "file, e.g. an mp4/mov whose index is missing, or not a video)")
    if not streams:
        held = "only a cover picture" if container.streams.video else "only audio"
        raise DataError(path, f"no video track in file (the {container.format.name} container holds {held})")
    stream = streams[0]
    if stream.codec_context is None:
        raise DataError(path, f"unsupported video codec: the {container.format.name} container holds video in a "
                              "codec no decoder here can read")
    if not stream.codec_context.width or not stream.codec_context.height:
        raise DataError(path, "not a video file: the video track header has no frame size")
    return stream


def _scan(path: Path, container, stream) -> tuple[list[int], int, int, Any, bool]:
    """Timestamps of the first `PROBE_PACKETS` packets, their number, the last one's duration, the first
    decoded frame, and whether the track ended within them."""
    pts: list[int] = []
    packets, last_duration, first, complete = 0, 0, None, False
    try:
        for packet in container.demux(stream):
            packets += packet.size > 0  # the empty packet at the end only flushes the decoder
            if packet.pts is not None:
                pts.append(int(packet.pts))
                last_duration = int(packet.duration or 0)
            if first is None:
                first = next(iter(packet.decode()), None)
            if packets >= PROBE_PACKETS and first is not None:
                break
        else:
            complete = True
    except Exception as exc:  # damage: reported by the decoder later if a frame came out
        if first is None:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise DataError(path, f"corrupt video: no frame could be decoded ({reason})") from exc
        complete = True
    if first is None:
        raise DataError(path, "the video track holds no decodable frame (corrupt or not a video)")
    return pts, packets, last_duration, first, complete


def track_seconds(stream) -> float | None:
    """A track's duration as the header states it (mp4/mov/avi: the stream duration; mkv/webm: the track's
    DURATION tag), or None (flv, avi audio: only the file's duration is stated). The audio path uses it too."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    tag = next((v for k, v in stream.metadata.items() if k.lower() == "duration"), None)
    try:
        hours, minutes, seconds = str(tag).split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except ValueError:
        return None


def _rotation(path: Path, frame, stream) -> int:
    """The clockwise turn (0/90/180/270) that shows frames upright: from the display matrix, else the
    legacy ``rotate`` tag; other angles snap to the nearest quarter turn with a warning."""
    degrees = -float(frame.rotation or 0)  # PyAV reports the counter-clockwise angle
    if not degrees:
        tag = next((v for k, v in stream.metadata.items() if k.lower() == "rotate"), None)
        try:
            degrees = float(tag) if tag is not None else 0.0
        except ValueError:
            _warn(path, f"rotation tag {tag!r} is not a number: ignored")
            degrees = 0.0
    turn = int(round(degrees / 90)) % 4 * 90
    if abs((degrees - turn + 180) % 360 - 180) > 1:
        _warn(path, f"display rotation of {degrees % 360:g} degrees is not a multiple of 90: frames are turned "
                    f"by {turn} degrees")
    return turn


def _is_vfr(steps: np.ndarray) -> bool:
    """Frame intervals (time-base ticks) that vary beyond rounding: a variable frame rate."""
    if steps.size < 2:
        return False
    median = float(np.median(steps))
    return bool(np.any(np.abs(steps - median) > max(2.0, VFR_TOLERANCE * median)))


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
    info = probe_video(path)
    limit = max_duration_limit(max_duration)
    _check_bounds(path, info, sampler, limit)
    times = None
    if sampler.mode != "all":
        if sampler.mode == "count" and sampler.span_s is None and not math.isfinite(info.duration_s):
            raise DataError(path, "the video's duration is unknown, so frames cannot be spread over the whole "
                                  "clip; use a sampler with span_s or a rate")
        times = sampler.wanted_times(info.duration_s)
    return _frames(path, info, sampler, times, limit)


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


def _frames(path: Path, info: VideoInfo, sampler: FrameSampler, times: Iterator[float] | None,
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
    end = info.duration_s if math.isfinite(info.duration_s) else prev[1] + 1 / info.fps if prev and info.fps > 0 else 0
    while prev is not None and want is not None and (pad or want < end):
        yield make(prev)
        want = next(times, None)


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
    start_s = (container.start_time or 0) / 1_000_000
    problem = _truncation(container, stream, index, time_s + step, data_end - start_s)
    if problem:
        _warn(path, f"truncated or damaged: {problem}; the {index} frames decoded are used")


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


def _warn(path: Path, message: str) -> None:
    warnings.warn(f"{path}: {message}", VideoWarning, stacklevel=3)


def has_video_track(path: str | Path) -> bool:
    """Whether ``path`` holds a video track with moving pictures (a cover picture attached to an audio
    file is not one). `DataError` naming the file when it is missing or not a readable container."""
    path = Path(path)
    check_file(path)
    with _open(path) as container:
        return any(not (s.disposition & getattr(type(s.disposition), "attached_pic", 1024))
                   for s in container.streams.video)
