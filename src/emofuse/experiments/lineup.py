"""Which recipes a benchmark runs on a dataset: its spec's line-ups, the recipes that fit the modalities
it provides, and loading a dataset (a registered name or a CSV manifest) for a command."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING
from pathlib import Path
from typing import Any
from emofuse.data.record import Sample
from emofuse.errors import ConfigError
from emofuse.recipes import Recipe
from emofuse.recipes import builtin_recipe_names
from emofuse.recipes import load_recipe

if TYPE_CHECKING:
    from emofuse.data.specs import DatasetInstance, DatasetSpec

log = logging.getLogger("emofuse.experiments.lineup")


#: Names this module used to define, now read from the dataset specs (`emofuse.data.specs`).
_SPEC_VIEWS = ("DATASET_DIRS", "RAVDESS_AU_CSV", "DEFAULT_RECIPES", "ALL_RECIPES", "DATASET_MODALITIES")


def __getattr__(name: str) -> Any:
    """`_SPEC_VIEWS`: read-only views of the registered dataset specs, for older callers."""
    if name not in _SPEC_VIEWS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name == "RAVDESS_AU_CSV":
        from emofuse.data.ravdess import AU_TABLE

        return AU_TABLE
    from emofuse.data.specs import get_dataset, list_datasets

    specs = [get_dataset(n) for n in list_datasets()]
    if name == "DATASET_DIRS":
        return {s.name: s.folder for s in specs}
    if name == "DEFAULT_RECIPES":
        return {s.name: list(s.default_recipes) for s in specs}
    if name == "ALL_RECIPES":
        return {s.name: list(s.all_recipes) for s in specs if s.all_recipes is not None}
    return {s.name: set(s.modalities) for s in specs}


def load_dataset(name: str, data_root: str | Path, *, strict: bool = False) -> list[Sample]:
    """Samples of a registered dataset found under ``data_root`` (the folder itself or its standard
    sub-folder), or of a CSV manifest path (see `emofuse.data.specs.load_dataset`, which also gives
    the label set and folds)."""
    from emofuse.data.specs import load_dataset as load

    return load(name, data_root, strict=strict).samples


def dataset_instance(dataset: str | DatasetInstance, data_root: str | Path | None, *, folds_dir: Path | None = None,
              num_folds: int | None = None, fold_seed: int | None = None, must_exist: bool = False,
              progress: bool = False) -> DatasetInstance:
    """``dataset`` loaded (a name or a manifest path; an instance is returned as is). Generated folds
    (a manifest) are written to and reused from ``folds_dir`` (`emofuse.data.specs.folds_file_for`)."""
    from emofuse.data.specs import DatasetInstance, folds_file_for, load_dataset as load

    if isinstance(dataset, DatasetInstance):
        return dataset
    folds_file = folds_file_for(folds_dir, dataset) if folds_dir is not None else None
    return load(dataset, data_root, num_folds=num_folds, fold_seed=fold_seed, folds_file=folds_file,
                folds_must_exist=must_exist, progress=progress)


def dataset_spec(dataset: str | DatasetSpec) -> DatasetSpec | None:
    from emofuse.data.specs import DatasetSpec, get_dataset, list_datasets

    if isinstance(dataset, DatasetSpec):
        return dataset
    return get_dataset(dataset) if dataset in list_datasets() else None


def recipe_fits(recipe: Recipe, dataset: str | DatasetSpec) -> bool:
    """Whether ``dataset`` provides every modality ``recipe`` reads (`DatasetSpec.modalities`) and the
    recipe is not tuned for another corpus (a ``_ravdess`` / ``_meld`` / ... part in its name)."""
    from emofuse.data.specs import list_datasets

    spec = dataset_spec(dataset)
    available = spec.modalities if spec is not None else {"audio", "text", "face", "meta"}
    name = spec.name if spec is not None else str(dataset)
    parts = recipe.name.split("_")[1:]
    tuned_elsewhere = any(d in parts for d in list_datasets() if d != name)
    return set(recipe.modalities) <= available and not tuned_elsewhere


def resolve_recipes(spec: str, dataset: str | DatasetSpec) -> list[Recipe]:
    """``default`` (the dataset spec's ``default_recipes``), ``all`` (its ``all_recipes``, else the
    defaults + every built-in recipe that `recipe_fits` the dataset) or a comma-separated list of
    recipe names / YAML paths (run as given)."""
    ds = dataset_spec(dataset)
    if spec == "all" and ds is not None and ds.all_recipes is not None:
        return [load_recipe(n) for n in ds.all_recipes]
    if spec in ("default", "all"):
        names = list(ds.default_recipes) if ds is not None else []
        if spec == "all":
            names += [n for n in builtin_recipe_names() if n not in names]
        recipes = []
        for n in names:
            try:
                recipes.append(load_recipe(n))
            except ConfigError as exc:  # e.g. a ladder file, which is a list of recipes
                log.debug("skipping %s: %s", n, exc)
        return [r for r in recipes if recipe_fits(r, ds if ds is not None else dataset)]
    return [load_recipe(n.strip()) for n in spec.split(",") if n.strip()]
