"""The on-disk feature cache: one ``.npz`` per input x extractor configuration.

Layout: ``<root>/<extractor name>-<hash of name+config>/<entry key>.npz``, where the entry key is
what the extractor's source kind says (`emofuse.features.sources`): the SHA-256 of a clip's (or
signal file's) bytes, or of a text. An edited file is recomputed while a copied, moved or
re-mounted one (new path or mtime, same content) still hits the cache. Entries are written
atomically (`emofuse.atomic`) and read with ``allow_pickle=False``; an unreadable entry is
recomputed with a `CacheWarning`. A write that fails (full disk, read-only cache, no permission)
is a `DataError` naming the cache path.

Concurrent runs on one cache share the work: a run claims each entry it computes with an exclusive
lock on ``<entry>.lock`` (`EntryLock`, ``flock``); another run skips entries claimed elsewhere, and
reads them once their lock is released (or computes them itself, if the holder failed). The kernel
drops a lock when its holder dies, so a run killed with ``kill -9`` leaves no stale lock behind.
The driver that fills the cache is `emofuse.features.driver.extract`.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

try:
    import fcntl
except ImportError:  # Windows: no advisory locks, concurrent runs may compute an entry twice
    fcntl = None  # type: ignore[assignment]

from emofuse.atomic import atomic_write_bytes, atomic_write_text, write_error
from emofuse.errors import DataError
from emofuse.features.base import FeatureExtractor
from emofuse.features.sources import SourceKind, clip_key, get_source, text_key  # noqa: F401  (re-exported)
from emofuse.inputs.missing import rows_problem


class CacheWarning(UserWarning):
    """A cache entry could not be read and is being recomputed."""


def config_hash(extractor: FeatureExtractor) -> str:
    """Short stable hash of the extractor's name and configuration (and `identity()`, when it has one)."""
    payload: dict = {"name": extractor.name, "config": extractor.config()}
    identity = extractor.identity()
    if identity:
        payload["identity"] = identity
    blob = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


class EntryLock:
    """An exclusive, non-blocking claim on one cache entry: an ``flock`` on ``<entry>.lock``.

    `EntryLock.claim` returns None while another process (or thread) holds the entry. `release`
    deletes the lock file while still holding the lock; a claimant that locked the old, deleted
    file notices (its inode is no longer at the path) and tries again, so two runs never both hold
    one entry. The kernel releases the lock of a killed process, so there are no stale locks."""

    def __init__(self, path: Path, fd: int | None) -> None:
        self.path = path
        self._fd = fd

    @classmethod
    def claim(cls, path: Path) -> "EntryLock | None":
        """The lock on ``path``, or None when another holder has it (DataError if it cannot be created)."""
        if fcntl is None:
            return cls(path, None)
        while True:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise write_error(path, exc, "cannot create the feature cache lock file") from exc
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return None
            except OSError as exc:
                os.close(fd)
                raise write_error(path, exc, "cannot lock the feature cache entry") from exc
            try:
                current = os.stat(path).st_ino
            except FileNotFoundError:
                current = None
            if current == os.fstat(fd).st_ino:
                return cls(path, fd)
            os.close(fd)  # the previous holder deleted this file on release: lock the new one

    def release(self) -> None:
        """Delete the lock file and release the lock (idempotent)."""
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        except OSError:  # e.g. a cache made read-only meanwhile: the lock still goes with the fd
            pass
        os.close(self._fd)
        self._fd = None


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


class FeatureCache:
    """Per-input ``.npz`` feature files for one extractor configuration under ``root``.

    Entries are keyed as the extractor's source kind says (``source`` overrides it); the methods
    taking ``raw`` (a clip path, a text) key it first, those taking ``key`` use a computed key."""

    def __init__(self, root: str | Path, extractor: FeatureExtractor, source: str | SourceKind | None = None) -> None:
        self.extractor = extractor
        kind = source if source is not None else getattr(extractor, "source", "audio")
        self.source = kind if isinstance(kind, SourceKind) else get_source(kind)
        self.folder = Path(root) / f"{extractor.name}-{config_hash(extractor)}"

    def entry_path(self, raw: Any) -> Path:
        """Where the features of ``raw`` are (or will be) stored."""
        return self.entry(self.source.key(raw))

    def entry(self, key: str) -> Path:
        """The entry file of cache key ``key``."""
        return self.folder / f"{key}.npz"

    def get(self, raw: Any) -> np.ndarray | None:
        """Cached features of ``raw``, or None when absent or unreadable (then deleted, with a warning)."""
        return self.load(self.source.key(raw), raw)

    def load(self, key: str, what: Any = None) -> np.ndarray | None:
        """Cached features of entry ``key`` (``what`` names its input in the warning), or None."""
        entry = self.entry(key)
        if not entry.is_file():
            return None
        dim = self.extractor.dim
        try:
            with np.load(entry, allow_pickle=False) as data:
                features = np.asarray(data["features"], dtype=np.float32)
            if features.ndim != 2 or (dim is not None and features.shape[1] != dim) or (
                    not np.isfinite(features).all()
                    and rows_problem(features, getattr(self.extractor, "missing_rows", False))):
                raise ValueError(f"bad array of shape {features.shape}")
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            warnings.warn(f"{entry}: corrupt cache entry for {what if what is not None else key} ({exc}); recomputing",
                          CacheWarning, stacklevel=2)
            try:
                entry.unlink(missing_ok=True)
            except OSError:  # a read-only cache: the entry is recomputed (and rewritten, if possible)
                pass
            return None
        return features

    def claim(self, raw: Any) -> EntryLock | None:
        """Claim the entry of ``raw`` for computing (`EntryLock`), or None when another run has it."""
        return self.claim_key(self.source.key(raw))

    def claim_key(self, key: str) -> EntryLock | None:
        """`claim` for a computed cache key."""
        entry = self.entry(key)
        self._make_folder()
        return EntryLock.claim(entry.with_name(entry.name + ".lock"))

    def _make_folder(self) -> None:
        """Create the folder and its ``extractor.json`` (the configuration) on first use."""
        if (self.folder / "extractor.json").is_file():
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise write_error(self.folder, exc, "cannot create the feature cache folder") from exc
        info = {"name": self.extractor.name, "config": self.extractor.config(), "dim": self.extractor.dim}
        if self.extractor.identity():
            info["identity"] = self.extractor.identity()
        atomic_write_text(self.folder / "extractor.json", json.dumps(info, indent=2, default=str))

    def describe(self, raw: Any) -> str:
        """What an entry was computed from, stored beside its features (a clip's resolved path, a text)."""
        return self.source.describe(raw)

    def put(self, raw: Any, features: np.ndarray) -> Path:
        """Store ``features`` for ``raw`` atomically; returns the entry path."""
        return self.store(self.source.key(raw), features, self.describe(raw))

    def store(self, key: str, features: np.ndarray, description: str) -> Path:
        """Store ``features`` under ``key`` atomically, with ``description`` of the input; the
        folder's ``extractor.json`` (written with the first entry) records the configuration."""
        entry = self.entry(key)
        self._make_folder()
        atomic_write_bytes(entry, _npz_bytes(features=np.asarray(features, dtype=np.float32),
                                             source=np.str_(description)))
        return entry


def load_feature_file(path: str | Path) -> np.ndarray:
    """A user-supplied feature file as float32 ``[T, D]``.

    ``.npy``, or ``.npz`` holding one array or an array named ``features``.

    A 1-D array becomes ``[1, D]``. Raises `DataError` naming the file when it is missing,
    unreadable, pickled, not numeric, not 1-D/2-D, empty, or contains NaN/inf.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found")
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                names = list(loaded.files)
                if "features" in names:
                    array = loaded["features"]
                elif len(names) == 1:
                    array = loaded[names[0]]
                else:
                    raise DataError(path, f"npz holds arrays {names}; expected one array or one named 'features'")
        else:
            array = loaded
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(path, f"not a readable .npy/.npz feature file ({exc})") from exc
    if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
        raise DataError(path, f"features must be real numbers, got dtype {array.dtype}")
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.size == 0:
        raise DataError(path, f"features must be a non-empty [T, D] or [D] array, got shape {array.shape}")
    if not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        raise DataError(path, f"features contain {bad} NaN or infinite value(s)")
    return np.ascontiguousarray(array, dtype=np.float32)

