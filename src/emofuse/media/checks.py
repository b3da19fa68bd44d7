"""Input checks of `emofuse.media.audio`: what is refused before decoding, and what is warned about.

- `check_file`: a readable, non-empty regular file, else a `DataError` saying what it is instead
  (missing, broken link, link loop, directory, FIFO, device, socket, special file, unreadable, empty);
- header checks: implausible sample rates (`MIN_SAMPLE_RATE`-`MAX_SAMPLE_RATE`), declared durations
  over `max_duration_limit`, WAV data chunks declaring more bytes than the file holds;
- `AudioWarning`s for non-fatal problems (clipping, samples beyond full scale; the decoder adds
  truncation, cancelled channels and the track used).

`emofuse.media.audio` re-exports the public names, so ``from emofuse.media.audio import check_file`` keeps working.
"""

from __future__ import annotations

import errno
import os
import stat
import struct
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from emofuse.errors import ConfigError, DataError

if TYPE_CHECKING:
    from emofuse.media.audio import _Mono

#: sample rates outside this range are refused as implausible before any decoding
MIN_SAMPLE_RATE = 4_000
MAX_SAMPLE_RATE = 384_000
#: the longest file decoded whole, in seconds (override: EMOFUSE_MAX_DURATION, ``max_duration``).
#: 10 minutes keep `emofuse predict` with the demo model under 1 GB (Whisper features grow with length).
DEFAULT_MAX_DURATION = 600.0
MAX_DURATION_ENV = "EMOFUSE_MAX_DURATION"
#: a sample this close to full scale counts as clipped; warn when this share of samples is
CLIP_LEVEL = 0.999
CLIP_SHARE = 0.001


class AudioWarning(UserWarning):
    """A file decoded, but with a problem worth knowing (clipping, truncation, the track used, ...)."""


def max_duration_limit(max_duration: float | None = None) -> float:
    """The maximum duration in seconds: ``max_duration``, else ``$EMOFUSE_MAX_DURATION``, else the default."""
    if max_duration is None:
        text = os.environ.get(MAX_DURATION_ENV, "").strip()
        if not text:
            return DEFAULT_MAX_DURATION
        try:
            max_duration = float(text)
        except ValueError:
            raise ConfigError(f"{MAX_DURATION_ENV} must be a number of seconds, got {text!r}") from None
        source = MAX_DURATION_ENV
    else:
        source = "the maximum duration"
    if not max_duration > 0:  # also refuses NaN
        raise ConfigError(f"{source} must be a positive number of seconds, got {max_duration}")
    return float(max_duration)


def check_file(path: str | Path) -> None:
    """Raise `DataError` unless ``path`` is a readable, non-empty regular file; say what it is instead."""
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            raise DataError(path, f"broken symbolic link: its target {os.readlink(path)} does not exist") from None
        raise DataError(path, "file not found") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise DataError(path, "symbolic link loop: the link leads back to itself, never to a file") from None
        raise DataError(path, f"cannot access the file: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise DataError(path, f"not a regular file: it is a {_file_kind(st.st_mode)}")
    if not os.access(path, os.R_OK):
        raise DataError(path, "permission denied: the file is not readable")
    if st.st_size == 0:
        if _has_content(path):
            raise DataError(path, "not a regular file on disk: it reports a size of 0 bytes yet has content "
                                  "(a special file such as those under /proc or /sys)")
        raise DataError(path, "file is empty (0 bytes)")


def _file_kind(mode: int) -> str:
    kinds = [(stat.S_ISDIR, "directory"), (stat.S_ISFIFO, "named pipe (FIFO)"), (stat.S_ISCHR, "character device"),
             (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket")]
    return next((name for test, name in kinds if test(mode)), "special file")


def _has_content(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return bool(handle.read(1))
    except OSError:
        return False


def _check_rate(path: Path, sr: int) -> None:
    if not MIN_SAMPLE_RATE <= sr <= MAX_SAMPLE_RATE:
        raise DataError(path, f"implausible sample rate {sr} Hz in the header (accepted: "
                              f"{MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz); refused before decoding")


def _check_declared(path: Path, seconds: float | None, limit: float | None) -> None:
    """Refuse a file whose header declares more than ``limit`` seconds (before decoding it)."""
    if limit is not None and seconds is not None and seconds > limit:
        raise DataError(path, f"the header declares {seconds:.1f} s of audio, more than the maximum of "
                              f"{_limit_text(limit)}; refused before decoding")


def _limit_text(limit: float) -> str:
    return (f"{limit:g} s per file (raise it with --max-duration, ${MAX_DURATION_ENV} or the "
            "max_duration argument)")


def _warn(path: Path, message: str) -> None:
    warnings.warn(f"{path}: {message}", AudioWarning, stacklevel=3)


def _warn_levels(path: Path, mono: _Mono) -> None:
    if mono.peak > 1.0 + 1e-6:
        _warn(path, f"samples beyond full scale: peak {mono.peak:.3g} where full scale is 1.0 (float samples "
                    "out of range)")
    if mono.samples and mono.clipped / mono.samples >= CLIP_SHARE:
        _warn(path, f"clipping: {100 * mono.clipped / mono.samples:.2g}% of the samples are at full scale")


def _wav_missing_bytes(path: Path) -> int:
    """Bytes a RIFF/WAVE ``data`` chunk declares beyond the end of the file (0 if complete or not WAV).

    libsndfile silently shortens such files, so truncation is detected from the header here.
    Streaming writers put 0 or 0xFFFFFFFF in the size field; those count as complete.
    """
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return 0
        pos = 12
        while pos + 8 <= size:
            handle.seek(pos)
            chunk_id, chunk_size = struct.unpack("<4sI", handle.read(8))
            if chunk_id == b"data":
                if chunk_size in (0, 0xFFFFFFFF):
                    return 0
                return max(0, pos + 8 + chunk_size - size)
            pos += 8 + chunk_size + (chunk_size & 1)
    return 0
