"""Emotion timelines for long media: one prediction per window (or per stretch of speech) with its times.

`predict_timeline(predictor, path, window=2.0, hop=1.0)` streams the file's audio block by block
(`emofuse.media.stream.iter_audio`: never decoded whole, so memory stays flat for an hour of audio), cuts
windows of ``window`` seconds every ``hop`` seconds, and predicts each one through the predictor's own
input plan (`Predictor.predict_waveform`). A window with too little speech gets the status "no_speech" or
"too_short" and no label, never a made-up one (the predictor's speech check, `emofuse.media.vad`).

``vad=True`` follows the speech instead: a first streamed pass runs Silero VAD over the file, stretches
of speech closer than `VAD_MERGE_GAP` are joined, padded by `VAD_PAD`, and cut into parts of at most
`VAD_MAX_SEGMENT` seconds; a second streamed pass predicts each one. The silences between them are
segments with status "no_speech".

The result, `Timeline`, writes JSON (`to_dict`), CSV (`to_csv`) and a PNG plot (`plot`).
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emofuse.errors import ConfigError, DataError

SAMPLE_RATE = 16000
#: VAD mode: speech stretches closer than this (s) are one segment; segments are padded by `VAD_PAD` s
#: each side (RAVDESS clips, which the shipped models learned from, hold about 1 s of room noise around the
#: sentence; on the timeline check 1.0 s scored 0.74 against 0.55 for 0.25 s, docs/timelines.md) and cut into
#: equal parts of at most `VAD_MAX_SEGMENT` s (the models were trained on 1-10 s clips)
VAD_MERGE_GAP = 0.5
VAD_PAD = 1.0
VAD_MAX_SEGMENT = 10.0
#: decoding block (s) in the streamed passes
BLOCK_SECONDS = 30.0


@dataclass
class Segment:
    """One stretch of the timeline: its times (s), a label and every class's probability when
    ``status`` is "ok" or "uncertain", else ``label`` None, no probabilities and a ``message``."""

    start: float
    end: float
    label: str | None
    probabilities: dict[str, float]
    status: str
    message: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"start": round(self.start, 4), "end": round(self.end, 4), "label": self.label,
                "probabilities": self.probabilities, "status": self.status, "message": self.message}


@dataclass
class Timeline:
    """Predictions along one file. ``mode`` is "fixed" (windows of ``window`` s every ``hop`` s) or
    "vad" (speech segments; ``window`` is then the longest segment and ``hop`` None)."""

    path: str
    window: float
    hop: float | None
    mode: str
    labels: list[str]
    segments: list[Segment] = field(default_factory=list)
    duration: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "window": self.window, "hop": self.hop, "mode": self.mode,
                "duration": round(self.duration, 4), "labels": list(self.labels),
                "segments": [s.to_dict() for s in self.segments]}

    def to_json(self, path: str | Path) -> Path:
        """Write `to_dict` as JSON (atomically)."""
        from emofuse.atomic import atomic_write_text

        return atomic_write_text(path, json.dumps(self.to_dict(), indent=1) + "\n")

    def to_csv(self, path: str | Path) -> Path:
        """One row per segment: start, end, status, label, one probability column per class (empty
        without a label), message; written atomically."""
        import csv
        import io

        from emofuse.atomic import atomic_write_text

        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["start", "end", "status", "label", *(f"p_{lab}" for lab in self.labels), "message"])
        for s in self.segments:
            probs = [f"{s.probabilities[lab]:.6f}" if lab in s.probabilities else "" for lab in self.labels]
            writer.writerow([f"{s.start:.3f}", f"{s.end:.3f}", s.status, s.label or "", *probs, s.message or ""])
        return atomic_write_text(path, out.getvalue())

    def plot(self, path: str | Path) -> Path:
        """A PNG: each class's probability over time (stacked areas at the segment centres; zero where
        there is no label) above a band of the label of each segment (grey: no label)."""
        from emofuse.inference.timeline_plot import plot_timeline

        return plot_timeline(self, path)


def predict_timeline(predictor: Any, path: str | Path, *, window: float = 2.0, hop: float | None = None,
                     vad: bool = False, max_duration: float | None = None, audio_track: int | None = None
                     ) -> Timeline:
    """The emotion timeline of a long recording (see the module docstring).

    Args:
        predictor: an `emofuse.inference.predictor.Predictor` (any checkpoint reading audio).
        path: audio or video file.
        window: window length in seconds (fixed mode).
        hop: seconds between window starts (None: ``window``, windows side by side).
        vad: follow the speech (Silero VAD) instead of fixed windows.
        max_duration: refuse longer files (None: `emofuse.media.stream.DEFAULT_STREAM_MAX_DURATION`, 4 h).
        audio_track: the track of a file with several (from 1; None: the one with the most speech).

    Windows are predicted one at a time, each through the predictor's input plan (its level normalisation
    and test-time views transform each window's waveform before its features, so Whisper's own batching,
    about 25 % faster per 2 s window here, is not used).

    Raises:
        ConfigError: a window or hop that is not a positive number of seconds (hop at most the window).
        DataError: naming the file, when it cannot be decoded at all.
    """
    window, hop = check_window(window, hop)
    path = Path(path)
    if vad:
        return _vad_timeline(predictor, path, max_duration, audio_track)
    timeline = Timeline(str(path), window, hop, "fixed", list(predictor.labels))
    blocks = _blocks(path, max_duration, audio_track, timeline)
    cuts = fixed_windows(blocks, window, hop)
    timeline.segments = [_predict_cut(predictor, path, cut) for cut in cuts]
    return timeline


def check_window(window: Any, hop: Any) -> tuple[float, float]:
    """``(window, hop)`` checked: positive finite seconds, hop (default: the window) at most the window."""
    def seconds(value: Any, what: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise ConfigError(f"the timeline {what} must be a positive number of seconds, got {value!r}")
        return float(value)

    window = seconds(window, "window")
    hop = window if hop is None else seconds(hop, "hop")
    if window < 0.1 or hop > window:
        raise ConfigError(f"the timeline window must be at least 0.1 s and the hop at most the window, "
                          f"got window {window:g} s, hop {hop:g} s")
    return window, hop


def _blocks(path: Path, max_duration: float | None, audio_track: int | None, timeline: Timeline
            ) -> Iterator[np.ndarray]:
    """The streamed blocks of ``path``; ``timeline.duration`` grows as they are read."""
    from emofuse.media.stream import iter_audio

    for block in iter_audio(path, block_seconds=BLOCK_SECONDS, max_duration=max_duration, audio_track=audio_track):
        timeline.duration += block.size / SAMPLE_RATE
        yield block


def fixed_windows(blocks: Iterable[np.ndarray], window: float, hop: float
                  ) -> Iterator[tuple[float, float, np.ndarray]]:
    """``(start_s, end_s, samples)`` windows of ``window`` s every ``hop`` s over streamed ``blocks``;
    the last window ends at the end of the audio (shorter) when the full windows do not reach it.
    Holds only the samples from the current window's start on."""
    size, step = int(round(window * SAMPLE_RATE)), max(1, int(round(hop * SAMPLE_RATE)))
    buffer = np.zeros(0, dtype=np.float32)
    offset = 0  # sample index of buffer[0]
    start = 0  # next window's first sample
    covered = 0  # end of the last emitted window
    for block in blocks:
        buffer = np.concatenate([buffer, block]) if buffer.size else np.asarray(block, dtype=np.float32)
        while start + size <= offset + buffer.size:
            lo = start - offset
            yield start / SAMPLE_RATE, (start + size) / SAMPLE_RATE, buffer[lo : lo + size].copy()
            covered, start = start + size, start + step
            drop = min(start - offset, buffer.size)
            buffer, offset = buffer[drop:], offset + drop
    total = offset + buffer.size
    if total > covered and start < total:  # the tail no full window reached
        lo = start - offset
        yield start / SAMPLE_RATE, total / SAMPLE_RATE, buffer[lo:].copy()


def _predict_cut(predictor: Any, path: Path, cut: tuple[float, float, np.ndarray]) -> Segment:
    """One window's `Segment`: a label and probabilities, or the status saying why there is none."""
    from emofuse.inference.predictor import Prediction

    start, end, wave = cut
    name = f"{path}@{start:.2f}-{end:.2f}s"
    try:
        pred = predictor.predict_waveform(wave, name=name)
    except DataError as exc:
        pred = Prediction.failed(name, exc)
    return Segment(start, end, pred.label if pred.ok else None, dict(pred.probabilities) if pred.ok else {},
                   pred.status, pred.message)


# --- voice-activity segments ---------------------------------------------------------------------------

def _vad_timeline(predictor: Any, path: Path, max_duration: float | None, audio_track: int | None) -> Timeline:
    timeline = Timeline(str(path), VAD_MAX_SEGMENT, None, "vad", list(predictor.labels))
    probs = _speech_probabilities(_blocks(path, max_duration, audio_track, timeline))
    from emofuse.media.vad import segments_from_probabilities

    duration = timeline.duration
    speech = vad_segments(segments_from_probabilities(probs, duration), duration)
    second = Timeline(str(path), VAD_MAX_SEGMENT, None, "vad", [])  # counts the second pass's duration apart
    cuts = cut_segments(_blocks(path, max_duration, audio_track, second), speech)
    predicted = [_predict_cut(predictor, path, cut) for cut in cuts]
    timeline.segments = with_gaps(predicted, duration)
    return timeline


def _speech_probabilities(blocks: Iterable[np.ndarray]) -> np.ndarray:
    """Silero's frame probabilities over streamed blocks, computed on rows of `emofuse.media.vad.ROW_SECONDS`
    exactly as `speech_probabilities` cuts a whole waveform (only the DC offset is removed per row)."""
    from emofuse.media.vad import FRAME, ROW_SECONDS, speech_probabilities

    row = int(ROW_SECONDS * SAMPLE_RATE) // FRAME * FRAME
    out: list[np.ndarray] = []
    buffer = np.zeros(0, dtype=np.float32)
    for block in blocks:
        buffer = np.concatenate([buffer, block])
        while buffer.size >= row:
            out.append(speech_probabilities(buffer[:row]))
            buffer = buffer[row:]
    if buffer.size:
        out.append(speech_probabilities(buffer))
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def vad_segments(found: list[tuple[float, float]], duration: float) -> list[tuple[float, float]]:
    """Speech stretches joined across gaps under `VAD_MERGE_GAP`, padded by `VAD_PAD` (never past the
    middle of a gap or the ends of the audio) and cut into equal parts of at most `VAD_MAX_SEGMENT` s."""
    joined: list[list[float]] = []
    for start, end in found:
        if joined and start - joined[-1][1] < VAD_MERGE_GAP:
            joined[-1][1] = end
        else:
            joined.append([start, end])
    padded = []
    for i, (start, end) in enumerate(joined):
        lo = 0.0 if i == 0 else (joined[i - 1][1] + start) / 2
        hi = duration if i == len(joined) - 1 else (end + joined[i + 1][0]) / 2
        padded.append((max(lo, start - VAD_PAD), min(hi, end + VAD_PAD)))
    parts = []
    for start, end in padded:
        n = max(1, math.ceil((end - start) / VAD_MAX_SEGMENT - 1e-9))
        parts += [(start + (end - start) * k / n, start + (end - start) * (k + 1) / n) for k in range(n)]
    return parts


def cut_segments(blocks: Iterable[np.ndarray], segments: list[tuple[float, float]]
                 ) -> Iterator[tuple[float, float, np.ndarray]]:
    """``(start, end, samples)`` of each of the sorted, disjoint ``segments`` from streamed blocks."""
    buffer, offset, i = np.zeros(0, dtype=np.float32), 0, 0
    bounds = [(int(round(s * SAMPLE_RATE)), int(round(e * SAMPLE_RATE))) for s, e in segments]
    for block in itertools.chain(blocks, [None]):
        if block is not None:
            buffer = np.concatenate([buffer, block]) if buffer.size else np.asarray(block, dtype=np.float32)
        while i < len(bounds) and (bounds[i][1] <= offset + buffer.size or block is None):
            lo, hi = bounds[i][0] - offset, min(bounds[i][1] - offset, buffer.size)
            if hi > lo:
                yield segments[i][0], segments[i][1], buffer[max(lo, 0) : hi].copy()
            i += 1
        keep_from = bounds[i][0] - offset if i < len(bounds) else buffer.size
        drop = max(0, min(keep_from, buffer.size))
        buffer, offset = buffer[drop:], offset + drop


def with_gaps(segments: list[Segment], duration: float, min_gap: float = 0.01) -> list[Segment]:
    """``segments`` (sorted) with the stretches between them as "no_speech" segments."""
    out: list[Segment] = []
    at = 0.0
    for seg in segments:
        if seg.start - at > min_gap:
            out.append(Segment(at, seg.start, None, {}, "no_speech", "no speech detected"))
        out.append(seg)
        at = seg.end
    if duration - at > min_gap:
        out.append(Segment(at, duration, None, {}, "no_speech", "no speech detected"))
    return out
