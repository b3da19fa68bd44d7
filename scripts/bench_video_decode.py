"""Decoding speed of `emofuse.media.video.read_frames(path, "all")`: frames per second, the median of
5 runs in one process after one warm-up run.

    OMP_NUM_THREADS=1 python scripts/bench_video_decode.py [CLIP]

CLIP defaults to the first actor-05 720p mp4 under the data root ($EMOFUSE_DATA or ../shared/data).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

from emofuse.media.video import probe_video, read_frames
from emofuse.paths import data_root


def main(argv: list[str]) -> None:
    if argv:
        path = Path(argv[0])
    else:
        root = data_root()
        clips = sorted((root / "ravdess-actor05-video" / "mp4").glob("*.mp4")) if root else []
        if not clips:
            sys.exit("no clip given and no actor-05 mp4 found under the data root")
        path = clips[0]
    info = probe_video(path)
    read_frames(path, "all")  # warm-up
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        frames = read_frames(path, "all")
        runs.append(time.perf_counter() - start)
        del frames
    median = statistics.median(runs)
    print(f"{path.name}: {info.width}x{info.height} {info.codec}, {info.num_frames} frames; runs (s): "
          f"{[round(r, 3) for r in runs]}; median {median:.3f} s = {info.num_frames / median:.1f} frames/s")


if __name__ == "__main__":
    main(sys.argv[1:])
