"""Transcripts with word timestamps, and their alignment with audio feature frames.

A `TimedTranscript` is what speech recognition heard in one clip: the text and each word with its
start and end in seconds (`Word`). It is stored as plain JSON (`TimedTranscript.to_dict` /
`from_dict`, every field checked on reading; nothing is unpickled); `emofuse.inference.asr.
cached_timed_transcript` keeps one such file per clip in the cache.

`word_frame_spans` maps each word onto the frames of an audio feature sequence at a given frame
rate (e.g. 50 frames/s for the ``whisper`` states, 100 for eGeMAPS): frame ``i`` covers
``[i / rate, (i + 1) / rate)`` seconds, and a word covers the frames its interval overlaps.
`frame_word_index` is the reverse view: for each frame, the word spoken there (or -1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from emofuse.errors import DataError

if TYPE_CHECKING:
    import numpy as np

#: version of the stored JSON layout
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Word:
    """One recognised word: its text (as the recogniser wrote it, without surrounding spaces),
    start and end in seconds from the start of the clip, and the recogniser's probability."""

    word: str
    start: float
    end: float
    probability: float | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.start) and math.isfinite(self.end)) or self.start < 0 or self.end < self.start:
            raise ValueError(f"word {self.word!r}: bad times start={self.start} end={self.end}")


@dataclass(frozen=True)
class TimedTranscript:
    """The transcript of one clip: ``text``, its ``words`` (empty when recognised without word
    timestamps), and ``seconds``, the time recognition took (None when not measured)."""

    text: str
    words: tuple[Word, ...] = ()
    seconds: float | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (`from_dict` reads it back)."""
        words = [{"word": w.word, "start": round(w.start, 3), "end": round(w.end, 3),
                  **({"probability": round(w.probability, 4)} if w.probability is not None else {})}
                 for w in self.words]
        return {"format": FORMAT_VERSION, "text": self.text, "words": words, "seconds": self.seconds, **self.meta}

    @classmethod
    def from_dict(cls, data: Any, source: Any = None) -> TimedTranscript:
        """Read a dict written by `to_dict`; a malformed one raises DataError naming ``source``."""
        if not isinstance(data, dict):
            raise DataError(source, f"a transcript must be a JSON object, got {type(data).__name__}")
        text = data.get("text")
        if not isinstance(text, str):
            raise DataError(source, "transcript field 'text' missing or not a string")
        raw_words = data.get("words", [])
        if not isinstance(raw_words, list):
            raise DataError(source, "transcript field 'words' must be a list")
        words = tuple(_word_from_dict(w, i, source) for i, w in enumerate(raw_words))
        seconds = data.get("seconds")
        if seconds is not None and (not _is_number(seconds) or seconds < 0):
            raise DataError(source, f"transcript field 'seconds' must be a non-negative number, got {seconds!r}")
        meta = {k: v for k, v in data.items() if k not in ("format", "text", "words", "seconds")}
        return cls(text=text, words=words, seconds=None if seconds is None else float(seconds), meta=meta)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _word_from_dict(item: Any, index: int, source: Any) -> Word:
    where = f"word #{index}"
    if not isinstance(item, dict):
        raise DataError(source, f"{where}: must be an object with word/start/end")
    word, start, end, prob = item.get("word"), item.get("start"), item.get("end"), item.get("probability")
    if not isinstance(word, str):
        raise DataError(source, f"{where}: 'word' missing or not a string")
    if not (_is_number(start) and _is_number(end)) or start < 0 or end < start:
        raise DataError(source, f"{where} {word!r}: needs numbers 0 <= start <= end, got start={start!r} end={end!r}")
    if prob is not None and not _is_number(prob):
        raise DataError(source, f"{where} {word!r}: 'probability' must be a number")
    return Word(word=word, start=float(start), end=float(end), probability=None if prob is None else float(prob))


def word_frame_spans(words: Sequence[Word], frame_rate: float, num_frames: int | None = None) -> np.ndarray:
    """Frame indices ``[W, 2]`` (int64: first frame, one past the last) of each word at ``frame_rate``
    frames per second: the frames whose interval ``[i / rate, (i + 1) / rate)`` overlaps the word.

    A word always gets at least one frame (the one holding its start). With ``num_frames`` the spans
    are clipped to the sequence; a word starting at or after its end gets the empty span
    ``(num_frames, num_frames)``.
    """
    import numpy as np

    if not (math.isfinite(frame_rate) and frame_rate > 0):
        raise ValueError(f"frame_rate must be a positive number of frames per second, got {frame_rate}")
    spans = np.zeros((len(words), 2), dtype=np.int64)
    eps = 1e-9  # a word ending exactly on a frame boundary does not reach into the next frame
    for i, w in enumerate(words):
        first = int(math.floor(w.start * frame_rate + eps))
        last = max(first + 1, int(math.ceil(w.end * frame_rate - eps)))
        spans[i] = (first, last)
    if num_frames is not None:
        if num_frames < 0:
            raise ValueError(f"num_frames must be >= 0, got {num_frames}")
        spans = np.minimum(spans, num_frames)
    return spans


def frame_word_index(words: Sequence[Word], frame_rate: float, num_frames: int) -> np.ndarray:
    """For each of ``num_frames`` frames, the index of the word spoken there (int64 ``[T]``, -1 where
    no word is). Where two words share a frame, the later word wins."""
    import numpy as np

    index = np.full(int(num_frames), -1, dtype=np.int64)
    for i, (first, last) in enumerate(word_frame_spans(words, frame_rate, num_frames)):
        index[first:last] = i
    return index
