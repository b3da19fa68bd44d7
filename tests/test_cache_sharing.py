"""The feature cache under concurrency and faults: runs sharing one cache compute each clip once,
a killed run leaves no stale lock, and a failed write (full disk, read-only cache) names the path."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emofuse.errors import DataError
from emofuse.features import FeatureCache, extract_features, get_extractor

SR = 16000


@pytest.fixture()
def clips(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "audio"
    folder.mkdir()
    rng = np.random.default_rng(0)
    paths = []
    for i in range(6):
        path = folder / f"clip{i}.wav"
        sf.write(path, (0.1 * rng.standard_normal(int(SR * (0.3 + 0.05 * i)))).astype(np.float32), SR)
        paths.append(path)
    return paths


class Counting:
    """Wraps an extractor's ``batch`` to record which clips (by length) it computes, slowly."""

    def __init__(self, monkeypatch, extractor, delay: float = 0.05) -> None:
        self.lengths: list[int] = []
        self._lock = threading.Lock()
        original = extractor.batch

        def batch(waves, sr):
            time.sleep(delay * len(waves))  # long enough for the runs to overlap
            with self._lock:
                self.lengths.extend(len(w) for w in waves)
            return original(waves, sr)

        monkeypatch.setattr(extractor, "batch", batch)


def test_two_runs_on_one_cache_compute_each_clip_once(monkeypatch, clips, tmp_path):
    extractor = get_extractor("logmel")
    counter = Counting(monkeypatch, extractor)
    results: dict[int, list] = {}
    barrier = threading.Barrier(2)

    def run(n: int) -> None:
        barrier.wait()
        results[n] = extract_features(clips, extractor, tmp_path / "cache", progress=False, batch_size=2)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(counter.lengths) == sorted({len(sf.read(c)[0]) for c in clips}), "a clip was computed twice"
    for a, b in zip(results[0], results[1]):
        np.testing.assert_array_equal(a, b)
    folder = FeatureCache(tmp_path / "cache", extractor).folder
    assert len(list(folder.glob("*.npz"))) == len(clips)
    assert not list(folder.glob("*.lock")), "claims are released"


def test_a_run_waits_for_a_clip_another_run_computes_and_reads_it(monkeypatch, clips, tmp_path):
    extractor = get_extractor("logmel")
    cache = FeatureCache(tmp_path / "cache", extractor)
    held = cache.claim(clips[0])  # "another run" is computing clips[0]
    assert held is not None and cache.claim(clips[0]) is None
    counter = Counting(monkeypatch, extractor, delay=0.0)
    out: list = []
    worker = threading.Thread(target=lambda: out.append(extract_features(clips[:2], extractor, tmp_path / "cache",
                                                                         progress=False)))
    worker.start()
    time.sleep(0.5)
    assert worker.is_alive(), "the run must wait for the clip the other run is computing"
    assert counter.lengths == [len(sf.read(clips[1])[0])]  # it computed only the free clip
    theirs = np.full((3, 128), 7.0, dtype=np.float32)
    cache.put(clips[0], theirs)
    held.release()
    worker.join(30)
    np.testing.assert_array_equal(out[0][0], theirs)  # read, not recomputed
    assert len(counter.lengths) == 1


def test_a_clip_the_other_run_gave_up_is_computed(monkeypatch, clips, tmp_path):
    extractor = get_extractor("logmel")
    cache = FeatureCache(tmp_path / "cache", extractor)
    held = cache.claim(clips[0])
    counter = Counting(monkeypatch, extractor, delay=0.0)
    threading.Timer(0.3, held.release).start()  # the other run fails on it: no entry written
    (features,) = extract_features(clips[:1], extractor, tmp_path / "cache", progress=False)
    assert features.shape[1] == 128 and len(counter.lengths) == 1


def test_a_run_killed_holding_a_claim_leaves_no_stale_lock(clips, tmp_path):
    cache_dir = tmp_path / "cache"
    code = ("import sys, time; from emofuse.features import FeatureCache, get_extractor\n"
            f"lock = FeatureCache({str(cache_dir)!r}, get_extractor('logmel')).claim({str(clips[0])!r})\n"
            "print('claimed' if lock else 'busy', flush=True); time.sleep(60)\n")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "claimed"
        cache = FeatureCache(cache_dir, get_extractor("logmel"))
        assert cache.claim(clips[0]) is None
        lock_file = cache.entry_path(clips[0]).with_suffix(".npz.lock")
        assert lock_file.exists()
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    assert lock_file.exists(), "kill -9 leaves the lock file behind"
    started = time.monotonic()
    (features,) = extract_features(clips[:1], "logmel", cache_dir, progress=False)
    assert features.shape[1] == 128 and time.monotonic() - started < 20
    assert not lock_file.exists()


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EACCES])
@pytest.mark.parametrize("where", ["create", "write"])
def test_a_failed_cache_write_names_the_cache_path(monkeypatch, clips, tmp_path, code, where):
    import emofuse.atomic

    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    if where == "create":
        monkeypatch.setattr(emofuse.atomic.tempfile, "mkstemp", fail)
    else:
        class Full:
            def __init__(self, fd, mode):
                self._fh = open(fd, mode)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self._fh.close()

            write = staticmethod(fail)

        monkeypatch.setattr(emofuse.atomic.os, "fdopen", Full)
    cache_dir = tmp_path / "cache"
    with pytest.raises(DataError) as info:
        extract_features(clips[:2], "logmel", cache_dir, progress=False, on_error="skip")
    message = str(info.value)
    assert str(cache_dir) in message and os.strerror(code) in message
    assert {errno.ENOSPC: "disk is full", errno.EROFS: "read-only", errno.EACCES: "permission denied"}[code] in message
    assert not [p for p in cache_dir.rglob("*") if p.name.endswith(".tmp")], "no partial files"
    assert not list(cache_dir.rglob("*.lock")), "claims are released after the failure"
