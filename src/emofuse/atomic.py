"""Atomic file writes: a temporary file in the target's folder, then ``os.replace``.

A write that fails (full disk, read-only file system, no permission) leaves no partial file and
raises `emofuse.errors.DataError` naming the target path and the reason (`write_error`).

These primitives write on every process of a multi-process run on purpose: each rank writes its
own shard of the feature cache. Results and reports are written on rank zero only, by their
writers (`emofuse.evaluation.reports`; `emofuse.training.distributed.rank_zero_only` for others).
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from emofuse.errors import DataError

#: what to tell the user for the usual write failures
_HINTS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
}


def write_error(path: str | Path, exc: OSError, what: str = "cannot write") -> DataError:
    """A `DataError` naming ``path`` for a failed write, e.g. ``x.npz: cannot write: the disk is full
    (No space left on device)``."""
    reason = exc.strerror or str(exc)
    hint = _HINTS.get(exc.errno)
    return DataError(path, f"{what}: {hint} ({reason})" if hint else f"{what} ({reason})")


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers never see a half-written file (mode 0644).

    Raises:
        DataError: naming ``path`` when the folder cannot be created or the file cannot be written.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise write_error(path, exc) from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results, manifests and checkpoints are meant to be shared
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise write_error(path, exc) from exc
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """UTF-8 text version of `atomic_write_bytes`."""
    return atomic_write_bytes(path, text.encode("utf-8"))
