"""The timeline check of issue #15: long generated recordings of known emotions, their timelines, the
segment accuracy and the peak memory.

``python -m emofuse.experiments.timeline_check --minutes 10 60 --out results.json`` writes, for each length,
a FLAC file of RAVDESS clips (by default of actors 05 and 06: the shipped model never learned weights from
them, they only chose its epoch) in random order with 1-6 s of quiet noise (-60 dBFS) between them, predicts
its timeline in a fresh process (so that ``ru_maxrss`` is that run's peak) and scores it:

* a clip's **speech** is the stretch from the first to the last speech Silero VAD finds in the clip alone
  (RAVDESS clips open and close with about a second of room noise);
* each window's truth is the clip whose speech covers most of it, or "silence" when it touches no clip's
  speech;
* **accuracy**: windows whose label is their clip's emotion, over the clip windows that got a label
  (**coverage**: the share of clip windows that got one; the others said too_short / no_speech, e.g. a
  window holding the last 0.3 s of a sentence); **strict accuracy** counts those as wrong;
* **clips labelled**: the share of clips that are the truth of at least one labelled window;
* **silence as no_speech**: the share of silence windows that came out "no_speech" (target: all).

The generated files are written block by block and the timeline streams them, so neither step holds an
hour of audio.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

SR = 16000
#: quiet noise between clips (standard deviation; about -60 dBFS)
GAP_NOISE = 0.001


def ravdess_clips(actors: list[int], data: str | None = None) -> list[tuple[Path, str]]:
    """``(path, emotion)`` of every clip of ``actors`` in ``ravdess-speech-16k/manifest.csv``."""
    from emofuse.errors import DataError
    from emofuse.paths import data_root

    root = data_root(data)
    folder = None if root is None else root / "ravdess-speech-16k"
    if folder is None or not (folder / "manifest.csv").is_file():
        raise DataError(folder or "ravdess-speech-16k", "RAVDESS speech not found: set EMOFUSE_DATA to the folder "
                                                        "holding ravdess-speech-16k/")
    with open(folder / "manifest.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if int(r["actor"]) in actors]
    return [(folder / r["path"], r["emotion"]) for r in rows]


def generate(path: Path, clips: list[tuple[Path, str]], seconds: float, seed: int = 0,
             gaps: tuple[float, float] = (1.0, 6.0)) -> list[dict[str, Any]]:
    """Write ``seconds`` of clips (shuffled, reshuffled when all are used) separated by quiet noise to the
    FLAC ``path``, one clip at a time; returns the clips' ``{"start", "end", "label", "clip"}``."""
    import soundfile as sf

    from emofuse.media.audio import load_audio
    from emofuse.media.vad import speech_segments

    rng = np.random.default_rng(seed)
    truth: list[dict[str, Any]] = []
    at, order = 0, []
    with sf.SoundFile(str(path), "w", samplerate=SR, channels=1, format="FLAC", subtype="PCM_16") as out:
        while True:
            gap = int(rng.uniform(*gaps) * SR)
            out.write((GAP_NOISE * rng.standard_normal(gap)).astype(np.float32))
            at += gap
            if not order:
                order = list(rng.permutation(len(clips)))
            clip, label = clips[order.pop()]
            wave = load_audio(clip)
            if (at + wave.size) / SR > seconds:
                break
            out.write(wave)
            found = speech_segments(wave, SR).segments or [(0.0, wave.size / SR)]
            truth.append({"start": at / SR, "end": (at + wave.size) / SR, "label": label, "clip": clip.name,
                          "speech_start": at / SR + found[0][0], "speech_end": at / SR + found[-1][1]})
            at += wave.size
    return truth


def score(segments: list[dict[str, Any]], truth: list[dict[str, Any]]) -> dict[str, Any]:
    """The module docstring's figures for a timeline's segments against the clips' times and labels."""
    starts = np.array([t["speech_start"] for t in truth])
    ends = np.array([t["speech_end"] for t in truth])
    clip_n = answered = correct = silence_n = silence_ok = 0
    labelled: set[int] = set()
    for seg in segments:
        overlap = np.clip(np.minimum(ends, seg["end"]) - np.maximum(starts, seg["start"]), 0, None)
        best = int(overlap.argmax()) if overlap.size else -1
        if best < 0 or overlap[best] <= 0:
            silence_n += 1
            silence_ok += seg["status"] == "no_speech"
            continue
        clip_n += 1
        if seg["label"] is not None:
            answered += 1
            correct += seg["label"] == truth[best]["label"]
            labelled.add(best)
    return {"clip_windows": clip_n, "answered": answered, "coverage": answered / max(clip_n, 1),
            "accuracy": correct / max(answered, 1), "strict_accuracy": correct / max(clip_n, 1),
            "clips_labelled": len(labelled) / max(len(truth), 1),
            "silence_windows": silence_n, "silence_no_speech": silence_ok / max(silence_n, 1)}


def measure(path: str, window: float, hop: float | None, vad: bool, out: str) -> None:
    """Child process: load the shipped model, predict ``path``'s timeline, write it with the peak memory."""
    import torch

    from emofuse.inference.predictor import Predictor
    from emofuse.inference.timeline import predict_timeline

    torch.set_num_threads(1)
    predictor = Predictor()
    predictor.predict_waveform(np.zeros(SR, np.float32))  # loads the VAD
    predictor.predict_waveform(0.1 * np.sin(np.arange(2 * SR) / 8).astype(np.float32))  # and Whisper
    loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    began = time.perf_counter()
    timeline = predict_timeline(predictor, path, window=window, hop=hop, vad=vad)
    seconds = time.perf_counter() - began
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    Path(out).write_text(json.dumps({"rss_loaded_mb": loaded, "peak_rss_mb": peak, "seconds": seconds,
                                     "timeline": timeline.to_dict()}))


def run(minutes: list[float], actors: list[int], out_dir: Path, window: float, hop: float | None, vad: bool,
        seed: int) -> list[dict[str, Any]]:
    """Generate, predict (in a child process each) and score every length; one row per length."""
    out_dir.mkdir(parents=True, exist_ok=True)
    clips = ravdess_clips(actors)
    rows = []
    for length in minutes:
        audio = out_dir / f"ravdess_{length:g}min.flac"
        truth = generate(audio, clips, length * 60, seed)
        (out_dir / f"{audio.stem}_truth.json").write_text(json.dumps(truth, indent=1))
        result = out_dir / f"{audio.stem}_{'vad' if vad else f'{window:g}_{hop or window:g}'}.json"
        command = [sys.executable, "-m", "emofuse.experiments.timeline_check", "measure", str(audio),
                   "--window", str(window), "--result", str(result), *(["--hop", str(hop)] if hop else []),
                   *(["--vad"] if vad else [])]
        subprocess.run(command, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        measured = json.loads(result.read_text())
        duration = measured["timeline"]["duration"]
        rows.append({"minutes": length, "duration_s": duration, "clips": len(truth), "actors": actors,
                     "mode": "vad" if vad else f"{window:g}:{hop or window:g}",
                     "segments": len(measured["timeline"]["segments"]),
                     **score(measured["timeline"]["segments"], truth),
                     "rss_loaded_mb": round(measured["rss_loaded_mb"], 1),
                     "peak_rss_mb": round(measured["peak_rss_mb"], 1),
                     "seconds": round(measured["seconds"], 1),
                     "real_time_factor": round(measured["seconds"] / duration, 4)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emofuse.experiments.timeline_check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", nargs="?", default="check", choices=["check", "measure"],
                        help="check (default): generate, measure and score; measure: the child step")
    parser.add_argument("file", nargs="?", help="measure: the recording")
    parser.add_argument("--minutes", type=float, nargs="+", default=[10.0, 60.0])
    parser.add_argument("--actors", default="5,6", help="RAVDESS actors whose clips are used (default 5,6)")
    parser.add_argument("--window", type=float, default=2.0)
    parser.add_argument("--hop", type=float, default=1.0)
    parser.add_argument("--vad", action="store_true", help="speech segments instead of windows")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir", default="timeline_check", help="where the generated files go")
    parser.add_argument("--out", help="write the rows as JSON here")
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.mode == "measure":
        measure(args.file, args.window, args.hop, args.vad, args.result)
        return 0
    rows = run(args.minutes, [int(a) for a in args.actors.split(",")], Path(args.work_dir), args.window,
               args.hop, args.vad, args.seed)
    if args.out:
        from emofuse.atomic import atomic_write_text

        atomic_write_text(args.out, json.dumps({"date": time.strftime("%Y-%m-%d"), "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
