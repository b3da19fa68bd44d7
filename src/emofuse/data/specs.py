"""Dataset specifications: what each corpus is, declared once, in its own module.

Each corpus module (``emofuse/data/ravdess.py``, ...) ends with ``register_dataset(DatasetSpec(...))``:
its folder under the data root, label set, packaged folds file, the modalities it provides, its
benchmark line-ups and whether its folds are speaker-independent. Everything else (``emofuse
prepare|extract|train|evaluate|benchmark|ablation``, `emofuse.data.prepare`, `emofuse.data.splits`) reads
the registry, so adding a corpus is one module plus one folds file (``emofuse/data/splits/<name>.json``).
The registry finds corpus modules itself: every module of the ``emofuse.data`` package is imported
on first use.

`load_dataset` also takes a CSV manifest path in place of a name (a user's own corpus): its label
set is read from the file and speaker-disjoint folds are generated (`emofuse.data.splits.generate`).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import pkgutil
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emofuse.errors import ConfigError, DataError

if TYPE_CHECKING:
    from emofuse.data.record import Sample
    from emofuse.data.splits import Fold

log = logging.getLogger("emofuse.data")

#: suffix of a generated folds file: ``<dataset>.folds.json`` beside the results or in the checkpoint
FOLDS_SUFFIX = ".folds.json"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class DatasetSpec:
    """One corpus, as the commands see it.

    Attributes:
        name: the name on the command line (``emofuse benchmark NAME``); lowercase letters, digits, ``_``.
        folder: its folder under the data root (``$EMOFUSE_DATA``); the root itself is used when absent.
        labels: the class list in the model's output order.
        loader: ``loader(folder, **options) -> list[Sample]`` (keyword-only options, ``strict`` among them).
        folds: stem of the packaged folds file in ``emofuse/data/splits/`` (None: folds are generated).
        modalities: what the loaded samples provide (recipes needing more are left out of ``--models all``).
        default_recipes: ``--models default`` line-up.
        all_recipes: ``--models all`` line-up (None: the defaults + every fitting built-in recipe).
        speaker_independent: whether its folds keep test speakers out of training.
        note: said with every result when not speaker-independent (and shown in ``emofuse prepare``).
        options: ``options(data_root) -> dict`` of loader options found under the data root
            (RAVDESS: its action-unit table).
        folds_protocol: ``() -> dict`` building the packaged folds file (`emofuse.data.splits._generate`).
    """

    name: str
    folder: str
    labels: tuple[str, ...]
    loader: Callable[..., list[Sample]]
    folds: str | None
    modalities: frozenset[str]
    default_recipes: tuple[str, ...] = ()
    all_recipes: tuple[str, ...] | None = None
    speaker_independent: bool = True
    note: str = ""
    options: Callable[[Path], dict[str, Any]] | None = field(default=None, compare=False)
    folds_protocol: Callable[[], dict[str, Any]] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ConfigError(f"dataset name {self.name!r}: use lowercase letters, digits and '_'")
        labels = tuple(self.labels)
        if not labels or len(set(labels)) != len(labels):
            raise ConfigError(f"dataset {self.name}: labels must be non-empty and distinct, got {list(labels)}")
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "modalities", frozenset(self.modalities))
        object.__setattr__(self, "default_recipes", tuple(self.default_recipes))
        if self.all_recipes is not None:
            object.__setattr__(self, "all_recipes", tuple(self.all_recipes))
        if not self.speaker_independent and not self.note:
            raise ConfigError(f"dataset {self.name}: say in 'note' why its folds are not speaker-independent")

    def loader_options(self, data_root: Path) -> dict[str, Any]:
        """The loader options found under ``data_root`` (empty when the spec has none)."""
        return dict(self.options(data_root)) if self.options is not None else {}


_REGISTRY: dict[str, DatasetSpec] = {}
_discovered = False


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Add ``spec`` to the registry (a second spec under the same name raises ConfigError)."""
    old = _REGISTRY.get(spec.name)
    if old is not None and old != spec:
        raise ConfigError(f"dataset {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def unregister_dataset(name: str) -> None:
    """Remove a registered dataset (for tests and plug-ins that replace one)."""
    _REGISTRY.pop(name, None)


def _discover() -> None:
    """Import every module of ``emofuse.data`` once, so each corpus module registers its spec."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    import emofuse.data as package

    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package.__name__}.{info.name}")


def list_datasets() -> list[str]:
    """Names of the registered datasets, sorted."""
    _discover()
    return sorted(_REGISTRY)


def get_dataset(name: str) -> DatasetSpec:
    """The spec registered as ``name`` (ConfigError listing the names, when unknown)."""
    _discover()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown dataset {name!r}; available: {', '.join(sorted(_REGISTRY))}, "
                          "or a CSV manifest path (file.csv)")
    return _REGISTRY[name]


def is_manifest(name_or_csv: str | Path) -> bool:
    """Whether a dataset argument is a CSV manifest path rather than a registered name."""
    return str(name_or_csv).lower().endswith(".csv")


def folds_file_for(folder: str | Path, dataset: str | Path) -> Path:
    """Where generated folds of ``dataset`` (a name or a manifest path) live in ``folder``."""
    return Path(folder) / f"{dataset_name(dataset)}{FOLDS_SUFFIX}"


def dataset_name(name_or_csv: str | Path) -> str:
    """A registered name as is; for a manifest path its file stem, lowercased, other characters than
    letters, digits and ``_`` replaced by ``_`` (``My corpus.csv`` -> ``my_corpus``), prefixed with
    ``manifest_`` when it would start otherwise or name a registered corpus (``ravdess.csv``)."""
    if not is_manifest(name_or_csv):
        return str(name_or_csv)
    name = re.sub(r"[^a-z0-9_]", "_", Path(str(name_or_csv)).stem.lower())
    return name if _NAME.match(name) and name not in list_datasets() else f"manifest_{name}"


@dataclass
class DatasetInstance:
    """A loaded dataset: its samples, label set, folds and spec.

    ``folds_file`` is the generated folds file (None for packaged folds, or folds made in memory);
    ``key`` identifies dataset and folds in benchmark run keys."""

    spec: DatasetSpec
    samples: list[Sample]
    labels: list[str]
    folds: list[Fold]
    source: Path
    folds_file: Path | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def key(self) -> str:
        """The name for packaged folds; the name plus a digest of the folds when generated."""
        if self.spec.folds is not None:
            return self.name
        blob = json.dumps([[f.name, f.train, f.val, f.test] for f in self.folds])
        return f"{self.name}@{hashlib.sha256(blob.encode()).hexdigest()[:12]}"

    def select_folds(self, which: str | None) -> list[Fold]:
        """The folds numbered (1-based, comma-separated) in ``which``; all of them when None."""
        if not which:
            return list(self.folds)
        try:
            wanted = [int(x) for x in str(which).split(",") if x.strip()]
        except ValueError:
            raise ConfigError(f"--folds must be comma-separated fold numbers, got {which!r}") from None
        bad = [w for w in wanted if not 1 <= w <= len(self.folds)]
        if bad or not wanted:
            raise ConfigError(f"fold numbers {bad or which} out of range 1..{len(self.folds)}")
        return [self.folds[w - 1] for w in wanted]

    def title(self, n_folds: int) -> str:
        """``ravdess: 6 speaker-disjoint folds``, or the spec's note when not speaker-independent."""
        if not self.spec.speaker_independent:
            return f"{self.name}: {self.spec.note}"
        return f"{self.name}: {n_folds} speaker-disjoint fold{'s' if n_folds != 1 else ''}"


def _registered(spec: DatasetSpec, data_root: str | Path | None, strict: bool, opts: dict[str, Any]):
    if data_root is None:
        raise ConfigError(f"no data folder for {spec.name}: pass --data DIR or set EMOFUSE_DATA")
    root = Path(data_root)
    folder = root / spec.folder
    if not folder.exists():
        folder = root
    samples = spec.loader(folder, **{"strict": strict, **spec.loader_options(root), **opts})
    if not samples:
        raise DataError(folder, f"no {spec.name} samples found")
    return samples, folder


def manifest_spec(csv_path: Path, samples: Sequence[Sample]) -> DatasetSpec:
    """The (unregistered) spec of a user's CSV manifest: labels and modalities read from its samples."""
    from emofuse.data import labels_in
    from emofuse.data.manifest import prepare_manifest

    labels = labels_in(samples)
    if not labels:
        raise DataError(csv_path, "no labelled row: the label column is empty everywhere")
    found = {m for s in samples for m in s.sources if m != "video"}
    if any(str(s.meta.get("gender", "")).upper()[:1] in ("M", "F") for s in samples):
        found.add("meta")
    return DatasetSpec(name=dataset_name(csv_path), folder=str(csv_path), labels=tuple(labels),
                       loader=prepare_manifest, folds=None, modalities=frozenset(found))


def load_dataset(name_or_csv: str | Path, data_root: str | Path | None = None, *, strict: bool = False,
                 num_folds: int | None = None, fold_seed: int | None = None, folds_file: str | Path | None = None,
                 folds_must_exist: bool = False, make_folds: bool = True, progress: bool = False,
                 **opts: Any) -> DatasetInstance:
    """Load a registered dataset (from ``data_root``) or a CSV manifest path, with its folds.

    Args:
        strict: fail on any missing optional piece instead of warning (registered corpora).
        num_folds, fold_seed: for generated folds (a manifest, or a spec without packaged folds):
            K and seed (defaults: `emofuse.data.splits.generate.default_num_folds`, 0 - or the saved file's).
        folds_file: where generated folds are written and reused (None: generated in memory only).
        folds_must_exist: a missing ``folds_file`` is an error (evaluating a checkpoint).
        make_folds: False leaves generated folds out (``folds`` empty: ``emofuse prepare``/``extract``
            need none, and a corpus of fewer than 3 speakers can still be checked).
        progress: say on stderr which folds file was written or reused.
        **opts: further loader options (override the spec's `DatasetSpec.options`).
    """
    from emofuse.data.splits import load_folds

    if is_manifest(name_or_csv):
        from emofuse.data.manifest import prepare_manifest

        source = Path(name_or_csv)
        samples = prepare_manifest(source, **{"dataset": dataset_name(source), **opts})
        unlabelled = [s for s in samples if s.label is None]
        if unlabelled:
            log.warning("%s: %d unlabelled row(s) left out (first: %s)", source, len(unlabelled), unlabelled[0].id)
            samples = [s for s in samples if s.label is not None]
        spec = manifest_spec(source, samples)
    else:
        spec = get_dataset(str(name_or_csv))
        if spec.folds is not None and (num_folds is not None or fold_seed is not None):
            raise ConfigError(f"--num-folds/--fold-seed generate folds for a CSV manifest; {spec.name} has "
                              f"packaged folds (emofuse/data/splits/{spec.folds}.json)")
        samples, source = _registered(spec, data_root, strict, opts)
    if spec.folds is not None:
        return DatasetInstance(spec, samples, list(spec.labels), load_folds(spec.name), source)
    if not make_folds:
        return DatasetInstance(spec, samples, list(spec.labels), [], source)
    from emofuse.data.splits.generate import manifest_folds

    folds, created = manifest_folds(samples, folds_file, dataset=spec.name, num_folds=num_folds, seed=fold_seed,
                                    manifest=source.resolve(), must_exist=folds_must_exist)
    if progress and folds_file is not None:
        verb = "wrote" if created else "reusing"
        print(f"{spec.name}: {verb} {len(folds)} speaker-disjoint folds in {folds_file}", file=sys.stderr)
    return DatasetInstance(spec, samples, list(spec.labels), folds, source,
                           Path(folds_file) if folds_file is not None else None)
