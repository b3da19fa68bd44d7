"""Check a feature cache against a dataset: which entries are missing or corrupt (``emofuse extract --verify``).

An entry is corrupt when its ``.npz`` cannot be read without unpickling, has no ``features`` array,
or holds an array of the wrong shape (not 2-D, no rows, another width than the extractor's or than
the other entries') or NaN / infinite values where the extractor does not mark missing rows. Nothing
is computed or deleted: a run of ``emofuse extract`` without ``--verify`` recomputes missing entries
and replaces corrupt ones (the cache drops an entry it cannot read).
"""

from __future__ import annotations

import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from emofuse.errors import DataError
from emofuse.features.base import FeatureExtractor
from emofuse.features.cache import FeatureCache
from emofuse.features.sources import get_source
from emofuse.inputs.missing import rows_problem
from emofuse.paths import cache_root


@dataclass
class Problem:
    """One sample whose entry is missing or corrupt."""

    sample: str
    source: str  # the input's file (or the sample id)
    entry: str  # the cache entry file
    problem: str  # "missing", or what is wrong with the entry


@dataclass
class VerifyReport:
    """What `verify_cache` found for one extractor over a dataset's samples."""

    feature: str
    folder: str
    inputs: int = 0  # samples that have the extractor's source
    ok: int = 0
    absent: int = 0  # samples without the source (nothing to cache)
    problems: list[Problem] = field(default_factory=list)

    @property
    def missing(self) -> int:
        return sum(p.problem == "missing" for p in self.problems)

    @property
    def corrupt(self) -> int:
        return len(self.problems) - self.missing


def read_entry(entry: Path, extractor: FeatureExtractor) -> tuple[np.ndarray | None, str | None]:
    """``(features, None)`` for a good entry, ``(None, why)`` for a missing or corrupt one."""
    if not entry.is_file():
        return None, "missing"
    try:
        with np.load(entry, allow_pickle=False) as data:
            if "features" not in data.files:
                return None, "no 'features' array"
            features = np.asarray(data["features"])
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        return None, f"unreadable ({exc})"
    if features.ndim != 2 or features.shape[0] < 1:
        return None, f"shape {features.shape}, expected [T>=1, D]"
    if extractor.dim is not None and features.shape[1] != extractor.dim:
        return None, f"shape {features.shape}, expected [T, {extractor.dim}]"
    if getattr(extractor, "produces", "sequence") == "vector" and features.shape[0] != 1:
        return None, f"shape {features.shape}, but {extractor.name} gives one row"
    if not np.isfinite(features).all() and rows_problem(features, getattr(extractor, "missing_rows", False)):
        return None, "NaN or infinite values"
    return features, None


def verify_cache(extractor: FeatureExtractor, samples: Sequence[Any], cache_dir: str | Path | None = None) -> VerifyReport:
    """Every sample's cache entry for ``extractor`` checked (`read_entry`); an input that cannot
    be read or keyed is reported as a problem too. Entries of identical inputs are checked once."""
    source = get_source(getattr(extractor, "source", "audio"))
    cache = FeatureCache(cache_root(cache_dir), extractor, source)
    report = VerifyReport(feature=extractor.name, folder=str(cache.folder))
    if not source.cached:
        raise DataError(None, f"{extractor.name} reads {source.name}, which is computed in memory, not cached")
    verdicts: dict[str, tuple[np.ndarray | None, str | None]] = {}
    found: list[tuple[Problem, int]] = []  # readable entries (a placeholder problem) and their width
    for sample in samples:
        try:
            raw = source.read(sample, extractor)
            if raw is None:
                report.absent += 1
                continue
            where, key = str(source.where(raw, sample)), source.key(raw)
        except DataError as exc:
            report.problems.append(Problem(sample.id, str(exc.path or sample.id), "", f"input: {exc.problem}"))
            continue
        report.inputs += 1
        if key not in verdicts:
            verdicts[key] = read_entry(cache.entry(key), extractor)
        features, why = verdicts[key]
        entry = Problem(sample.id, where, str(cache.entry(key)), why or "")
        if features is None:
            report.problems.append(entry)
        else:
            found.append((entry, int(features.shape[1])))
    # one run gives one width (checked here too where the extractor's dim depends on its model)
    usual = Counter(width for _, width in found).most_common(1)[0][0] if found else None
    for entry, width in found:
        if width == usual:
            report.ok += 1
        else:
            entry.problem = f"{width} columns, the other entries have {usual}"
            report.problems.append(entry)
    return report


def view_extractor(store: Any, name: str) -> FeatureExtractor:
    """The extractor `emofuse.features.store.FeatureStore.get` runs for ``name`` in ``store`` (a
    view store wraps it, e.g. speed-perturbed audio)."""
    extractor = store.extractor(name)
    if store.augmentation is not None and store.augmentation.applies_to(extractor):
        from emofuse.features.corrupted import audio_pool
        from emofuse.inputs.views import wrap_view

        extractor = wrap_view(store.augmentation, extractor, audio_pool(store.samples))
    return extractor
