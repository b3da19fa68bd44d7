"""``emofuse predict FILE --segments 2.0[:1.0]|vad [--out timeline.json|.csv] [--plot timeline.png]``: the
emotion timeline of one long recording (`emofuse.inference.timeline`), used by `emofuse.cli.predict`."""

from __future__ import annotations

import argparse
import math
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from emofuse.errors import ConfigError

#: the formats ``--out`` writes, by file suffix
OUT_SUFFIXES = (".json", ".csv")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The timeline options of ``emofuse predict``."""
    g = p.add_argument_group("timelines of long media", "One prediction per window (or per stretch of speech) of "
                             "one FILE, streamed so that an hour of audio needs no more memory than a minute "
                             "(docs/timelines.md).")
    g.add_argument("--segments", metavar="WINDOW[:HOP]|vad", help="predict windows of WINDOW seconds every HOP "
                   "seconds (default HOP: WINDOW), e.g. 2.0:1.0; or 'vad': one prediction per stretch of speech. "
                   "Windows without enough speech get the status no_speech / too_short, never a label")
    g.add_argument("--out", metavar="FILE", help="with --segments: write the timeline as .json or .csv; with --batch: the "
                   "output folder")
    g.add_argument("--plot", metavar="PNG", help="with --segments: draw the probabilities over time and the label band")


def parse_segments(spec: str) -> tuple[float | None, float | None, bool]:
    """``--segments`` as ``(window, hop, vad)``: "2", "2.0:1.0" or "vad" (`ConfigError` otherwise)."""
    text = spec.strip().lower()
    if text == "vad":
        return None, None, True
    window_text, sep, hop_text = text.partition(":")
    try:
        window = float(window_text)
        hop = float(hop_text) if sep else None
    except ValueError:
        raise ConfigError(f"--segments must be WINDOW[:HOP] in seconds (e.g. 2.0 or 2.0:1.0) or 'vad', "
                          f"got {spec!r}") from None
    for value in (window, hop):
        if value is not None and (not math.isfinite(value) or value <= 0):
            raise ConfigError(f"--segments: window and hop are positive seconds, got {spec!r}")
    if hop is not None and hop > window:
        raise ConfigError(f"--segments: the hop ({hop:g} s) must not exceed the window ({window:g} s)")
    return window, hop, False


def check_arguments(args: argparse.Namespace) -> tuple[float | None, float | None, bool] | None:
    """The parsed ``--segments`` (None without it), checked with the other options before any model loads."""
    if args.segments is None:
        if args.out or args.plot:
            raise ConfigError("--out and --plot write a timeline: give --segments WINDOW[:HOP] or --segments vad")
        return None
    spec = parse_segments(args.segments)
    if len(args.files) != 1:
        raise ConfigError(f"--segments makes the timeline of one file, got {len(args.files)} files")
    clashing = [opt for opt, on in (("--text", args.text is not None), ("--transcripts", bool(args.transcripts)),
                                    ("--source", bool(args.source)), ("--json", bool(args.json)),
                                    ("--labels", bool(args.labels)), ("--explain", bool(args.explain)))
                if on]
    if clashing:
        raise ConfigError(f"--segments does not combine with {', '.join(clashing)} (write the timeline with --out)")
    if args.out and Path(args.out).suffix.lower() not in OUT_SUFFIXES:
        raise ConfigError(f"--out writes {' or '.join(OUT_SUFFIXES)} (by its suffix), got {args.out!r}")
    if args.plot and Path(args.plot).suffix.lower() != ".png":
        raise ConfigError(f"--plot writes a .png, got {args.plot!r}")
    return spec


def run_timeline(args: argparse.Namespace, spec: tuple[float | None, float | None, bool]) -> int:
    """Predict the timeline, write ``--out`` / ``--plot``, print it (or a summary when written).
    Exit 0 when some window got a label, 2 when none did."""
    from emofuse.cli.common import check_output, checkpoint_files
    from emofuse.inference.predictor import Predictor
    from emofuse.inference.timeline import predict_timeline

    inputs = [*args.files, *checkpoint_files(args.model)]
    check_output(args.out, inputs, "--out")
    check_output(args.plot, inputs, "--plot")
    window, hop, vad = spec
    predictor = Predictor(args.model, asr=not args.no_asr, audio_track=args.audio_track,
                          min_speech=args.min_speech, threshold=args.threshold)
    timeline = predict_timeline(predictor, args.files[0], window=2.0 if window is None else window, hop=hop, vad=vad,
                                max_duration=args.max_duration, audio_track=args.audio_track)
    if args.out:
        (timeline.to_csv if args.out.lower().endswith(".csv") else timeline.to_json)(args.out)
    if args.plot:
        timeline.plot(args.plot)
    _print(timeline, summary=bool(args.out))
    return 0 if any(s.label for s in timeline.segments) else 2


def _print(timeline: Any, summary: bool) -> None:
    """Each segment on a line (start, end, label or status, probability), or counts only (``summary``)."""
    if not summary:
        for s in timeline.segments:
            what = f"{s.label:<10} {s.probabilities[s.label]:.2f}" if s.label else s.status
            flag = " (uncertain)" if s.status == "uncertain" else ""
            print(f"{s.start:9.2f} {s.end:9.2f}  {what}{flag}")
    counts = Counter(s.label or s.status for s in timeline.segments)
    shown = ", ".join(f"{k} {n}" for k, n in counts.most_common())
    print(f"{timeline.path}: {len(timeline.segments)} segments over {timeline.duration:.1f} s ({timeline.mode}): "
          f"{shown}", file=sys.stderr if not summary else sys.stdout)
