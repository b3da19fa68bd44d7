"""Warm audio-visual prediction time for one clip through the Python API, with its parts.

    OMP_NUM_THREADS=1 python scripts/bench_av_predict.py CLIP.mp4 [--runs 10] [--detector haar] [--sampler 2fps]

Prints the median (and min, max) of ``--runs`` warm `AudioVisualPredictor.predict_file` calls after one
warm-up, then the median time of each part measured alone: the audio prediction, decoding the sampled
frames, face detection + tracking + cropping, and encoding the crops.
"""

from __future__ import annotations

import argparse
import statistics
import time


def timed(fn, runs: int) -> list[float]:
    fn()
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("clip")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--detector")
    parser.add_argument("--sampler")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    from emofuse.faces.crops import crop_face
    from emofuse.faces.track import FaceTracker
    from emofuse.inference.audio_visual import AudioVisualPredictor
    from emofuse.media.video import read_frames

    face = {k: v for k, v in (("detector", args.detector), ("sampler", args.sampler)) if v}
    av = AudioVisualPredictor(face=face)
    parts = av.face_parts()
    total = timed(lambda: av.predict_file(args.clip), args.runs)
    frames = read_frames(args.clip, parts["sampler"])
    enc = parts["encoder"]

    def detect() -> list:
        tracker = FaceTracker()
        crops = []
        for f in frames:
            found = tracker.update(parts["detector"].detect(f.image))
            if found is not None:
                crops.append(crop_face(f.image, found, enc.input_size, enc.grey))
        return crops

    crops = detect()
    import numpy as np

    rows = {
        "predict_file (audio + face)": total,
        "audio part (Predictor.predict_file)": timed(lambda: av.audio.predict_file(args.clip), args.runs),
        f"decode {len(frames)} sampled frames": timed(lambda: read_frames(args.clip, parts["sampler"]), args.runs),
        f"detect + track + crop ({len(frames)} frames)": timed(detect, args.runs),
        f"encode {len(crops)} faces": timed(lambda: enc.encode(np.stack(crops)), args.runs),
    }
    for name, values in rows.items():
        print(f"{name}: median {statistics.median(values):.1f} ms (min {min(values):.1f}, max {max(values):.1f}, "
              f"n={len(values)})")


if __name__ == "__main__":
    main()
