"""Probing a video file with PyAV: its first video track's size, rate, duration, rotation, and a record of
its packets (for `emofuse.media.seek`). Part of `emofuse.media.video`, which re-exports the public names
(`VideoInfo`, `VideoWarning`, `NoVideoTrackError`, `probe_video`, `track_seconds`, `PROBE_PACKETS`). ``import av`` stays inside
functions.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emofuse.errors import DataError
from emofuse.media.checks import check_file

#: packets of the video track `probe_video` reads (timestamps only, one frame decoded) to measure the
#: frame rate, detect a variable one, and count the frames of a short file exactly
PROBE_PACKETS = 600
#: frame intervals differing from the median by more than this share (and 2 time-base ticks) mean VFR
VFR_TOLERANCE = 0.1


class NoVideoTrackError(DataError):
    """The file holds no video track (only audio, only a cover picture, or no track at all): what
    `has_video_track` answers False for, found while probing (no second look at the file needed)."""


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


# --- probing ---------------------------------------------------------------------------------

def probe_video(path: str | Path) -> VideoInfo:
    """Describe the first video track of ``path``; `DataError` (naming the file) for every failure:
    missing/empty/special file, not a readable container, no video track, unsupported codec, no
    decodable frame."""
    path = Path(path)
    check_file(path)
    with _open(path) as container:
        return _probe(path, container)[0]


def _probe(path: Path, container) -> tuple[VideoInfo, _Scan]:
    """`probe_video` on an open container, with the record of the packets read (for `emofuse.media.seek`)."""
    stream = _video_stream(path, container)
    scan = _scan(path, container, stream)
    pts, first = scan.pts, scan.first
    rotation = _rotation(path, first, stream)
    tb = stream.time_base
    start = stream.start_time if stream.start_time is not None else min(pts, default=0)
    steps = np.diff(np.unique(pts)) if pts else np.zeros(0)
    declared = track_seconds(stream)
    if scan.complete and pts:
        step = scan.last_duration or (float(np.median(steps)) if steps.size else 0)
        duration = float((max(pts) - start + step) * tb)
    elif declared is not None:
        duration = declared
    else:
        duration = container.duration / 1_000_000 if container.duration else math.nan
    num_frames = scan.packets if scan.complete else (stream.frames or None)
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
    info = VideoInfo(path=path, width=int(width), height=int(height), fps=fps, duration_s=duration,
                     num_frames=num_frames, rotation=rotation, variable_frame_rate=_is_vfr(steps),
                     has_audio=bool(container.streams.audio), codec=stream.codec_context.name,
                     declared_duration_s=declared)
    return info, scan


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
        raise NoVideoTrackError(path, "no video track in file: no audio or video track was found (a damaged or truncated "
                              "file, e.g. an mp4/mov whose index is missing, or not a video)")
    if not streams:
        held = "only a cover picture" if container.streams.video else "only audio"
        raise NoVideoTrackError(path, f"no video track in file (the {container.format.name} container holds {held})")
    stream = streams[0]
    if stream.codec_context is None:
        raise DataError(path, f"unsupported video codec: the {container.format.name} container holds video in a "
                              "codec no decoder here can read")
    if not stream.codec_context.width or not stream.codec_context.height:
        raise DataError(path, "not a video file: the video track header has no frame size")
    return stream


@dataclass
class _Scan:
    """What the probe read: the video packets' timestamps (decode order), their number, the last one's
    duration, the first decoded frame, whether the track ended within `PROBE_PACKETS` packets
    (``complete``) and without a demuxing error (``clean``), the keyframes' timestamps, whether each of
    them resets the decoder (`emofuse.media.seek.random_access`), and where the data of every track ends
    (seconds; meaningful when complete)."""

    pts: list[int]
    packets: int
    last_duration: int
    first: Any
    complete: bool
    clean: bool = False
    keyframes: list[int] = field(default_factory=list)
    random_access: bool = False
    data_end: float = 0.0


def _scan(path: Path, container, stream) -> _Scan:
    """Timestamps of the first `PROBE_PACKETS` video packets, one decoded frame, keyframes (see `_Scan`).
    Every track is demuxed (only the video is decoded, once) so that the end of the file's data is known."""
    from emofuse.media.seek import SEEKABLE_CODECS, random_access

    scan = _Scan([], 0, 0, None, False)
    codec = stream.codec_context.name
    scan.random_access = codec in SEEKABLE_CODECS
    extradata = stream.codec_context.extradata
    ends: dict[int, tuple[int, Any]] = {}  # per track: the largest pts + duration (ticks) and its time base
    try:
        for packet in container.demux():
            pts, index = packet.pts, packet.stream_index
            if pts is not None and packet.time_base is not None:
                end = pts + (packet.duration or 0)
                if index not in ends or end > ends[index][0]:
                    ends[index] = (end, packet.time_base)
            if index != stream.index:
                continue
            scan.packets += packet.size > 0  # the empty packet at the end only flushes the decoder
            if packet.pts is not None:
                scan.pts.append(int(packet.pts))
                scan.last_duration = int(packet.duration or 0)
                if packet.is_keyframe and packet.size > 0:
                    scan.keyframes.append(int(packet.pts))
                    scan.random_access = scan.random_access and random_access(codec, extradata, bytes(packet))
            if scan.first is None:
                scan.first = next(iter(packet.decode()), None)
            if scan.packets >= PROBE_PACKETS and scan.first is not None:
                break
        else:
            scan.complete = scan.clean = True
    except Exception as exc:  # damage: reported by the decoder later if a frame came out
        if scan.first is None:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise DataError(path, f"corrupt video: no frame could be decoded ({reason})") from exc
        scan.complete = True
    if scan.first is None:
        raise DataError(path, "the video track holds no decodable frame (corrupt or not a video)")
    scan.data_end = max([0.0] + [float(end * tb) for end, tb in ends.values()])  # = the max over packets
    return scan


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


def _warn(path: Path, message: str, level: int = 3) -> None:
    warnings.warn(f"{path}: {message}", VideoWarning, stacklevel=level)
