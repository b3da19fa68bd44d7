"""Which frames of a video to decode: `FrameSampler` and its named presets.

A sampler picks frames by *count* (``count`` frames evenly over ``span_s`` seconds or the whole clip:
the centre of each of ``count`` equal segments), by *rate* (frames at ``t = i / rate`` from the start,
the first ``count`` of them when ``count`` is set, those before ``span_s`` when it is set), or *all*
(every frame, at most ``max_frames``, those before ``span_s`` when it is set). `emofuse.media.video`
decodes them: each wanted time gets the decoded frame whose presentation time is nearest.

Presets (`SAMPLERS`): ``"2fps_8"`` (8 frames at 2 fps, Algorithm 2), ``"15_over_3.6s"`` (15 frames
evenly over the first 3.6 s), ``"all"``. A sampler's `FrameSampler.name` reads back through
`get_sampler`, so ``get_sampler(s.name) == s`` for every sampler.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields
from typing import Any, Iterator, Literal, Mapping

from emofuse.errors import ConfigError

__all__ = ["DEFAULT_MAX_FRAMES", "SAMPLERS", "FrameSampler", "get_sampler", "list_samplers"]

#: the most frames the "all" mode decodes from one file (about 100 s at 30 fps)
DEFAULT_MAX_FRAMES = 3000
_MODES = ("count", "rate", "all")
_NAME = re.compile(r"^(?:(?P<count>\d+)_over_(?P<cspan>[0-9.e+-]+)s|(?P<even>\d+)_even"
                   r"|(?P<rate>[0-9.e+-]+)fps(?:_(?P<rcount>\d+))?(?:_over_(?P<rspan>[0-9.e+-]+)s)?"
                   r"|all(?:_over_(?P<aspan>[0-9.e+-]+)s)?)(?:_max(?P<max>\d+))?$")


@dataclass(frozen=True)
class FrameSampler:
    """Which frames to decode; see the module docstring. Invalid settings raise `ConfigError`."""

    mode: Literal["count", "rate", "all"]
    count: int | None = None
    rate: float | None = None
    span_s: float | None = None
    max_frames: int = DEFAULT_MAX_FRAMES

    def __post_init__(self) -> None:
        if self.mode not in _MODES:
            raise ConfigError(f"frame sampler mode must be one of {', '.join(_MODES)}; got {self.mode!r}")
        _check_number("count", self.count, integer=True)
        _check_number("rate", self.rate)
        _check_number("span_s", self.span_s)
        _check_number("max_frames", self.max_frames, integer=True, optional=False)
        if self.mode == "count" and (self.count is None or self.rate is not None):
            raise ConfigError("a 'count' frame sampler needs count (and no rate), e.g. count=15, span_s=3.6")
        if self.mode == "rate" and self.rate is None:
            raise ConfigError("a 'rate' frame sampler needs rate (frames per second), e.g. rate=2, count=8")
        if self.mode == "all" and (self.count is not None or self.rate is not None):
            raise ConfigError("the 'all' frame sampler takes no count or rate (bound it with span_s or max_frames)")
        for name in ("rate", "span_s"):  # one spelling per sampler: 2 and 2.0 give the same dict and name
            if getattr(self, name) is not None:
                object.__setattr__(self, name, float(getattr(self, name)))

    @property
    def name(self) -> str:
        """A short name, e.g. ``"2fps_8"`` or ``"15_over_3.6s"``; `get_sampler` reads it back."""
        span = "" if self.span_s is None else f"_over_{_num(self.span_s)}s"
        if self.mode == "count":
            text = f"{self.count}{span}" if span else f"{self.count}_even"
        elif self.mode == "rate":
            text = f"{_num(self.rate)}fps" + ("" if self.count is None else f"_{self.count}") + span
        else:
            text = "all" + span
        return text if self.max_frames == DEFAULT_MAX_FRAMES else f"{text}_max{self.max_frames}"

    @property
    def read_seconds(self) -> float:
        """How far into the file decoding may need to go: ``span_s``, or the last time of a count at a rate;
        ``inf`` when decoding goes on to the end of the file."""
        if self.span_s is not None:
            return self.span_s
        if self.mode == "rate" and self.count is not None:
            return (self.count - 1) / self.rate
        return math.inf

    def wanted_times(self, duration_s: float | None) -> Iterator[float]:
        """The wanted presentation times in seconds, ascending (endless for a rate without count or span:
        the decoder stops at the end of the file). ``duration_s`` is needed for a count without span."""
        if self.mode == "count":
            span = self.span_s if self.span_s is not None else duration_s
            if span is None:
                raise ValueError("the clip's duration is needed to spread frames over the whole clip")
            return iter([(i + 0.5) * span / self.count for i in range(self.count)])
        if self.mode == "rate":
            return _rate_times(self.rate, self.count, self.span_s)
        raise ValueError("the 'all' sampler takes every frame; it has no wanted times")

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FrameSampler:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown frame sampler field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        if "mode" not in data:
            raise ConfigError("a frame sampler needs a mode ('count', 'rate' or 'all')")
        return cls(**dict(data))


def _num(value: float) -> str:
    """The shortest text that reads back as ``value`` (``2``, ``3.6``, ``0.3333333333333333``)."""
    text = f"{value:g}"
    return text if float(text) == value else repr(value)


def _rate_times(rate: float, count: int | None, span_s: float | None) -> Iterator[float]:
    i = 0
    while count is None or i < count:
        t = i / rate
        if span_s is not None and t >= span_s:
            return
        yield t
        i += 1


def _check_number(field: str, value: Any, *, integer: bool = False, optional: bool = True) -> None:
    if value is None and optional:
        return
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not value > 0 or not math.isfinite(value):
        what = "a positive integer" if integer else "a positive number"
        raise ConfigError(f"frame sampler {field} must be {what}, got {value!r}")


SAMPLERS: dict[str, FrameSampler] = {
    "2fps_8": FrameSampler("rate", count=8, rate=2.0),
    "15_over_3.6s": FrameSampler("count", count=15, span_s=3.6),
    "all": FrameSampler("all"),
}


def list_samplers() -> list[str]:
    """The preset names."""
    return sorted(SAMPLERS)


def get_sampler(name_or_dict: str | Mapping[str, Any] | FrameSampler) -> FrameSampler:
    """A preset by name, any sampler by its `FrameSampler.name` (``"4fps"``, ``"16_even"``, ``"all_max500"``),
    a dict of fields (`FrameSampler.from_dict`), or a `FrameSampler` itself."""
    if isinstance(name_or_dict, FrameSampler):
        return name_or_dict
    if isinstance(name_or_dict, Mapping):
        return FrameSampler.from_dict(name_or_dict)
    if not isinstance(name_or_dict, str):
        raise ConfigError(f"a frame sampler is a name, a dict or a FrameSampler, got {type(name_or_dict).__name__}")
    if name_or_dict in SAMPLERS:
        return SAMPLERS[name_or_dict]
    sampler = _parse_name(name_or_dict.strip())
    if sampler is None:
        raise ConfigError(f"unknown frame sampler {name_or_dict!r}; presets: {', '.join(list_samplers())} "
                          "(or a name like '4fps', '4fps_16', '16_even', '15_over_3.6s', 'all_max500')")
    return sampler


def _parse_name(text: str) -> FrameSampler | None:
    match = _NAME.match(text)
    if match is None:
        return None
    g = match.groupdict()
    extra = {} if g["max"] is None else {"max_frames": int(g["max"])}
    try:
        if g["count"] is not None:
            return FrameSampler("count", count=int(g["count"]), span_s=float(g["cspan"]), **extra)
        if g["even"] is not None:
            return FrameSampler("count", count=int(g["even"]), **extra)
        if g["rate"] is not None:
            return FrameSampler("rate", rate=float(g["rate"]), count=None if g["rcount"] is None else int(g["rcount"]),
                                span_s=None if g["rspan"] is None else float(g["rspan"]), **extra)
        return FrameSampler("all", span_s=None if g["aspan"] is None else float(g["aspan"]), **extra)
    except ValueError:
        return None
