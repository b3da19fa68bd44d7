"""Word error rate and speed of the offline Whisper tiny.en speech recognition on RAVDESS speech.

Every RAVDESS clip says one of two known sentences (statement 01 "Kids are talking by the door",
02 "Dogs are sitting by the door"), so each transcript can be scored against it. Two decodings
are measured: ``plain`` (what ``emofuse predict`` runs when a text model gets no transcript) and
``words`` (the same model with word timestamps; its transcripts, with each word's start and end,
are what `emofuse.inference.asr.cached_timed_transcript` stores per clip).

    python -m emofuse.experiments.asr_wer --out docs/results/ravdess_asr_wer_2026-11-29.json

Per-clip transcripts (and the seconds each took) are cached by file content (``$EMOFUSE_CACHE``,
``asr-*`` folders), so an interrupted run continues where it stopped; the results file is written
atomically at the end. Timings are of recognition alone (decoded audio in, text out; the model is
loaded before the first clip).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger("emofuse.experiments.asr_wer")

DECODINGS = ("plain", "words")
RAVDESS_FOLDER = "ravdess-speech-16k"


def _group(rows: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    from emofuse.evaluation.wer import summarise

    groups: dict[str, list[Any]] = {}
    for row in rows:
        groups.setdefault(str(row[key]), []).append(row["_alignment"])
    return {k: summarise(v) for k, v in sorted(groups.items())}


def summarise_rows(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Overall, per-statement, per-emotion and per-intensity WER figures, seconds per clip and the
    most frequent substitutions of per-clip rows (each with its ``_alignment``)."""
    from emofuse.evaluation.wer import summarise

    seconds = [r["seconds"] for r in rows if r.get("seconds") is not None]
    subs = Counter(f"{ref} -> {hyp}" for r in rows for op, ref, hyp in r["_alignment"].ops if op == "S")
    dels = Counter(ref for r in rows for op, ref, _ in r["_alignment"].ops if op == "D")
    ins = Counter(hyp for r in rows for op, _, hyp in r["_alignment"].ops if op == "I")
    return {
        **summarise(r["_alignment"] for r in rows),
        "per_statement": _group(rows, "statement"), "per_emotion": _group(rows, "emotion"),
        "per_intensity": _group(rows, "intensity"), "per_gender": _group(rows, "gender"),
        "seconds_per_clip_median": statistics.median(seconds) if seconds else None,
        "seconds_per_clip_mean": statistics.fmean(seconds) if seconds else None,
        "seconds_per_clip_max": max(seconds) if seconds else None,
        "timed_clips": len(seconds),
        "top_substitutions": dict(subs.most_common(15)), "top_deletions": dict(dels.most_common(10)),
        "top_insertions": dict(ins.most_common(10)),
        "clips_with_errors": [{k: v for k, v in r.items() if not k.startswith("_")}
                              for r in rows if r["_alignment"].errors],
    }


def score_clips(samples: Sequence[Any], decoding: str, transcriber: Any, cache_dir: Path | None,
                progress: bool = True) -> list[dict[str, Any]]:
    """Transcribe (or read from the cache) every sample's audio and align it with its statement."""
    from emofuse.evaluation.wer import align_texts
    from emofuse.inference.asr import cached_timed_transcript
    from emofuse.media.audio import load_audio

    rows = []
    started = time.perf_counter()
    for i, sample in enumerate(samples, start=1):
        path = sample.sources["audio"]
        found = cached_timed_transcript(path, transcriber, lambda p=path: load_audio(p), cache_dir,
                                        word_timestamps=decoding == "words")
        reference = sample.meta["statement_text"]
        alignment = align_texts(reference, found.text)
        rows.append({"id": sample.id, "statement": sample.meta["statement"], "emotion": sample.label,
                     "intensity": sample.meta["intensity"], "gender": sample.meta["gender"],
                     "hypothesis": found.text, "errors": alignment.errors, "seconds": found.seconds,
                     "_alignment": alignment})
        if progress and (i % 50 == 0 or i == len(samples)):
            print(f"[asr_wer {decoding}] {i}/{len(samples)} clips, {time.perf_counter() - started:.0f} s",
                  file=sys.stderr, flush=True)
    return rows


def retime(samples: Sequence[Any], decodings: Sequence[str], transcriber: Any, n: int) -> dict[str, Any]:
    """Seconds per clip of each decoding on ``n`` clips spread over ``samples``, measured again without
    the cache, the decodings alternating clip by clip (so both see the same machine load)."""
    from emofuse.media.audio import load_audio

    chosen = list(samples)[:: max(1, len(samples) // max(1, n))][:n]
    seconds: dict[str, list[float]] = {d: [] for d in decodings}
    for sample in chosen:
        wave = load_audio(sample.sources["audio"])
        for decoding in decodings:
            start = time.perf_counter()
            transcriber.transcribe(wave, word_timestamps=decoding == "words")
            seconds[decoding].append(time.perf_counter() - start)
    return {"clips": len(chosen), **{d: {"median": statistics.median(v), "mean": statistics.fmean(v)}
                                     for d, v in seconds.items() if v}}


def run(data_root: Path, out: Path, *, decodings: Sequence[str] = DECODINGS, threads: int = 1,
        beam_size: int = 5, limit: int | None = None, cache_dir: Path | None = None,
        progress: bool = True, command: str = "", retime_clips: int = 0) -> dict[str, Any]:
    """Score every RAVDESS speech clip under ``data_root`` for each decoding; write ``out``."""
    from emofuse.atomic import atomic_write_text
    from emofuse.data.ravdess import STATEMENTS, prepare_ravdess
    from emofuse.errors import ConfigError, DataError
    from emofuse.evaluation.wer import normalise_words
    from emofuse.inference.asr import Transcriber, asr_unavailable_reason

    bad = [d for d in decodings if d not in DECODINGS]
    if bad or not decodings:
        raise ConfigError(f"--decodings must be among {DECODINGS}, got {list(decodings)}")
    reason = asr_unavailable_reason()
    if reason is not None:
        raise ConfigError(f"speech recognition is unavailable: {reason}")
    folder = data_root / RAVDESS_FOLDER
    if not folder.is_dir():
        raise DataError(folder, "RAVDESS speech folder not found (set EMOFUSE_DATA or pass --data)")
    samples = [s for s in prepare_ravdess(folder) if "audio" in s.sources]
    samples = samples[:limit] if limit else samples
    transcriber = Transcriber(beam_size=beam_size, compute_type="int8", cpu_threads=threads)
    load_start = time.perf_counter()
    _ = transcriber.model
    load_seconds = time.perf_counter() - load_start
    result: dict[str, Any] = {
        "experiment": "ravdess_asr_wer", "dataset": "ravdess", "folder": RAVDESS_FOLDER, "clips": len(samples),
        "references": {k: v for k, v in STATEMENTS.items()},
        "normalisation": "lowercase, punctuation removed (apostrophes inside words kept), split on whitespace",
        "asr": {**transcriber.config(), "cpu_threads": threads, "model_load_seconds": round(load_seconds, 2)},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "date": time.strftime("%Y-%m-%d"),
        "command": command,
        "decodings": {},
    }
    texts: dict[str, list[list[str]]] = {}
    for decoding in decodings:
        rows = score_clips(samples, decoding, transcriber, cache_dir, progress)
        result["decodings"][decoding] = summarise_rows(rows)
        texts[decoding] = [normalise_words(r["hypothesis"]) for r in rows]
    if len(texts) == 2:
        differ = [s.id for s, a, b in zip(samples, *texts.values()) if a != b]
        result["decodings_differ"] = {"clips": len(differ), "ids": differ}
    if retime_clips:
        result["retimed"] = retime(samples, decodings, transcriber, retime_clips)
    atomic_write_text(out, json.dumps(result, indent=1, default=float) + "\n")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """The command line (``python -m emofuse.experiments.asr_wer --out FILE``)."""
    from emofuse.errors import ConfigError, DataError
    from emofuse.paths import data_root

    parser = argparse.ArgumentParser(prog="python -m emofuse.experiments.asr_wer", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="results JSON file (written at the end)")
    parser.add_argument("--data", type=Path, default=None, help="data root (default: $EMOFUSE_DATA or ../shared/data)")
    parser.add_argument("--decodings", default=",".join(DECODINGS), help="plain, words or both (default)")
    parser.add_argument("--threads", type=int, default=1, help="CTranslate2 threads (default 1)")
    parser.add_argument("--beam-size", type=int, default=5)
    parser.add_argument("--limit", type=int, default=None, help="only the first N clips (sorted by id)")
    parser.add_argument("--retime", type=int, default=0, metavar="N",
                        help="also time both decodings again, uncached and alternating, on N clips spread over the set")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args(argv)
    root = data_root(args.data)
    try:
        if root is None:
            raise ConfigError("no data folder: pass --data DIR or set EMOFUSE_DATA")
        decodings = [d.strip() for d in args.decodings.split(",") if d.strip()]
        result = run(Path(root), args.out, decodings=decodings, threads=args.threads, beam_size=args.beam_size,
                     limit=args.limit, progress=not args.quiet, retime_clips=args.retime,
                     command=" ".join(["python -m emofuse.experiments.asr_wer", *(argv if argv is not None else sys.argv[1:])]))
    except (ConfigError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for name, figures in result["decodings"].items():
        print(f"{name}: WER {figures['wer']:.4f} (S {figures['substitutions']}, D {figures['deletions']}, "
              f"I {figures['insertions']} over {figures['ref_words']} words), "
              f"{figures['seconds_per_clip_median']:.3f} s/clip median")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    sys.exit(main())
