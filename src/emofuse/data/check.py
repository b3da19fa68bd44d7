"""Checking every media file of a loaded dataset (what ``emofuse prepare`` runs).

Each distinct file a sample points to is opened, not just listed:

- an audio source (or a video used for its audio) gets a header check with `emofuse.media.audio.audio_duration`
  (readable regular file, known format, plausible sample rate, a duration within the maximum) and a
  short decode of its first `DECODE_SECONDS` seconds with `emofuse.media.audio.load_audio` (which also catches
  truncated WAV data, corrupt frames and NaN/inf samples);
- a video-only source must open as a container with a video stream whose first frame decodes;
- a signal file (``sources["signal"]``, a manifest's ``signal`` column) must load as a ``.npz`` with a
  finite float ``data`` [T, C] and a positive ``rate`` (`emofuse.features.signal.read_signal_file`).

A whole-file decode would also find damage past the first second, at the cost of decoding every
clip in full; the header check already refuses a file whose declared length exceeds the maximum.
Files are checked in a thread pool (libsndfile, soxr and FFmpeg release the GIL while decoding).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from emofuse.data.record import Sample
from emofuse.errors import DataError

#: seconds decoded from the start of each audio file (after its header check)
DECODE_SECONDS = 1.0


@dataclass
class CheckReport:
    """What `check_samples` found: the bad files (path -> problem), good samples and total audio seconds."""

    checked: int = 0
    bad: dict[Path, str] = field(default_factory=dict)
    audio_seconds: float = 0.0
    good: list[Sample] = field(default_factory=list)
    dropped: list[Sample] = field(default_factory=list)


def media_files(samples: Iterable[Sample]) -> dict[Path, str]:
    """Every distinct file the samples point to, with its kind: ``"audio"`` (decoded for its audio,
    also a video used as the audio source), ``"signal"`` (a signal file) or ``"video"`` (any other
    file source, e.g. a video-only one)."""
    files: dict[Path, str] = {}
    for sample in samples:
        for key, source in sample.sources.items():
            if isinstance(source, Path):
                kind = key if key in ("audio", "signal") else "video"
                if files.get(source) != "audio":
                    files[source] = kind
    return files


def check_audio(path: Path) -> float:
    """Header check plus a decode of the first `DECODE_SECONDS`; returns the duration in seconds."""
    from emofuse.media.audio import audio_duration, load_audio, max_duration_limit

    seconds = audio_duration(path)
    limit = max_duration_limit()
    if seconds > limit:
        raise DataError(path, f"{seconds:.1f} s of audio, more than the maximum of {limit:g} s per file "
                              "(raise it with $EMOFUSE_MAX_DURATION)")
    load_audio(path, max_seconds=DECODE_SECONDS)
    return seconds


def check_video(path: Path) -> float:
    """Open ``path`` as a container and decode the first frame of its video stream; returns 0."""
    from emofuse.media.audio import check_file

    check_file(path)
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DataError(path, "no video stream in file")
            next(container.decode(container.streams.video[0]))
    except DataError:
        raise
    except StopIteration:
        raise DataError(path, "the video stream holds no frames") from None
    except Exception as exc:  # av.error.* for a file FFmpeg cannot read
        reason = getattr(exc, "strerror", None) or str(exc)
        raise DataError(path, f"not a readable video file ({reason})") from exc
    return 0.0


def check_signal(path: Path) -> float:
    """Load a signal file and check its arrays (`emofuse.features.signal.read_signal_file`); returns 0."""
    from emofuse.features.signal import read_signal_file

    read_signal_file(path)
    return 0.0


_CHECKS = {"audio": check_audio, "signal": check_signal, "video": check_video}


def check_file_kind(path: Path, kind: str) -> tuple[float, str | None]:
    """Check one file; (audio seconds, None) when it is good, (0, the problem) when it is not."""
    try:
        return _CHECKS[kind](path), None
    except DataError as exc:
        return 0.0, exc.problem


def default_jobs() -> int:
    """Worker threads: the CPU count, at most 8."""
    return max(1, min(8, os.cpu_count() or 1))


def check_samples(samples: Sequence[Sample], *, jobs: int | None = None, progress: bool = True) -> CheckReport:
    """Check every media file of ``samples`` in ``jobs`` threads (default `default_jobs`), with a
    progress bar on stderr unless ``progress`` is False."""
    from tqdm.auto import tqdm

    from emofuse.media.audio import AudioWarning

    files = media_files(samples)
    report = CheckReport(checked=len(files))
    with warnings.catch_warnings(), ThreadPoolExecutor(max_workers=jobs or default_jobs()) as pool, \
            tqdm(total=len(files), desc="checking files", unit="file", disable=not progress) as bar:
        warnings.simplefilter("ignore", AudioWarning)  # decodable with a caveat: not a bad file
        for path, (seconds, problem) in zip(files, pool.map(check_file_kind, files, files.values())):
            bar.update(1)
            report.audio_seconds += seconds
            if problem is not None:
                report.bad[path] = problem
    for sample in samples:
        hit = any(isinstance(s, Path) and s in report.bad for s in sample.sources.values())
        (report.dropped if hit else report.good).append(sample)
    return report
