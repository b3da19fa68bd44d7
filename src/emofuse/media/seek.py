"""Sampled frames by seeking: decode from the keyframe before each wanted frame, not from the start.

`emofuse.media.video.iter_frames` uses this for count and rate samplers. To read 7 frames at 2 fps
from a 3.2 s 720p H.264 clip with a keyframe every second, decoding from the start decodes all 97
frames; decoding from the keyframe before each chosen frame decodes 55. The frames are the same:

* which frames are chosen is worked out from the packet timestamps that `probe_video` already read,
  by the same nearest-time rule as the decoder (`choose`), before anything is decoded;
* only keyframes that reset the decoder are seeked to: H.264 and HEVC IDR pictures (the NAL unit types
  are read from the packet), VP8 and VP9 key frames. Other codecs, or a track with any other
  keyframe, are decoded from the start as before;
* every frame decoded after a seek must carry the timestamp expected at its place; any difference,
  or a decoding error, makes the caller start again from the start of the file (`SeekFailed`).

It is used only when the probe read the whole video track without an error (at most
`emofuse.media.video.PROBE_PACKETS` packets, every packet timestamped, no two alike) and when it
saves at least `MIN_SAVED` decoded frames. Frames that are not decoded are not checked: damage inside
a skipped frame, which would end a decode from the start early, goes unseen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

#: a seeking plan is used only when it decodes at least this many frames fewer than decoding from the start
MIN_SAVED = 8
#: codecs whose keyframes (or, for H.264 / HEVC, whose IDR keyframes) reset the decoder
SEEKABLE_CODECS = ("h264", "hevc", "vp8", "vp9")


class SeekFailed(Exception):
    """A decoded frame was not the one expected, or decoding failed: decode from the start instead."""


@dataclass
class SeekPlan:
    """What to decode: presentation timestamps of the track in order and their times, the frames chosen
    (indices into them, one per wanted time, repeats allowed), whether a decoder from the start reaches
    the end of the track and how many frames it chose before that end, and the keyframes' indices."""

    pts: list[int]
    times: list[float]
    chosen: list[int]
    reaches_end: bool
    before_end: int
    keyframes: list[int]


def random_access(codec: str, extradata: bytes | None, data: bytes) -> bool:
    """Whether a keyframe packet resets the decoder: an IDR picture (H.264 NAL type 5, HEVC 19/20), or
    any VP8 / VP9 key frame. Other codecs: False."""
    if codec in ("vp8", "vp9"):
        return True
    if codec not in ("h264", "hevc"):
        return False
    types = _nal_types(extradata, data, codec)
    return bool(types & ({5} if codec == "h264" else {19, 20}))


def _nal_types(extradata: bytes | None, data: bytes, codec: str) -> set[int]:
    """NAL unit types of a packet: length-prefixed (avcC / hvcC extradata) or Annex B start codes."""
    def kind(header: int) -> int:
        return header & 0x1F if codec == "h264" else (header >> 1) & 0x3F

    types: set[int] = set()
    if extradata and extradata[0] == 1 and len(extradata) > 21:  # avcC / hvcC: lengths before each unit
        size = (extradata[4] if codec == "h264" else extradata[21]) % 4 + 1
        at = 0
        while at + size < len(data):
            length = int.from_bytes(data[at:at + size], "big")
            types.add(kind(data[at + size]))
            at += size + length
        return types
    at = data.find(b"\x00\x00\x01")
    while at != -1 and at + 3 < len(data):
        types.add(kind(data[at + 3]))
        at = data.find(b"\x00\x00\x01", at + 3)
    return types


def choose(times: list[float], wanted: Iterator[float], pad: bool,
           end: Callable[[float], float]) -> tuple[list[int], int | None, int]:
    """The nearest-time rule of `emofuse.media.video._nearest` on known frame ``times``: the chosen indices,
    the last index a decoder from the start decodes (None: it reaches the end of the track), and how many
    were chosen before that end. After the end, wanted times take the last frame while ``pad``, or while
    before ``end(last frame's time)``."""
    chosen: list[int] = []
    prev = None
    want = next(wanted, None)
    for cur, t in enumerate(times):
        while want is not None and t >= want:
            chosen.append(prev if prev is not None and want - times[prev] <= t - want else cur)
            want = next(wanted, None)
        if want is None:
            return chosen, cur, len(chosen)
        prev = cur
    before_end = len(chosen)
    if prev is not None:
        stop = end(times[prev])
        while want is not None and (pad or want < stop):
            chosen.append(prev)
            want = next(wanted, None)
    return chosen, None, before_end


def _segments(plan: SeekPlan) -> Iterator[tuple[int, bool]]:
    """``(chosen frame, whether to seek to its keyframe first)`` for each distinct chosen frame, ascending:
    seek when a keyframe lies after the frame the decoder would give next."""
    pos = None
    for k in sorted(set(plan.chosen)):
        key = max(i for i in plan.keyframes if i <= k)
        yield k, pos is None or key > pos
        pos = k + 1


def decoded_count(plan: SeekPlan) -> int:
    """How many frames the plan decodes."""
    total, pos = 0, 0
    for k, seek in _segments(plan):
        if seek:
            pos = max(i for i in plan.keyframes if i <= k)
        total += k + 1 - pos
        pos = k + 1
    return total


def decode(container, stream, plan: SeekPlan) -> Iterator[tuple[int, Any]]:
    """``(index, av.VideoFrame)`` for each distinct chosen frame, ascending; `SeekFailed` on any surprise."""
    frames = _frames(container, stream)  # replaced at the first seek
    pos = 0
    for k, seek in _segments(plan):
        if seek:
            pos = max(i for i in plan.keyframes if i <= k)
            frames.close()
            try:
                container.seek(plan.pts[pos], stream=stream, backward=True, any_frame=False)
            except Exception as exc:  # av.error.*: a container that cannot seek there
                raise SeekFailed(str(exc)) from exc
            frames = _frames(container, stream)
        while pos <= k:
            frame = next(frames, None)
            if frame is None or frame.pts != plan.pts[pos]:
                raise SeekFailed(f"frame {pos}: timestamp {getattr(frame, 'pts', None)}, expected {plan.pts[pos]}")
            pos += 1
        yield k, frame


def _frames(container, stream) -> Iterator[Any]:
    try:
        for packet in container.demux(stream):
            yield from packet.decode()
    except Exception as exc:  # av.error.* mid-stream: the decoder from the start reports it
        raise SeekFailed(str(exc)) from exc


def make_plan(scan: Any, stream, wanted: Iterator[float], pad: bool, end: Callable[[float], float],
              limit: float) -> SeekPlan | None:
    """A `SeekPlan` when seeking is safe and saves at least `MIN_SAVED` frames (see the module docstring),
    else None. ``scan`` is the probe's record of the track's packets (`emofuse.media.video._Scan`)."""
    if not (scan.clean and scan.complete and scan.random_access and scan.keyframes and scan.pts):
        return None
    if stream.start_time is None or len(scan.pts) != scan.packets or len(set(scan.pts)) != len(scan.pts):
        return None
    pts = sorted(scan.pts)
    times = [float((p - stream.start_time) * stream.time_base) for p in pts]
    chosen, last, before_end = choose(times, wanted, pad, end)
    from_start = len(pts) if last is None else last + 1
    if not chosen or max(times[:from_start]) > limit:
        return None  # nothing to decode, or the decoder from the start raises the error
    rank = {p: i for i, p in enumerate(pts)}
    keyframes = sorted(rank[p] for p in scan.keyframes)
    if keyframes[0] != 0:
        return None
    plan = SeekPlan(pts, times, chosen, last is None, before_end, keyframes)
    return plan if from_start - decoded_count(plan) >= MIN_SAVED else None
