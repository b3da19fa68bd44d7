"""Warm CPU speed of the face path, one thread: each detector (ms per frame), each face encoder (ms per
face) and the whole audio-visual prediction of one clip (ms per clip, with its parts).

    OMP_NUM_THREADS=1 python scripts/bench_faces.py [--clip CLIP.mp4] [--runs 10] [--json out.json]
    OMP_NUM_THREADS=1 python scripts/bench_faces.py --only end_to_end profile [--runs 10]

Medians over ``--runs`` runs after one warm-up. Frames: every frame of the clip (720p actor-05 mp4 by
default) and of one 224×224 face-crop clip. Decoding speed has its own script (bench_video_decode.py).
``end_to_end`` also gives the process CPU time per clip and the load average (the machine is shared: the
ratio of two versions measured back to back says more than one absolute figure). ``profile`` is the
time of each stage (CPU ms per clip, cProfile, the face and the audio part run one after the other).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np


def median_ms(fn, runs: int) -> float:
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 2)


def detectors(frames: dict[str, list[np.ndarray]], runs: int) -> list[dict]:
    from emofuse.faces.detectors import get_detector

    rows = []
    for name, cfg in (("haar", {}), ("mtcnn", {}), ("mtcnn", {"max_side": 320})):
        det = get_detector(name, **cfg)
        for kind, images in frames.items():
            sample = images[:: max(1, len(images) // 15)]
            ms = median_ms(lambda: [det.detect(i) for i in sample], max(1, runs // 3)) / len(sample)
            rows.append({"detector": name, "settings": cfg, "frames": kind, "ms_per_frame": round(ms, 2)})
    return rows


def encoders(runs: int) -> list[dict]:
    from emofuse.faces.encoders import get_face_encoder, list_face_encoders

    rng = np.random.default_rng(0)
    rows = []
    for name in list_face_encoders():
        enc = get_face_encoder(name)
        shape = (32, enc.input_size, enc.input_size) + (() if enc.grey else (3,))
        faces = rng.integers(0, 255, shape, dtype=np.uint8)
        params = sum(p.numel() for p in enc.net.parameters()) if hasattr(enc, "net") else None
        rows.append({"encoder": name, "params": params,
                     "ms_per_face_batch32": round(median_ms(lambda: enc.encode(faces), runs) / 32, 2),
                     "ms_per_face_batch1": median_ms(lambda: enc.encode(faces[:1]), runs)})
    return rows


def end_to_end(clip: Path, runs: int) -> dict:
    import os

    from emofuse.inference.audio_visual import AudioVisualPredictor

    av = AudioVisualPredictor()
    pred = av.predict_file(clip)
    cpu: list[float] = []

    def whole() -> None:
        start = time.process_time()
        av.predict_file(clip)
        cpu.append((time.process_time() - start) * 1000)

    load = os.getloadavg()[0]
    result = {"clip": clip.name, "label": pred.label, "face_share": pred.explanations["face_share"],
              "ms_per_clip": median_ms(whole, runs), "cpu_ms_per_clip": round(statistics.median(cpu[1:]), 1),
              "audio_part_ms": median_ms(lambda: av.audio.predict_file(clip), runs),
              "face_part_ms": median_ms(lambda: av.read_face(clip), runs)}
    return {**result, "load_average": [round(load, 2), round(os.getloadavg()[0], 2)]}


#: the stages of a prediction, as (name, the functions whose cumulative time it is)
STAGES = (
    ("face: container opens", ("probe.py:_open", "video.py:_open")),
    ("face: probe (packet scan, first frame)", ("probe.py:_scan", "video.py:_scan")),
    ("face: frame decoding (H.264)", ("<method 'decode' of 'av.packet.Packet' objects>",)),
    ("face: frame conversion to RGB", ("<method 'to_ndarray' of 'av.video.frame.VideoFrame' objects>",)),
    ("face: detection (MTCNN)", ("mtcnn.py:detect",)),
    ("face: tracking", ("track.py:update",)),
    ("face: crop + align", ("crops.py:crop_face",)),
    ("face: encoder (fer_cnn, all frames at once)", ("pipeline.py:_encode",)),
    ("face part, total", ("pipeline.py:analyse_video",)),
    ("audio: decode + resample to 16 kHz", ("audio.py:load_audio",)),
    ("audio: speech check (VAD)", ("vad.py:check_speech",)),
    ("audio: Whisper features", ("whisper.py:compute",)),
    ("audio: model", ("predictor.py:_predict",)),
    ("audio part, total", ("predictor.py:predict_file",)),
)


def profile(clip: Path, runs: int) -> list[dict]:
    """CPU ms per clip of each of `STAGES`: the face part and the audio part profiled one after the other
    (frames decoded in this thread, so that cProfile sees them)."""
    import cProfile
    import pstats

    from emofuse.faces import pipeline
    from emofuse.inference.audio_visual import AudioVisualPredictor

    av = AudioVisualPredictor()
    av.predict_file(clip)
    prefetch = getattr(pipeline, "PREFETCH_FRAMES", 0)
    pipeline.PREFETCH_FRAMES = 0
    prof = cProfile.Profile(time.process_time)
    prof.enable()
    for _ in range(runs):
        av.read_face(clip)
        av.audio.predict_file(clip)
    prof.disable()
    pipeline.PREFETCH_FRAMES = prefetch
    stats = pstats.Stats(prof).stats  # {(file, line, name): (cc, nc, tt, ct, callers)}
    rows = []
    for stage, names in STAGES:
        total = 0.0
        for (file, _, func), (_, _, _, cumulative, _) in stats.items():
            label = func if file == "~" else f"{Path(file).name}:{func}"
            if label in names:
                total += cumulative
        rows.append({"stage": stage, "cpu_ms_per_clip": round(total * 1000 / runs, 1)})
    return rows


def main() -> None:
    import torch

    from emofuse.media.video import read_frames
    from emofuse.paths import data_root

    parser = argparse.ArgumentParser()
    parser.add_argument("--clip")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--json")
    parser.add_argument("--only", nargs="+", choices=["detectors", "encoders", "end_to_end", "profile"],
                        help="run only these parts (default: detectors, encoders, end_to_end)")
    args = parser.parse_args()
    parts = args.only or ["detectors", "encoders", "end_to_end"]
    torch.set_num_threads(1)
    root = data_root()
    clip = Path(args.clip) if args.clip else sorted((root / "ravdess-actor05-video" / "mp4").glob("*.mp4"))[1]
    crop = sorted((root / "ravdess-actor05-video" / "facecrop").glob("*.avi"))[0]
    result: dict = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    if "detectors" in parts:
        frames = {"720p mp4": [f.image for f in read_frames(clip, "all")],
                  "224x224 face crop": [f.image for f in read_frames(crop, "all")]}
        result["detectors"] = detectors(frames, args.runs)
    if "encoders" in parts:
        result["encoders"] = encoders(args.runs)
    if "end_to_end" in parts:
        result["end_to_end"] = end_to_end(clip, args.runs)
    if "profile" in parts:
        result["profile"] = profile(clip, args.runs)
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
