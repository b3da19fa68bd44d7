"""Benchmark results files: what a row's run key depends on (the recipe, folds, seeds and a fingerprint
of the code that computes it), resuming from an interrupted results file, and the machine line."""

from __future__ import annotations

from typing import TYPE_CHECKING
import functools
import hashlib
import platform
from pathlib import Path
from typing import Any
from emofuse.errors import DataError
from emofuse.recipes import Recipe
from emofuse.experiments.lineup import dataset_spec

if TYPE_CHECKING:
    from emofuse.data.specs import DatasetInstance


def machine_description() -> str:
    import os

    return f"{platform.machine()} {os.cpu_count()}-core CPU, {platform.system()}, Python {platform.python_version()}"


def table_title(dataset: str | DatasetInstance, fold_list) -> str:
    """``ravdess: 6 speaker-disjoint folds``; a corpus whose folds are not speaker-disjoint (MELD's
    official split) says so (`emofuse.data.specs.DatasetInstance.title`)."""
    from emofuse.data.specs import DatasetInstance

    if isinstance(dataset, DatasetInstance):
        return dataset.title(len(fold_list))
    spec = dataset_spec(dataset)
    if spec is not None and not spec.speaker_independent:
        return f"{dataset}: {spec.note}"
    return f"{dataset}: {len(fold_list)} speaker-disjoint fold{'s' if len(fold_list) != 1 else ''}"


#: source files (relative to the package) whose code produces a benchmark row, by role; a folder
#: stands for every ``.py`` file under it. Model and feature code is keyed per recipe kind.
CODE_SOURCES: dict[str, tuple[str, ...]] = {
    "neural_model": ("models",),
    "classical_model": ("training/classical.py",),
    "features": ("features", "inputs", "media", "data"),
    "training": ("training", "experiments/benchmark.py", "evaluation/metrics.py"),
    "shift": ("experiments/shift.py", "evaluation/shift.py", "evaluation/calibration.py"),
}


@functools.lru_cache(maxsize=None)
def _source_digest(root: Path, parts: tuple[str, ...]) -> str:
    """sha256 over the bytes (and relative paths) of the ``.py``/``.json`` files under ``parts``
    of ``root``; cached for the process, since the code running does not change under it."""
    digest = hashlib.sha256()
    for part in parts:
        path = root / part
        files = sorted(f for f in path.rglob("*") if f.suffix in (".py", ".json")) if path.is_dir() else [path]
        for file in files:
            digest.update(file.relative_to(root).as_posix().encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def code_fingerprint(recipe: Recipe, root: Path | None = None, roles: tuple[str, ...] | None = None) -> str:
    """Fingerprint of the code behind a recipe's row: the model code (``emofuse/models/`` for a neural
    recipe, the logistic-regression baseline for a classical one), the feature and data code and the
    training/evaluation code, plus the package version. Editing any of those files changes it.
    ``roles`` picks other parts of `CODE_SOURCES` (e.g. ``("shift",)``)."""
    from emofuse import __version__

    root = Path(__file__).resolve().parents[1] if root is None else root
    roles = roles or ("classical_model" if recipe.classical else "neural_model", "features", "training")
    parts = "/".join(_source_digest(root, CODE_SOURCES[role]) for role in roles)
    return hashlib.sha256(f"{__version__}/{parts}".encode()).hexdigest()[:16]


def run_key(recipe: Recipe, dataset: str, fold_names: list[str], seeds, max_epochs: int | None,
            robustness: bool, protocol: str = "standard") -> str:
    """Fingerprint of one benchmark row: everything that changes its numbers (the recipe's model,
    features, kwargs, training and data settings, the folds, seeds, epoch cap, robustness tests and
    `code_fingerprint`: the package version and the source of the code that computes the row) and,
    for another ``protocol`` than the standard one, the protocol and its code.
    A finished row with the same key is reused on resume."""
    import json

    blob = json.dumps({"model": recipe.model, "features": recipe.features, "model_kwargs": recipe.model_kwargs,
                       "train": recipe.train, "data": recipe.data, "dataset": dataset, "folds": fold_names,
                       "seeds": list(seeds), "max_epochs": max_epochs, "robustness": bool(robustness),
                       "code": code_fingerprint(recipe),
                       **({} if protocol == "standard" else
                          {"protocol": protocol, "protocol_code": code_fingerprint(recipe, roles=("shift",))})},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def finished_rows(out: Path | None) -> dict[str, dict[str, Any]]:
    """Rows of an earlier (possibly interrupted) run written to ``out``, by run key."""
    import json

    if out is None or not out.is_file():
        return {}
    try:
        previous = json.loads(out.read_text(encoding="utf-8"))
        return {row["run_key"]: row for row in previous.get("results", []) if row.get("run_key")}
    except (ValueError, AttributeError, TypeError) as exc:
        raise DataError(out, f"cannot resume from this results file ({exc}); pass --fresh to overwrite it") from exc
