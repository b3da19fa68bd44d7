"""Real-time factor of feature extractors: compute seconds per second of audio, without the cache."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

from emofuse.media.audio import load_audio
from emofuse.features.base import FeatureExtractor, get_extractor


def measure_rtf(
    names: Sequence[str | FeatureExtractor], paths: Sequence[str | Path], *, batch_size: int = 8
) -> list[dict[str, Any]]:
    """Time each extractor (a registry name or a configured extractor) on ``paths``, without the cache.

    Audio is decoded once, up front, and not timed.

    Each extractor is first run on one clip (warm-up: model loading, JIT compilation), then timed
    over all clips through ``extractor.batch`` in batches of ``batch_size``, as `extract_features`
    runs it. Returns one dict per extractor: name, config, dim, clips, audio_s, warmup_s,
    compute_s and rtf = compute_s / audio_s (below 1 is faster than real time).
    """
    if not paths:
        raise ValueError("measure_rtf needs at least one audio file")
    rows = []
    waves = [load_audio(p, 16000) for p in paths]
    audio_s = sum(w.size for w in waves) / 16000.0
    for name in names:
        extractor = get_extractor(name) if isinstance(name, str) else name
        sr = extractor.sample_rate
        clips = waves if sr == 16000 else [load_audio(p, sr) for p in paths]
        start = time.perf_counter()
        extractor(clips[0], sr)
        warmup_s = time.perf_counter() - start
        start = time.perf_counter()
        for i in range(0, len(clips), batch_size):
            extractor.batch(clips[i : i + batch_size], sr)
        compute_s = time.perf_counter() - start
        rows.append({
            "name": extractor.name, "config": extractor.config(), "dim": extractor.dim, "clips": len(clips),
            "audio_s": round(audio_s, 3), "warmup_s": round(warmup_s, 3), "compute_s": round(compute_s, 3),
            "rtf": compute_s / audio_s,
        })
    return rows


def format_rtf_table(rows: list[dict[str, Any]]) -> str:
    """Markdown table of `measure_rtf` rows."""
    lines = ["| extractor | config | D | clips | audio s | compute s | RTF | x real time |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        config = ", ".join(f"{k}={v}" for k, v in r["config"].items())
        lines.append(f"| {r['name']} | {config} | {r['dim']} | {r['clips']} | {r['audio_s']:.1f} | "
                     f"{r['compute_s']:.2f} | "
                     f"{r['rtf']:.4f} | {1 / r['rtf']:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """``python -m emofuse.features.speed [--clips 40] [--every 36] [NAME ...]``: RTF table on RAVDESS."""
    import argparse
    import csv

    from emofuse.errors import ConfigError
    from emofuse.features.base import list_extractors
    from emofuse.paths import data_root

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("names", nargs="*", default=list_extractors())
    parser.add_argument("--data", default=None, help="data root holding ravdess-speech-16k/")
    parser.add_argument("--clips", type=int, default=40)
    parser.add_argument("--every", type=int, default=36, help="take every k-th manifest row")
    args = parser.parse_args(argv)
    root = data_root(args.data)
    if root is None:
        raise ConfigError("RAVDESS not found: pass --data or set EMOFUSE_DATA")
    corpus = Path(root) / "ravdess-speech-16k"
    with (corpus / "manifest.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))[:: args.every][: args.clips]
    print(format_rtf_table(measure_rtf(args.names, [corpus / r["path"] for r in rows])))


if __name__ == "__main__":
    main()
