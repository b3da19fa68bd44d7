"""Warm CPU speed of the face path, one thread: each detector (ms per frame), each face encoder (ms per
face) and the whole audio-visual prediction of one clip (ms per clip, with its parts).

    OMP_NUM_THREADS=1 python scripts/bench_faces.py [--clip CLIP.mp4] [--runs 10] [--json out.json]

Medians over ``--runs`` runs after one warm-up. Frames: every frame of the clip (720p actor-05 mp4 by
default) and of one 224×224 face-crop clip. Decoding speed has its own script (bench_video_decode.py).
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
    from emofuse.inference.audio_visual import AudioVisualPredictor

    av = AudioVisualPredictor()
    pred = av.predict_file(clip)
    return {"clip": clip.name, "label": pred.label, "face_share": pred.explanations["face_share"],
            "ms_per_clip": median_ms(lambda: av.predict_file(clip), runs),
            "audio_part_ms": median_ms(lambda: av.audio.predict_file(clip), runs),
            "face_part_ms": median_ms(lambda: av.read_face(clip), runs)}


def main() -> None:
    import torch

    from emofuse.media.video import read_frames
    from emofuse.paths import data_root

    parser = argparse.ArgumentParser()
    parser.add_argument("--clip")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    root = data_root()
    clip = Path(args.clip) if args.clip else sorted((root / "ravdess-actor05-video" / "mp4").glob("*.mp4"))[1]
    crop = sorted((root / "ravdess-actor05-video" / "facecrop").glob("*.avi"))[0]
    frames = {"720p mp4": [f.image for f in read_frames(clip, "all")],
              "224x224 face crop": [f.image for f in read_frames(crop, "all")]}
    result = {"date": time.strftime("%Y-%m-%d"), "detectors": detectors(frames, args.runs),
              "encoders": encoders(args.runs), "end_to_end": end_to_end(clip, args.runs)}
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
