"""On-disk feature cache and the `extract_features` driver.

Layout: ``<root>/<extractor name>-<hash of name+config>/<hash of clip>.npz``. A clip's key is the
SHA-256 of its bytes, so an edited file is recomputed while a copied, moved or re-mounted one (new
path or mtime, same content) still hits the cache. Entries are written atomically
(`emofuse.atomic`) and read with ``allow_pickle=False``; an unreadable entry is recomputed with a
`CacheWarning`. A write that fails (full disk, read-only cache, no permission) is a `DataError`
naming the cache path.

Concurrent runs on one cache share the work: a run claims each entry it computes with an exclusive
lock on ``<entry>.lock`` (`EntryLock`, ``flock``); another run skips entries claimed elsewhere, and
reads them once their lock is released (or computes them itself, if the holder failed). The kernel
drops a lock when its holder dies, so a run killed with ``kill -9`` leaves no stale lock behind.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import time
import warnings
import zipfile
from pathlib import Path
from typing import Literal, Sequence

import numpy as np

try:
    import fcntl
except ImportError:  # Windows: no advisory locks, concurrent runs may compute an entry twice
    fcntl = None  # type: ignore[assignment]

from emofuse.atomic import atomic_write_bytes, atomic_write_text, write_error
from emofuse.audio import load_audio
from emofuse.errors import ConfigError, DataError
from emofuse.features.base import FeatureExtractor, get_extractor
from emofuse.paths import cache_root

log = logging.getLogger(__name__)


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


#: (resolved path, size, mtime_ns) -> content key, so one process hashes each file once.
_KEY_MEMO: dict[tuple[str, int, int], str] = {}


def clip_key(path: str | Path) -> str:
    """SHA-256 (24 hex digits) of the clip's content (DataError if it cannot be read)."""
    path = Path(path)
    try:
        resolved = path.resolve(strict=True)
        stat = resolved.stat()
        memo = (str(resolved), stat.st_size, stat.st_mtime_ns)
        if memo not in _KEY_MEMO:
            with open(resolved, "rb") as fh:
                _KEY_MEMO[memo] = hashlib.file_digest(fh, "sha256").hexdigest()[:24]
    except FileNotFoundError as exc:
        raise DataError(path, "file not found") from exc
    except OSError as exc:
        raise DataError(path, f"cannot read file ({exc.strerror or exc})") from exc
    return _KEY_MEMO[memo]


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
    """Per-clip ``.npz`` feature files for one extractor configuration under ``root``."""

    def __init__(self, root: str | Path, extractor: FeatureExtractor) -> None:
        self.extractor = extractor
        self.folder = Path(root) / f"{extractor.name}-{config_hash(extractor)}"

    def entry_path(self, clip: str | Path) -> Path:
        """Where the features of ``clip`` are (or will be) stored."""
        return self.folder / f"{clip_key(clip)}.npz"

    def get(self, clip: str | Path) -> np.ndarray | None:
        """Cached features of ``clip``, or None when absent or unreadable (then deleted, with a warning)."""
        entry = self.entry_path(clip)
        if not entry.is_file():
            return None
        try:
            with np.load(entry, allow_pickle=False) as data:
                features = np.asarray(data["features"], dtype=np.float32)
            if features.ndim != 2 or features.shape[1] != self.extractor.dim or not np.isfinite(features).all():
                raise ValueError(f"bad array of shape {features.shape}")
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            warnings.warn(f"{entry}: corrupt cache entry for {clip} ({exc}); recomputing", CacheWarning, stacklevel=2)
            try:
                entry.unlink(missing_ok=True)
            except OSError:  # a read-only cache: the entry is recomputed (and rewritten, if possible)
                pass
            return None
        return features

    def claim(self, clip: str | Path) -> EntryLock | None:
        """Claim the entry of ``clip`` for computing (`EntryLock`), or None when another run has it."""
        entry = self.entry_path(clip)
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

    def describe(self, clip: str | Path) -> str:
        """What an entry was computed from, stored beside its features: the clip's resolved path."""
        return str(Path(clip).resolve())

    def put(self, clip: str | Path, features: np.ndarray) -> Path:
        """Store ``features`` for ``clip`` atomically; returns the entry path. The folder's
        ``extractor.json`` (written with the first entry) records the configuration."""
        entry = self.entry_path(clip)
        self._make_folder()
        atomic_write_bytes(entry, _npz_bytes(features=np.asarray(features, dtype=np.float32),
                                             source=np.str_(self.describe(clip))))
        return entry


def _check_output(extractor: FeatureExtractor, clip: Path, features: np.ndarray) -> np.ndarray:
    features = np.asarray(features, dtype=np.float32)
    if features.ndim != 2 or features.shape[0] < 1 or features.shape[1] != extractor.dim:
        raise DataError(clip, f"{extractor.name} produced shape {features.shape}, expected [T>=1, {extractor.dim}]")
    if not np.isfinite(features).all():
        raise DataError(clip, f"{extractor.name} produced NaN or infinite features")
    return features


def extract_features(
    paths: Sequence[str | Path],
    extractor: FeatureExtractor | str,
    cache_dir: str | Path | None = None,
    *,
    progress: bool = True,
    batch_size: int = 8,
    on_error: Literal["raise", "skip"] = "raise",
) -> list[np.ndarray | None]:
    """Features for every audio/video file in ``paths`` (same order), computing only what is not cached.

    Results are stored after each batch, so an interrupted run resumes where it stopped.

    Args:
        paths: audio or video files.
        extractor: an extractor or a registered name.
        cache_dir: cache root; None uses `emofuse.paths.cache_root()`.
        progress: show a progress bar.
        batch_size: clips per ``extractor.batch`` call.
        on_error: ``"raise"`` raises `DataError` naming the file; ``"skip"`` logs the file and
            reason and returns None in its place.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if isinstance(extractor, str):
        extractor = get_extractor(extractor)
    if extractor.source != "audio":
        raise ConfigError(f"{extractor.name} reads {extractor.source}, not audio files: "
                          "use emofuse.features.text.extract_text_features")
    cache = FeatureCache(cache_root(cache_dir), extractor)
    clips = [Path(p) for p in paths]
    results: list[np.ndarray | None] = [None] * len(clips)

    def fail(i: int, exc: DataError) -> None:
        if on_error == "raise":
            raise exc
        log.warning("skipping %s: %s", clips[i], exc.problem)

    todo: list[int] = []
    for i, clip in enumerate(clips):
        try:
            cached = cache.get(clip)
        except DataError as exc:
            fail(i, exc)
            continue
        if cached is None:
            todo.append(i)
        else:
            results[i] = cached

    bar = _progress_bar(len(clips), len(clips) - len(todo), extractor.name, enabled=progress and bool(todo))
    locks: dict[int, EntryLock] = {}

    def compute(batch: list[int]) -> None:
        """Compute and store the claimed clips ``batch``, releasing each claim when done."""
        indices, waves = [], []
        for i in batch:
            try:
                waves.append(load_audio(clips[i], extractor.sample_rate))
                indices.append(i)
            except DataError as exc:
                locks.pop(i).release()
                fail(i, exc)
                bar.update(1)
        outputs = _run_batch(extractor, waves, [clips[i] for i in indices]) if waves else []
        for i, features in zip(indices, outputs):
            try:
                if isinstance(features, DataError):
                    raise features
                features = _check_output(extractor, clips[i], features)
            except DataError as exc:
                locks.pop(i).release()
                fail(i, exc)
            else:
                cache.put(clips[i], features)
                locks.pop(i).release()
                results[i] = features
            bar.update(1)

    pending, waiting = todo, False
    try:
        while pending:
            batch, busy, rest = [], [], []
            for n, i in enumerate(pending):
                if len(batch) == batch_size:
                    rest = pending[n:]
                    break
                lock = cache.claim(clips[i])
                if lock is None:  # another run is computing it: come back to it at the end
                    busy.append(i)
                    continue
                cached = cache.get(clips[i])  # another run may have stored it since the first look
                if cached is None:
                    locks[i] = lock
                    batch.append(i)
                else:
                    lock.release()
                    results[i] = cached
                    bar.update(1)
            if batch:
                compute(batch)
            elif busy:
                if not waiting:
                    log.info("%s: waiting for another run computing %d clip(s) in %s", extractor.name, len(busy),
                             cache.folder)
                    waiting = True
                time.sleep(_POLL_SECONDS)
            pending = rest + busy
    finally:
        for lock in locks.values():
            lock.release()
        bar.close()
    return results


#: how often a run re-checks entries that another run is computing
_POLL_SECONDS = 0.2


def _run_batch(extractor: FeatureExtractor, waves: list[np.ndarray], clips: list[Path]) -> list:
    """``extractor.batch``; if a clip makes it fail, retry one by one so the error names that clip."""
    try:
        return extractor.batch(waves, extractor.sample_rate)
    except DataError:
        pass
    outputs: list = []
    for wave, clip in zip(waves, clips):
        try:
            outputs.append(extractor(wave, extractor.sample_rate))
        except DataError as exc:
            outputs.append(DataError(clip, exc.problem))
    return outputs


def _progress_bar(total: int, done: int, name: str, *, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=done, desc=f"features[{name}]", unit="clip", disable=not enabled)


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

