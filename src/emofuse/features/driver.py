"""The one extraction driver: features of any extractor for a list of samples, through the cache.

    from emofuse.features.driver import extract
    arrays = extract("whisper", samples)             # one float32 [T, D] per sample, None if absent
    extract("whisper", samples, shard=(2, 4))        # this process computes a quarter of what is missing

Whatever the source kind (`emofuse.features.sources`: audio, text, table, meta, signal), the driver

* reads each sample's input (None: the sample lacks it, its result is None),
* keys it (content hash) and reads what the cache already holds; identical inputs are computed once,
* computes the rest in batches of ``batch_size`` (``extractor.process``), storing each batch at
  once (atomic writes), so an interrupted run resumes where it stopped,
* claims each entry it computes with a per-entry ``flock`` (`emofuse.features.cache.EntryLock`),
  so several processes sharing one cache split the work and never compute an entry twice, and
* with ``shard=(k, n)`` computes only the k-th of every n entries (1-based, counted over all the
  distinct inputs in sample order, cached or not, so the split does not depend on when each
  process looks): ``n`` processes or machines given ``k = 1..n`` fill the cache together.

Sources whose kind is not cached (``table``, ``meta``) are computed in memory each time.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np

from emofuse.errors import ConfigError, DataError
from emofuse.features.base import FeatureExtractor, get_extractor
from emofuse.features.cache import EntryLock, FeatureCache
from emofuse.features.sources import SourceKind, get_source
from emofuse.inputs.missing import rows_problem
from emofuse.paths import cache_root

log = logging.getLogger(__name__)

#: how often a run re-checks entries that another run is computing
_POLL_SECONDS = 0.2

Shard = tuple[int, int]


def parse_shard(value: str | Sequence[int] | None) -> Shard | None:
    """``"K/N"`` or ``(k, n)`` as a checked ``(k, n)`` with ``1 <= k <= n`` (None stays None)."""
    if value is None:
        return None
    try:
        k, n = (int(x) for x in (value.split("/") if isinstance(value, str) else value))
    except (TypeError, ValueError):
        raise ConfigError(f"shard must be K/N with whole numbers, e.g. 2/4, got {value!r}") from None
    if not 1 <= k <= n:
        raise ConfigError(f"shard K/N needs 1 <= K <= N, got {k}/{n}")
    return k, n


def extract(
    extractor: FeatureExtractor | str,
    samples: Sequence[Any],
    cache_dir: str | Path | None = None,
    progress: bool = True,
    shard: Shard | str | None = None,
    *,
    batch_size: int | None = None,
    on_error: Literal["raise", "skip"] = "raise",
) -> list[np.ndarray | None]:
    """Features (float32 ``[T, D]``) of ``extractor`` for every sample, same order; None where the
    sample lacks the source (or, with ``shard``, where the entry is another shard's and not cached yet).

    Args:
        extractor: an extractor or a registered name.
        samples: `emofuse.data.record.Sample` s (anything with ``id``, ``sources``, ``meta``).
        cache_dir: cache root; None uses `emofuse.paths.cache_root()`.
        progress: show a progress bar.
        shard: ``(k, n)`` or ``"k/n"``: compute only this share of the missing entries.
        batch_size: inputs per ``extractor.process`` call (default: the source kind's).
        on_error: ``"raise"`` raises `DataError` naming the file (or sample); ``"skip"`` logs it and
            returns None in its place. Cache write failures always raise.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    run = _Run(get_extractor(extractor) if isinstance(extractor, str) else extractor, samples, on_error)
    size = run.source.batch_size if batch_size is None else int(batch_size)
    if size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    raws = run.read_all()
    if run.source.cached:
        run.cached(raws, FeatureCache(cache_root(cache_dir), run.extractor, run.source), size, progress,
                   parse_shard(shard))
    else:
        run.in_memory(raws, size)
    run.check_dims()
    return run.results


class _Run:
    """State of one `extract` call: the results so far and how a failing input is handled."""

    def __init__(self, extractor: FeatureExtractor, samples: Sequence[Any], on_error: str) -> None:
        self.extractor = extractor
        self.source: SourceKind = get_source(getattr(extractor, "source", "audio"))
        self.samples = list(samples)
        self.on_error = on_error
        self.results: list[np.ndarray | None] = [None] * len(self.samples)
        self.where: list[Any] = [s.id for s in self.samples]

    def fail(self, indices: Sequence[int], exc: DataError) -> None:
        if self.on_error == "raise":
            raise exc
        log.warning("skipping %s: %s", exc.path if exc.path is not None else self.where[indices[0]], exc.problem)

    def read_all(self) -> list[Any]:
        """Each sample's raw input (None: absent or unreadable-and-skipped); read errors come
        before any computing."""
        raws: list[Any] = []
        for i, sample in enumerate(self.samples):
            try:
                raw = self.source.read(sample, self.extractor)
            except DataError as exc:
                self.fail([i], exc)
                raw = None
            if raw is not None:
                self.where[i] = self.source.where(raw, sample)
            raws.append(raw)
        return raws

    def compute(self, items: list[tuple[Any, list[int]]]) -> list[tuple[list[int], np.ndarray | None]]:
        """Load and compute ``(raw, sample indices)`` items; returns the checked outputs of those
        that did not fail (failures go to `fail`)."""
        loaded, inputs = [], []
        for raw, indices in items:
            try:
                inputs.append(self.source.load(raw, self.extractor))
                loaded.append(indices)
            except DataError as exc:
                self.fail(indices, exc)
        done = []
        outputs = self._process(inputs, [self.where[ix[0]] for ix in loaded]) if inputs else []
        for indices, out in zip(loaded, outputs):
            try:
                if isinstance(out, DataError):
                    raise out
                done.append((indices, None if out is None else self._check(out, self.where[indices[0]])))
            except DataError as exc:
                self.fail(indices, exc)
        return done

    def _process(self, inputs: list[Any], wheres: list[Any]) -> list[Any]:
        """``extractor.process``; if an input makes it fail, retry one by one so the error names it."""
        try:
            outputs = list(self.extractor.process(inputs))
        except DataError:
            outputs = []
        if len(outputs) == len(inputs):
            return outputs
        if outputs:
            raise DataError(wheres[0], f"{self.extractor.name} returned {len(outputs)} results for {len(inputs)} inputs")
        for one, where in zip(inputs, wheres):
            try:
                outputs.append(self.extractor.process([one])[0])
            except DataError as exc:
                outputs.append(DataError(where, exc.problem))
        return outputs

    def _check(self, features: Any, where: Any) -> np.ndarray:
        ext = self.extractor
        features = np.asarray(features, dtype=np.float32)
        dim = ext.dim
        if features.ndim != 2 or features.shape[0] < 1 or (dim is not None and features.shape[1] != dim):
            raise DataError(where, f"{ext.name} produced shape {features.shape}, expected [T>=1, {dim or 'D'}]")
        if getattr(ext, "produces", "sequence") == "vector" and features.shape[0] != 1:
            raise DataError(where, f"{ext.name} declares a vector but produced shape {features.shape}")
        if not np.isfinite(features).all() and rows_problem(features, getattr(ext, "missing_rows", False)):
            raise DataError(where, f"{ext.name} produced NaN or infinite features")
        return features

    def assign(self, indices: list[int], features: np.ndarray | None) -> None:
        for i in indices:
            self.results[i] = features

    def in_memory(self, raws: list[Any], batch_size: int) -> None:
        """Compute every present input (an uncached source kind)."""
        items = [(raw, [i]) for i, raw in enumerate(raws) if raw is not None]
        for start in range(0, len(items), batch_size):
            for indices, features in self.compute(items[start : start + batch_size]):
                self.assign(indices, features)

    def check_dims(self) -> None:
        """One run gives one feature dimension (checked where the extractor's ``dim`` follows the data)."""
        first = next((i for i, a in enumerate(self.results) if a is not None), None)
        if first is None:
            return
        dim = self.results[first].shape[1]
        for i, a in enumerate(self.results):
            if a is not None and a.shape[1] != dim:
                raise DataError(self.where[i], f"{self.extractor.name} gives {a.shape[1]} columns here but {dim} "
                                               f"for {self.where[first]}: every input must have the same")

    def cached(self, raws: list[Any], cache: FeatureCache, batch_size: int, progress: bool,
               shard: Shard | None) -> None:
        """Read what the cache holds, compute this shard's missing entries (claimed, in batches)."""
        groups: dict[str, list[int]] = {}  # cache key -> sample indices, first-seen order
        first_raw: dict[str, Any] = {}
        for i, raw in enumerate(raws):
            if raw is None:
                continue
            try:
                key = self.source.key(raw)
            except DataError as exc:
                self.fail([i], exc)
                continue
            groups.setdefault(key, []).append(i)
            first_raw.setdefault(key, raw)
        mine = set(groups) if shard is None else set(list(groups)[shard[0] - 1 :: shard[1]])
        todo = []
        for key, indices in groups.items():
            found = cache.load(key, self.where[indices[0]])
            if found is not None:
                self.assign(indices, found)
            elif key in mine:
                todo.append(key)
        todo.sort(key=lambda k: self.source.order(first_raw[k]))  # stable: equal keys keep sample order
        done = sum(1 for ix in groups.values() if self.results[ix[0]] is not None)
        bar = _progress_bar(done + len(todo), done, self.extractor.name, self.source.unit,
                            enabled=progress and bool(todo))
        try:
            _Claims(self, cache, groups, first_raw, bar).run(todo, batch_size)
        finally:
            bar.close()


class _Claims:
    """The claim-compute-store loop over missing cache entries, shared safely with other runs."""

    def __init__(self, run: _Run, cache: FeatureCache, groups: dict[str, list[int]], raws: dict[str, Any],
                 bar: Any) -> None:
        self.run_, self.cache, self.groups, self.raws, self.bar = run, cache, groups, raws, bar
        self.locks: dict[str, EntryLock] = {}

    def run(self, pending: list[str], batch_size: int) -> None:
        waiting = False
        try:
            while pending:
                batch, busy, rest = [], [], []
                for n, key in enumerate(pending):
                    if len(batch) == batch_size:
                        rest = pending[n:]
                        break
                    lock = self.cache.claim_key(key)
                    if lock is None:  # another run is computing it: come back to it at the end
                        busy.append(key)
                        continue
                    found = self.cache.load(key, self.run_.where[self.groups[key][0]])  # stored meanwhile?
                    if found is None:
                        self.locks[key] = lock
                        batch.append(key)
                    else:
                        lock.release()
                        self.run_.assign(self.groups[key], found)
                        self.bar.update(1)
                if batch:
                    self.compute(batch)
                elif busy:
                    if not waiting:
                        log.info("%s: waiting for another run computing %d input(s) in %s", self.run_.extractor.name,
                                 len(busy), self.cache.folder)
                        waiting = True
                    time.sleep(_POLL_SECONDS)
                pending = rest + busy
        finally:
            for lock in self.locks.values():
                lock.release()

    def compute(self, batch: list[str]) -> None:
        """Compute and store the claimed entries ``batch``, releasing each claim when done."""
        by_first = {self.groups[key][0]: key for key in batch}
        try:
            for indices, features in self.run_.compute([(self.raws[key], self.groups[key]) for key in batch]):
                key = by_first[indices[0]]
                if features is not None:
                    self.cache.store(key, features, self.cache.source.describe(self.raws[key]))
                    self.run_.assign(indices, features)
                self.locks.pop(key).release()
                self.bar.update(1)
        finally:
            for key in batch:  # failed (skipped) or interrupted: released unwritten
                if key in self.locks:
                    self.locks.pop(key).release()
                    self.bar.update(1)


def _progress_bar(total: int, done: int, name: str, unit: str, *, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=done, desc=f"features[{name}]", unit=unit, disable=not enabled)


def extract_features(
    paths: Sequence[str | Path],
    extractor: FeatureExtractor | str,
    cache_dir: str | Path | None = None,
    *,
    progress: bool = True,
    batch_size: int = 8,
    on_error: Literal["raise", "skip"] = "raise",
) -> list[np.ndarray | None]:
    """Features for every audio/video file in ``paths`` (same order): `extract` on samples that
    hold only those files. ``on_error="skip"`` gives None for a file that cannot be read."""
    from emofuse.data.record import Sample

    if isinstance(extractor, str):
        extractor = get_extractor(extractor)
    if extractor.source != "audio":
        raise ConfigError(f"{extractor.name} reads {extractor.source}, not audio files: use "
                          f"emofuse.features.driver.extract with samples (or extract_text_features for text)")
    samples = [Sample(id=str(p), speaker="", dataset="", label=None, sources={"audio": Path(p)}) for p in paths]
    return extract(extractor, samples, cache_dir, progress, batch_size=batch_size, on_error=on_error)
