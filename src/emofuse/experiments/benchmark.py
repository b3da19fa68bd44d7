"""Speaker-independent benchmarks: every recipe (classical baselines and neural models) over the
dataset's canonical folds, in one command, one table and one JSON file.

``emofuse benchmark ravdess --data DIR --out results.json`` is the entry point (see cli.py).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import platform
import sys
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from emofuse.training.classical import fit_predict_logreg
from emofuse.data.record import Sample
from emofuse.errors import ConfigError, DataError
from emofuse.features.store import FeatureStore, input_dims, vector_modalities
from emofuse.inputs.plan import InputPlan
from emofuse.evaluation.metrics import aggregate, classification_metrics
from emofuse.recipes import Recipe, builtin_recipe_names, load_recipe

if TYPE_CHECKING:
    from emofuse.data.specs import DatasetInstance, DatasetSpec

log = logging.getLogger("emofuse.experiments.benchmark")

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


def _instance(dataset: str | DatasetInstance, data_root: str | Path | None, *, folds_dir: Path | None = None,
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


def _spec(dataset: str | DatasetSpec) -> DatasetSpec | None:
    from emofuse.data.specs import DatasetSpec, get_dataset, list_datasets

    if isinstance(dataset, DatasetSpec):
        return dataset
    return get_dataset(dataset) if dataset in list_datasets() else None


def recipe_fits(recipe: Recipe, dataset: str | DatasetSpec) -> bool:
    """Whether ``dataset`` provides every modality ``recipe`` reads (`DatasetSpec.modalities`) and the
    recipe is not tuned for another corpus (a ``_ravdess`` / ``_meld`` / ... part in its name)."""
    from emofuse.data.specs import list_datasets

    spec = _spec(dataset)
    available = spec.modalities if spec is not None else {"audio", "text", "face", "meta"}
    name = spec.name if spec is not None else str(dataset)
    parts = recipe.name.split("_")[1:]
    tuned_elsewhere = any(d in parts for d in list_datasets() if d != name)
    return set(recipe.modalities) <= available and not tuned_elsewhere


def resolve_recipes(spec: str, dataset: str | DatasetSpec) -> list[Recipe]:
    """``default`` (the dataset spec's ``default_recipes``), ``all`` (its ``all_recipes``, else the
    defaults + every built-in recipe that `recipe_fits` the dataset) or a comma-separated list of
    recipe names / YAML paths (run as given)."""
    ds = _spec(dataset)
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


def run_classical(recipe: Recipe, samples: list[Sample], store: FeatureStore, folds, labels: list[str],
                  seeds=(0,), progress: bool = True) -> dict[str, Any]:
    """Logistic-regression baseline over the folds (C chosen on validation speakers).

    The lbfgs solver is deterministic, so the baseline runs once per fold whatever ``seeds`` says
    (repeating it per seed would only repeat the numbers and shrink the standard deviation)."""
    data = classical_data(recipe, samples, store, labels)
    runs, seconds = [], []
    for seed in list(seeds)[:1]:
        for fold in folds:
            start = time.perf_counter()
            res, te = fit_classical_fold(data, fold, len(labels), seed)
            seconds.append(time.perf_counter() - start)
            metrics = classification_metrics(data.y[te], res.probabilities.argmax(1), labels)
            runs.append(metrics)
            if progress:
                print(f"{recipe.name} fold {fold.name}: WA {metrics['wa']:.3f} UA {metrics['ua']:.3f} (C={res.chosen_c})",
                      file=sys.stderr)
    agg = aggregate(runs)
    row = _row(recipe, agg, seconds, n_runs=len(runs))
    row["confusion"] = np.sum([r["confusion"] for r in runs], axis=0).tolist()
    return row


@dataclass
class ClassicalData:
    """A classical recipe's per-clip matrices over the samples that have every modality."""

    samples: list[Sample]
    x: np.ndarray
    y: np.ndarray
    #: modality -> width of its block of columns in ``x`` (in column order)
    dims: dict[str, int]
    train_views: list[np.ndarray]
    test_views: list[np.ndarray]
    #: how the matrices were built (saved in a trained checkpoint)
    plan: InputPlan | None = None


def classical_data(recipe: Recipe, samples: list[Sample], store: FeatureStore, labels: list[str]) -> ClassicalData:
    """The recipe's input plan (pooled vectors) concatenated per clip, for the original and each
    augmented view; samples lacking a modality are left out (with a warning)."""
    plan = InputPlan.from_recipe(recipe)
    feats = plan.arrays(store)
    train_views, test_views = plan.view_arrays(store)
    index = {lab: i for i, lab in enumerate(labels)}
    keep = [i for i in range(len(samples)) if all(v[m][i] is not None for v in (feats, *train_views.values(),
                                                                                   *test_views.values()) for m in v)]
    if len(keep) < len(samples):
        log.warning("%s: %d of %d samples lack a modality and are left out of the classical baseline",
                    recipe.name, len(samples) - len(keep), len(samples))
    if not keep:
        raise DataError(None, f"{recipe.name}: no sample has every modality of {list(feats)}")

    def matrix(view: dict[str, list[np.ndarray | None]]) -> np.ndarray:
        return np.stack([np.concatenate([view[m][i][0] for m in view]) for i in keep])

    kept = [samples[i] for i in keep]
    return ClassicalData(kept, matrix(feats), np.array([index[s.label] for s in kept]),
                         {m: int(feats[m][keep[0]].shape[-1]) for m in feats},
                         [matrix(v) for v in train_views.values()], [matrix(v) for v in test_views.values()], plan)


def fit_classical_fold(data: ClassicalData, fold, num_classes: int, seed: int = 0):
    """``(result, test indices)``: the logistic regression with C chosen on the fold's validation
    samples, refitted on training + validation (each with its speed-perturbed copies), and its
    probabilities for the test samples averaged over the test-time views. A fold without test
    groups (``emofuse train --fold 0``) is scored on its validation samples (not held out)."""
    from emofuse.data.splits import partition

    tr, va, te = partition(data.samples, fold)
    if not fold.test:
        te = va
    for part, idx in (("train", tr), ("validation", va), ("test", te)):
        if not idx:
            raise ConfigError(f"fold {fold.name}: the {part} partition has no samples")
    x, y, views = data.x, data.y, data.train_views
    x_tr = np.concatenate([x[tr], *(v[tr] for v in views)])
    y_tr = np.concatenate([y[tr]] * (1 + len(views)))
    x_va = np.concatenate([x[va], *(v[va] for v in views)])
    y_va = np.concatenate([y[va]] * (1 + len(views)))
    res = fit_predict_logreg(x_tr, y_tr, x[va], y[va], [x[te], *(v[te] for v in data.test_views)], num_classes,
                             seed=seed, x_refit=x_va, y_refit=y_va)
    return res, te


def augmentation_fields(recipe: Recipe) -> dict[str, list[float]]:
    """The recipe's speed-perturbation settings for a results row (empty lists: none)."""
    return {"speed_perturb": list(recipe.train_speeds), "test_time_augment": list(recipe.test_speeds)}


def _row(recipe: Recipe, agg: dict[str, Any], seconds: list[float], **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"model": recipe.name, "architecture": recipe.model, "modalities": recipe.modalities,
                           "features": recipe.features, "speaker_norm": bool(recipe.data.get("speaker_norm")),
                           **augmentation_fields(recipe)}
    for key in ("wa", "ua", "macro_f1", "weighted_f1"):
        row[f"{key}_mean"] = agg[f"{key}_mean"]
        row[f"{key}_std"] = agg[f"{key}_std"]
    row["train_seconds"] = float(np.mean(seconds))
    row["train_seconds_total"] = float(np.sum(seconds))
    row.update(extra)
    return row


def augmented_views(recipe: Recipe, store: FeatureStore):
    """``(train_views, test_views)``: view name (``speed0.9``) -> the recipe's inputs on that view
    (`InputPlan.view_arrays`); empty when the recipe asks for none or no view changes any of its
    features (see `emofuse.training.kfold.run_kfold`)."""
    return InputPlan.from_recipe(recipe).view_arrays(store)


def neural_setup(recipe: Recipe, store: FeatureStore, plan: InputPlan | None = None):
    """Inputs (built by the recipe's `InputPlan`), a model factory and the training config for a
    neural recipe."""
    from emofuse.models import create_model
    from emofuse.training.config import load_train_config

    feats = (plan or InputPlan.from_recipe(recipe)).arrays(store)
    kwargs = dict(recipe.model_kwargs)
    dims = input_dims(feats)
    if recipe.model == "attention_pooling":
        kwargs.setdefault("vector_modalities", vector_modalities(feats))
    cfg = load_train_config(recipe.train)

    def build():
        return create_model(recipe.model, num_classes=len(store.labels), input_dims=dims, **kwargs)

    return feats, build, cfg


def run_neural(recipe: Recipe, samples: list[Sample], store: FeatureStore, folds, labels: list[str], seeds=(0,),
               max_epochs: int | None = None, progress: bool = True, robustness: bool = False,
               report_dir: Path | None = None) -> dict[str, Any]:
    """Train/evaluate a registered model over the folds (early stopping on validation speakers)."""
    from emofuse.training.kfold import run_kfold

    store.labels = labels
    plan = InputPlan.from_recipe(recipe)
    feats, build, cfg = neural_setup(recipe, store, plan)
    if max_epochs:
        cfg = cfg.replace(max_epochs=max_epochs)
    conditions = robustness_conditions(recipe.modalities) if robustness else {}
    train_views, test_views = plan.view_arrays(store)
    result = run_kfold(samples, feats, labels, folds, build, cfg, seeds=seeds, progress=progress,
                       standardize=plan.standardize, extra_tests=conditions, train_views=train_views,
                       test_views=test_views,
                       out_dir=None if report_dir is None else report_dir / recipe.name)
    row = result.summary(recipe.name, recipe.modalities, architecture=recipe.model, features=recipe.features,
                         speaker_norm=bool(recipe.data.get("speaker_norm")), **augmentation_fields(recipe))
    row["best_epochs"] = [r.best_epoch for r in result.runs]
    row["confusion"] = result.confusion().tolist()
    row["modality_dropout"] = float(cfg.modality_dropout)
    if conditions:
        row["robustness"] = result.extra_aggregates()
    ensemble = result.seed_ensemble()
    if ensemble is not None:
        row["seed_ensemble"] = ensemble
    return row


def robustness_conditions(modalities: list[str]) -> dict[str, dict[str, Any]]:
    """Test-time conditions: each single modality alone, and random modality drop rates."""
    conds: dict[str, dict[str, Any]] = {}
    if len(modalities) > 1:
        for m in modalities:
            conds[f"only_{m}"] = {"modalities": [m]}
        for rate in (0.1, 0.2, 0.3, 0.4, 0.5):
            conds[f"drop_{rate:.1f}"] = {"drop_rate": rate}
    return conds


def machine_description() -> str:
    import os

    return f"{platform.machine()} {os.cpu_count()}-core CPU, {platform.system()}, Python {platform.python_version()}"


def _table_title(dataset: str | DatasetInstance, fold_list) -> str:
    """``ravdess: 6 speaker-disjoint folds``; a corpus whose folds are not speaker-disjoint (MELD's
    official split) says so (`emofuse.data.specs.DatasetInstance.title`)."""
    from emofuse.data.specs import DatasetInstance

    if isinstance(dataset, DatasetInstance):
        return dataset.title(len(fold_list))
    spec = _spec(dataset)
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


def code_fingerprint(recipe: Recipe, root: Path | None = None) -> str:
    """Fingerprint of the code behind a recipe's row: the model code (``emofuse/models/`` for a neural
    recipe, the logistic-regression baseline for a classical one), the feature and data code and the
    training/evaluation code, plus the package version. Editing any of those files changes it."""
    from emofuse import __version__

    root = Path(__file__).resolve().parents[1] if root is None else root
    roles = ("classical_model" if recipe.classical else "neural_model", "features", "training")
    parts = "/".join(_source_digest(root, CODE_SOURCES[role]) for role in roles)
    return hashlib.sha256(f"{__version__}/{parts}".encode()).hexdigest()[:16]


def run_key(recipe: Recipe, dataset: str, fold_names: list[str], seeds, max_epochs: int | None,
            robustness: bool) -> str:
    """Fingerprint of one benchmark row: everything that changes its numbers (the recipe's model,
    features, kwargs, training and data settings, the folds, seeds, epoch cap, robustness tests and
    `code_fingerprint`: the package version and the source of the code that computes the row).
    A finished row with the same key is reused on resume."""
    import json

    blob = json.dumps({"model": recipe.model, "features": recipe.features, "model_kwargs": recipe.model_kwargs,
                       "train": recipe.train, "data": recipe.data, "dataset": dataset, "folds": fold_names,
                       "seeds": list(seeds), "max_epochs": max_epochs, "robustness": bool(robustness),
                       "code": code_fingerprint(recipe)}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _finished_rows(out: Path | None) -> dict[str, dict[str, Any]]:
    """Rows of an earlier (possibly interrupted) run written to ``out``, by run key."""
    import json

    if out is None or not out.is_file():
        return {}
    try:
        previous = json.loads(out.read_text(encoding="utf-8"))
        return {row["run_key"]: row for row in previous.get("results", []) if row.get("run_key")}
    except (ValueError, AttributeError, TypeError) as exc:
        raise DataError(out, f"cannot resume from this results file ({exc}); pass --fresh to overwrite it") from exc


def run_benchmark(dataset: str | DatasetInstance, data_root: str | Path | None, *, models: str = "default",
                  out: str | None = None, report_dir: str | None = None, cache_dir: str | None = None, seeds=(0,),
                  folds: str | None = None, max_epochs: int | None = None, progress: bool = True,
                  robustness: bool = False, resume: bool = True, num_folds: int | None = None,
                  fold_seed: int | None = None) -> dict[str, Any]:
    """Run every selected recipe over the folds and print/write one results table.

    ``dataset`` is a registered name, a CSV manifest path or a loaded `DatasetInstance`. A manifest's
    speaker-disjoint folds (``num_folds``, ``fold_seed``) are written beside ``out`` (else in
    ``report_dir``) as ``<name>.folds.json`` and reused by later runs.
    With ``out``, the JSON is rewritten (atomically) after every recipe, so an interrupted run
    loses at most the recipe in progress; run the same command again and finished rows whose
    `run_key` still matches are reused (``resume=False`` recomputes everything).
    """
    from emofuse.evaluation.reports import (format_table, plot_confusion, plot_robustness, robustness_table,
                                 write_json_atomic, write_results)

    folds_dir = Path(out).parent if out else Path(report_dir) if report_dir else None
    data = _instance(dataset, data_root, folds_dir=folds_dir, num_folds=num_folds, fold_seed=fold_seed,
                     progress=progress)
    samples, labels, dataset = data.samples, data.labels, data.name
    fold_list = data.select_folds(folds)
    recipes = resolve_recipes(models, data.spec)
    if not recipes:
        hint = "" if data.spec.default_recipes or models not in ("default",) else \
            f"; {dataset} has no default line-up: name recipes with --models (e.g. logreg_egemaps)"
        raise ConfigError(f"no recipe selected by --models {models!r}{hint}")
    out_path = Path(out) if out else None
    finished = _finished_rows(out_path) if resume else {}
    fold_names = [f.name for f in fold_list]
    keys = {r.name: run_key(r, data.key, fold_names, seeds, max_epochs, robustness) for r in recipes}
    store = FeatureStore(samples, cache_dir, progress=progress)
    store.labels = labels
    todo = [r for r in recipes if keys[r.name] not in finished]
    for name in sorted({f for r in todo for f in r.feature_names}):  # extract (cached) before timing
        store.get(name)
    for recipe in todo:  # and their augmented views (speed copies; kept in memory by the store's views)
        for view in InputPlan.from_recipe(recipe).views:
            for name in recipe.feature_names:
                store.view(view).get(name)
    rows: list[dict[str, Any]] = []
    report = Path(report_dir) if report_dir else None
    results = {
        "dataset": dataset, "date": date.today().isoformat(), "machine": machine_description(),
        "command": " ".join(["emofuse", *sys.argv[1:]]) if sys.argv and sys.argv[0].endswith("emofuse") else None,
        "folds": fold_names, "seeds": list(seeds), "labels": labels, "results": rows,
    }
    for recipe in recipes:
        key = keys[recipe.name]
        if key in finished:
            row = finished[key]
            if progress:
                print(f"reusing {recipe.name} from {out_path} (same run key {key}): WA {row['wa_mean']:.3f}",
                      file=sys.stderr)
        else:
            start = time.perf_counter()
            if recipe.classical:
                row = run_classical(recipe, samples, store, fold_list, labels, seeds, progress)
            else:
                row = run_neural(recipe, samples, store, fold_list, labels, seeds, max_epochs, progress, robustness,
                                 report)
            row["wall_seconds"] = time.perf_counter() - start
            row["run_key"] = key
            row["date"] = date.today().isoformat()
            if progress:
                print(f"done {recipe.name}: WA {row['wa_mean']:.3f} ± {row['wa_std']:.3f} "
                      f"({row['wall_seconds']:.0f} s)", file=sys.stderr)
        rows.append(row)
        if out_path is not None:
            write_json_atomic(out_path, {**results, "complete": len(rows) == len(recipes)})
        if report is not None:
            plot_confusion(np.asarray(row["confusion"]), labels, report / f"confusion_{recipe.name}.png",
                           title=f"{recipe.name} ({dataset}, {len(fold_list)} folds, summed)")
            if row.get("seed_ensemble"):
                ensemble = row["seed_ensemble"]
                plot_confusion(np.asarray(ensemble["confusion"]), labels,
                               report / f"confusion_{recipe.name}_ensemble.png",
                               title=f"{recipe.name}, {ensemble['members']}-seed ensemble ({dataset}, summed over folds)")
    results["complete"] = True
    print(format_table(results, title=_table_title(data, fold_list)))
    robust = robustness_table(results)
    if robust:
        print("Missing-modality robustness (WA at test time):\n" + robust)
    if report is not None:
        write_results(report, results)
        plot_robustness(results, report / "robustness.png", title=f"{dataset}: WA vs modality drop rate")
    return results


def feature_speed(data_root: str | Path, names: list[str], n_clips: int = 40) -> list[dict[str, Any]]:
    """Real-time factor of each extractor on the first ``n_clips`` RAVDESS clips (no cache)."""
    from emofuse.features.speed import measure_rtf

    samples = load_dataset("ravdess", data_root)[:n_clips]
    return measure_rtf(names, [Path(s.sources["audio"]) for s in samples])


def _feature_specs(recipe: Recipe) -> dict[str, dict[str, Any]]:
    """Checkpoint record of how each modality's features are computed (extractor configs, ``pooled``
    for a classical recipe, ``dialogue_window``): the ``features`` of the recipe's `InputPlan`."""
    return InputPlan.from_recipe(recipe).feature_specs()


def training_setup(recipe: Recipe, dataset: str, fold: int, seed: int, max_epochs: int | None) -> dict[str, Any]:
    """Everything that shapes a trained checkpoint's weights: the recipe's content, the effective
    training configuration (``--max-epochs`` and the seed applied), dataset, fold, seed and feature
    extractor settings. Saved in each checkpoint's ``meta.setup`` (with `setup_fingerprint`); a seed
    ensemble keeps a member only when it matches (see `_train_ensemble`)."""
    from emofuse.training.classical import DEFAULT_C_GRID
    from emofuse.training.config import load_train_config

    if recipe.classical:
        train: dict[str, Any] = {"c_grid": list(DEFAULT_C_GRID), "seed": seed}
    else:
        cfg = load_train_config(recipe.train).replace(seed=seed)
        train = (cfg.replace(max_epochs=max_epochs) if max_epochs else cfg).to_dict()
    return {"recipe": {"name": recipe.name, "model": recipe.model, "features": recipe.features,
                       "model_kwargs": recipe.model_kwargs, "train": recipe.train, "data": recipe.data},
            "train": train, "dataset": dataset, "fold": fold, "seed": seed, "features": _feature_specs(recipe)}


def setup_fingerprint(setup: dict[str, Any]) -> str:
    """A short hash of a `training_setup` (its canonical JSON)."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps(setup, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _setup_changes(old: Any, new: dict[str, Any]) -> str:
    """What differs between a saved `training_setup` and the wanted one, in words."""
    if not isinstance(old, dict):
        return "it records no training setup (trained by an older emofuse)"
    changes = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            changes += [f"{key}.{k} {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        else:
            changes.append(f"{key} {a!r} -> {b!r}")
    return "its training setup differs: " + "; ".join(changes)


def _train_fold(data: DatasetInstance, fold: int):
    """The fold ``emofuse train --fold`` means: fold N of the dataset, or for 0 a training-only
    fold over every speaker, fold 1's validation speakers kept for early stopping / choosing C."""
    from emofuse.data.splits import Fold

    if fold != 0:
        return data.select_folds(str(fold))[0]
    first = data.folds[0]
    everyone = sorted({s.speaker for s in data.samples} - set(first.val))
    return Fold("all", train=tuple(everyone), val=first.val, test=(), group_by=first.group_by)


def _checkpoint_meta(recipe: Recipe, dataset: str, chosen, *, refit: bool, setup: dict[str, Any],
                     metrics: dict[str, Any], description: str | None) -> dict[str, Any]:
    """A trained checkpoint's ``meta``: which speakers trained the weights (``train_speakers``,
    validation speakers included after a refit), which chose the epoch or C (``val_speakers``),
    which are held out (``test_speakers``, empty for fold 0) and the held-out scores."""
    scores = {k: v for k, v in metrics.items() if k in ("wa", "ua", "macro_f1", "n")}
    held_out = bool(chosen.test)
    return {"recipe": recipe.name, "dataset": dataset, "fold": chosen.name, "seed": setup["seed"],
            "train_speakers": sorted({*chosen.train, *(chosen.val if refit else ())}),
            "val_speakers": list(chosen.val), "test_speakers": list(chosen.test), "refit": refit,
            "train_config": setup["train"], **augmentation_fields(recipe),
            "test_metrics": scores if held_out else {},
            **({} if held_out or refit else {"val_metrics": scores}),
            "setup": setup, "setup_fingerprint": setup_fingerprint(setup),
            "description": description or f"{recipe.name} trained on {dataset} "
                                          + (f"fold {chosen.name}" if held_out else "every speaker (fold 0)")}


def train_recipe(recipe_name: str | Recipe, dataset: str | DatasetInstance, data_root: str | Path | None, *,
                 out_dir: Path, fold: int = 1, cache_dir: str | None = None, max_epochs: int | None = None,
                 progress: bool = True, description: str | None = None, seeds: tuple[int, ...] = (0,),
                 num_folds: int | None = None, fold_seed: int | None = None) -> dict[str, Any]:
    """Train a recipe on one fold (a neural one with early stopping on its validation speakers, a
    classical one with C chosen on them and refitted on training + validation), evaluate it on the
    fold's test speakers and save a checkpoint. ``fold=0`` trains on every speaker: fold 1's
    validation speakers only validate (and train too after a refit); there is no test set.

    With several ``seeds`` the result is a seed ensemble: one checkpoint per seed in
    ``out_dir/seed_<s>/`` plus ``out_dir/ensemble.json`` naming them (load ``out_dir`` with
    `emofuse.inference.predictor.Predictor` or ``emofuse evaluate``). A member already saved there is kept
    only when its whole `training_setup` matches (so an interrupted run resumes); otherwise it is
    retrained, saying why. The returned metrics are the ensemble's (probabilities averaged over
    members); empty without a held-out test set.

    ``dataset`` is a registered name, a CSV manifest path or a loaded `DatasetInstance`; a manifest's
    generated folds (``num_folds``, ``fold_seed``) are saved in ``out_dir`` (`emofuse.data.specs.folds_file_for`),
    where ``emofuse evaluate`` finds them."""
    seeds = tuple(int(s) for s in seeds)
    if len(set(seeds)) != len(seeds) or not seeds:
        raise ConfigError(f"seeds must be distinct and at least one, got {list(seeds)}")
    recipe = recipe_name if isinstance(recipe_name, Recipe) else load_recipe(recipe_name)
    if recipe.data.get("speaker_norm"):
        raise ConfigError(f"{recipe.name}: speaker-normalised recipes need each test speaker's other clips and are "
                          "benchmark-only; train the recipe without speaker_norm for a deployable checkpoint")
    if fold < 0:
        raise ConfigError(f"--fold must be 0 (every speaker) or a fold number, got {fold}")
    if recipe.classical and len(seeds) > 1:
        raise ConfigError(f"{recipe.name}: a logistic regression is deterministic, so several seeds would give "
                          "identical members; train it with one seed")
    data = _instance(dataset, data_root, folds_dir=Path(out_dir), num_folds=num_folds, fold_seed=fold_seed,
                     progress=progress)
    if len(seeds) > 1:
        return _train_ensemble(recipe, data, data_root, out_dir=Path(out_dir), fold=fold, cache_dir=cache_dir,
                               max_epochs=max_epochs, progress=progress, description=description, seeds=seeds)
    samples, labels = data.samples, data.labels
    chosen = _train_fold(data, fold)
    setup = training_setup(recipe, data.key, fold, seeds[0], max_epochs)
    store = FeatureStore(samples, cache_dir, progress=progress)
    store.labels = labels
    train = _train_classical if recipe.classical else _train_neural
    metrics = train(recipe, samples, store, labels, chosen, setup, Path(out_dir), description, progress)
    if progress:
        if not chosen.test:
            print(f"saved {out_dir}; trained on every speaker, so there is no held-out score"
                  + (f" (validation speakers {', '.join(chosen.val)}: WA {metrics['wa']:.3f}, used for early "
                     "stopping)" if metrics else ""))
        else:
            print(f"saved {out_dir}; test WA {metrics['wa']:.3f} UA {metrics['ua']:.3f}")
    return metrics if chosen.test else {}


def _train_neural(recipe: Recipe, samples: list[Sample], store: FeatureStore, labels: list[str], chosen,
                  setup: dict[str, Any], out_dir: Path, description: str | None, progress: bool) -> dict[str, Any]:
    """`train_recipe` for a registered model: `run_kfold` on one fold, the checkpoint saved when it ends.
    Returns the scores (test speakers; for a training-only fold without refit, validation speakers)."""
    from emofuse.inference.checkpoint import save_checkpoint
    from emofuse.inputs.normalize import stats_to_tensors
    from emofuse.training.config import TrainConfig
    from emofuse.training.kfold import run_kfold

    plan = InputPlan.from_recipe(recipe)
    feats, build, _ = neural_setup(recipe, store, plan)
    cfg = TrainConfig.from_dict(setup["train"])
    saved: dict[str, Any] = {}

    def save(fold_obj, model, info):
        saved["metrics"] = {} if cfg.refit and not fold_obj.test else info["metrics"]
        save_checkpoint(out_dir, model, labels=labels, features=plan.feature_specs(), input_plan=plan,
                        extras=stats_to_tensors(info["stats"] or {}),
                        meta=_checkpoint_meta(recipe, setup["dataset"], fold_obj, refit=cfg.refit, setup=setup,
                                              metrics=saved["metrics"], description=description))

    train_views, test_views = plan.view_arrays(store)
    run_kfold(samples, feats, labels, [chosen], build, cfg, seeds=(cfg.seed,), progress=progress,
              standardize=plan.standardize, on_fold_end=save, train_views=train_views, test_views=test_views)
    return saved["metrics"]


def _train_classical(recipe: Recipe, samples: list[Sample], store: FeatureStore, labels: list[str], chosen,
                     setup: dict[str, Any], out_dir: Path, description: str | None, progress: bool) -> dict[str, Any]:
    """`train_recipe` for ``model: logreg``: C chosen on the validation speakers, refitted on
    training + validation, saved as a ``logistic_regression`` checkpoint (`export_logreg`)."""
    from emofuse.training.classical import export_logreg
    from emofuse.inference.checkpoint import save_checkpoint
    from emofuse.inputs.normalize import stats_to_tensors

    data = classical_data(recipe, samples, store, labels)
    res, te = fit_classical_fold(data, chosen, len(labels), setup["seed"])
    metrics = classification_metrics(data.y[te], res.probabilities.argmax(1), labels) if chosen.test else {}
    model, stats = export_logreg(res.model, len(labels), data.dims)
    meta = _checkpoint_meta(recipe, setup["dataset"], chosen, refit=True, setup=setup, metrics=metrics,
                            description=description)
    save_checkpoint(out_dir, model, labels=labels, features=data.plan.feature_specs(), input_plan=data.plan,
                    extras=stats_to_tensors(stats), meta={**meta, "chosen_c": res.chosen_c})
    return metrics


def _train_ensemble(recipe: Recipe, data: DatasetInstance, data_root: str | Path | None, *, out_dir: Path, fold: int,
                    cache_dir: str | None, max_epochs: int | None, progress: bool, description: str | None,
                    seeds: tuple[int, ...]) -> dict[str, Any]:
    """`train_recipe` for several seeds: one member per seed, then ``ensemble.json`` (see there).
    A member already in ``out_dir`` is kept only when its saved `training_setup` is the one wanted;
    otherwise (another max_epochs, recipe content, fold, features, ...) it is retrained, with a
    warning saying what changed."""
    from emofuse.inference.checkpoint import CONFIG, read_config, save_ensemble

    members = []
    for seed in seeds:
        member = out_dir / f"seed_{seed}"
        members.append(member.name)
        if (member / CONFIG).is_file():
            setup = training_setup(recipe, data.key, fold, seed, max_epochs)
            try:
                meta = read_config(member)["meta"]
                stale = None if meta.get("setup_fingerprint") == setup_fingerprint(setup) \
                    else _setup_changes(meta.get("setup"), setup)
            except DataError as exc:
                stale = f"it cannot be read ({exc})"
            if stale is None:
                if progress:
                    print(f"keeping {member} (already trained: {recipe.name}, {data.name} fold {fold}, seed {seed}, "
                          "same training setup)")
                continue
            log.warning("retraining %s: %s", member, stale)
        train_recipe(recipe, data, data_root, out_dir=member, fold=fold, cache_dir=cache_dir,
                     max_epochs=max_epochs, progress=progress, description=description, seeds=(seed,))
    save_ensemble(out_dir, members, {"recipe": recipe.name, "dataset": data.key, "fold": fold, "seeds": list(seeds),
                                     "description": description or f"{recipe.name} seed ensemble ({len(seeds)} seeds)"})
    if fold == 0:
        return {}
    metrics = evaluate_checkpoint(out_dir, data, data_root, fold=fold, cache_dir=cache_dir)
    if progress:
        print(f"saved {out_dir} ({len(seeds)}-seed ensemble); test WA {metrics['wa']:.3f} UA {metrics['ua']:.3f}")
    return metrics


def evaluate_checkpoint(checkpoint: Path, dataset: str | DatasetInstance, data_root: str | Path | None, *,
                        fold: int = 1, cache_dir: str | None = None, report_dir: str | None = None) -> dict[str, Any]:
    """Score a checkpoint on a fold's test speakers (refuses a fold whose test speakers it trained on).

    ``dataset`` is a registered name, a loaded `DatasetInstance` or a CSV manifest path; a manifest's
    folds are the ones saved with the checkpoint by ``emofuse train`` (`emofuse.data.specs.folds_file_for`).

    A seed-ensemble folder (``ensemble.json``, see `emofuse.inference.checkpoint.checkpoint_members`) is scored
    on the class probabilities averaged over its members, each with its own standardisation.
    """
    from emofuse.inference.checkpoint import load_members
    from emofuse.evaluation.reports import plot_confusion, write_json_atomic
    from emofuse.data.splits import partition

    checkpoint = Path(checkpoint)
    members = load_members([checkpoint])
    ckpt = members[0]
    data = _instance(dataset, data_root, folds_dir=checkpoint, must_exist=True)
    samples, dataset = data.samples, data.name
    chosen = data.select_folds(str(fold))[0]
    for member in members:
        trained_on = set(member.meta.get("train_speakers", [])) | set(member.meta.get("val_speakers", []))
        leak = sorted(trained_on & set(chosen.test))
        if leak:
            from emofuse.errors import SpeakerOverlapError

            raise SpeakerOverlapError(f"{checkpoint}: trained on speakers {leak} that are in fold {fold}'s test set")
    _, _, test_idx = partition(samples, chosen)
    test = [samples[i] for i in test_idx]
    store = FeatureStore(test, cache_dir)
    index = {lab: i for i, lab in enumerate(ckpt.labels)}
    for s in test:
        if s.label not in index:
            raise DataError(s.id, f"label {s.label!r} is not in the checkpoint's label map {ckpt.labels}")
    y_true = [index[s.label] for s in test]
    plans = [member.input_plan for member in members]
    probs = np.mean([_view_averaged_probs(member, plan, store, y_true) for member, plan in zip(members, plans)],
                    axis=0)
    metrics = classification_metrics(y_true, probs.argmax(1), ckpt.labels)
    metrics["ensemble_members"] = len(members)
    metrics["test_time_augment"] = sorted({f for plan in plans for f in plan.test_time_speeds})
    if report_dir:
        write_json_atomic(Path(report_dir) / "metrics.json", metrics)
        plot_confusion(np.asarray(metrics["confusion"]), ckpt.labels, Path(report_dir) / "confusion.png",
                       title=f"{checkpoint.name} on {dataset} fold {fold}")
    return metrics


def _view_averaged_probs(member, plan: InputPlan, store: FeatureStore, y_true: list[int]) -> np.ndarray:
    """One checkpoint's class probabilities for the store's samples: inputs built by its input plan
    (arrays shared between members through the store), standardised with its own statistics,
    averaged over the original and its test-time views."""
    from emofuse.training.data import FeatureDataset
    from emofuse.training.fit import predict_proba_mean

    stats = plan.saved_stats(member.extras)
    ids = [s.id for s in store.samples]
    return predict_proba_mean(member.model, [
        FeatureDataset(plan.standardized(plan.arrays(store, view), stats), y_true, ids, dims=member.model.input_dims)
        for view in (None, *plan.test_views)])
