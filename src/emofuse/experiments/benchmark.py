"""Speaker-independent benchmarks: every recipe (classical baselines and neural models) over the
dataset's canonical folds, in one command, one table and one JSON file.

``emofuse benchmark ravdess --data DIR --out results.json`` is the entry point (see emofuse.cli.benchmark).
"""

from __future__ import annotations

import logging
import sys
import time
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from emofuse.data.record import Sample
from emofuse.errors import ConfigError
from emofuse.features.store import FeatureStore
from emofuse.inputs.plan import InputPlan
from emofuse.evaluation.metrics import aggregate, classification_metrics
from emofuse.recipes import Recipe
from emofuse.evaluation.results import finished_rows, machine_description, run_key, table_title
from emofuse.experiments.lineup import dataset_instance, load_dataset, resolve_recipes
from emofuse.training.classical import classical_data, fit_classical_fold
from emofuse.training.recipe import augmentation_fields, neural_setup, with_hardware
from emofuse.training.distributed import rank_zero_print

if TYPE_CHECKING:
    from emofuse.data.specs import DatasetInstance

log = logging.getLogger("emofuse.experiments.benchmark")

#: ``standard``: the corpus's folds; ``shift``: also corruptions, calibration, cross-sentence and
#: cross-gender (`emofuse.experiments.shift`)
PROTOCOLS = ("standard", "shift")


def run_classical(recipe: Recipe, samples: list[Sample], store: FeatureStore, folds, labels: list[str],
                  seeds=(0,), progress: bool = True) -> dict[str, Any]:
    """Logistic-regression baseline over the folds (C chosen on validation speakers).

    The lbfgs solver is deterministic, so the baseline runs once per fold whatever ``seeds`` says
    (repeating it per seed would only repeat the numbers and shrink the standard deviation)."""
    data = classical_data(recipe, samples, store, labels)
    runs, seconds, per_fold = [], [], []
    for seed in list(seeds)[:1]:
        for fold in folds:
            start = time.perf_counter()
            res, te = fit_classical_fold(data, fold, len(labels), seed)
            seconds.append(time.perf_counter() - start)
            metrics = classification_metrics(data.y[te], res.probabilities.argmax(1), labels)
            runs.append(metrics)
            per_fold.append(fold_scores(fold.name, seed, metrics))
            if progress:
                rank_zero_print(f"{recipe.name} fold {fold.name}: WA {metrics['wa']:.3f} UA {metrics['ua']:.3f} (C={res.chosen_c})",
                      file=sys.stderr)
    agg = aggregate(runs)
    row = _row(recipe, agg, seconds, n_runs=len(runs), per_fold=per_fold)
    row["confusion"] = np.sum([r["confusion"] for r in runs], axis=0).tolist()
    return row


def fold_scores(fold: str, seed: int, metrics: dict[str, Any]) -> dict[str, Any]:
    """One fold × seed run's scores as a results row lists them (``per_fold``), so that every
    per-fold figure quoted from a results file can be traced to it."""
    return {"fold": fold, "seed": int(seed), **{k: float(metrics[k]) for k in ("wa", "ua", "macro_f1", "weighted_f1")},
            "n": int(metrics["n"])}


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
    row["per_fold"] = [fold_scores(r.fold, r.seed, r.metrics) for r in result.runs]
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


def extract_before_timing(store: FeatureStore, recipes: list[Recipe]) -> None:
    """Compute (or read from the cache) every feature the recipes read, and of their augmented views
    (kept in memory by the store's views), so that extraction is not counted as training time."""
    for name in sorted({f for r in recipes for f in r.feature_names}):
        store.get(name)
    for recipe in recipes:
        for view in InputPlan.from_recipe(recipe).views:
            for name in recipe.feature_names:
                store.view(view).get(name)


def plot_row_confusions(report: Path, row: dict[str, Any], labels: list[str], dataset: str, n_folds: int) -> None:
    """A results row's summed confusion matrix (and its seed ensemble's) as PNGs in ``report``."""
    from emofuse.evaluation.reports import plot_confusion

    name = row["model"]
    plot_confusion(np.asarray(row["confusion"]), labels, report / f"confusion_{name}.png",
                   title=f"{name} ({dataset}, {n_folds} folds, summed)")
    if row.get("seed_ensemble"):
        ensemble = row["seed_ensemble"]
        plot_confusion(np.asarray(ensemble["confusion"]), labels, report / f"confusion_{name}_ensemble.png",
                       title=f"{name}, {ensemble['members']}-seed ensemble ({dataset}, summed over folds)")


def run_benchmark(dataset: str | DatasetInstance, data_root: str | Path | None, *, models: str = "default",
                  out: str | None = None, report_dir: str | None = None, cache_dir: str | None = None, seeds=(0,),
                  folds: str | None = None, max_epochs: int | None = None, progress: bool = True,
                  robustness: bool = False, resume: bool = True, num_folds: int | None = None,
                  fold_seed: int | None = None, protocol: str = "standard",
                  hardware: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run every selected recipe over the folds and print/write one results table.

    ``dataset`` is a registered name, a CSV manifest path or a loaded `DatasetInstance`. A manifest's
    speaker-disjoint folds (``num_folds``, ``fold_seed``) are written beside ``out`` (else in
    ``report_dir``) as ``<name>.folds.json`` and reused by later runs.
    With ``out``, the JSON is rewritten (atomically) after every recipe, so an interrupted run
    loses at most the recipe in progress; run the same command again and finished rows whose
    `run_key` still matches are reused (``resume=False`` recomputes everything).
    ``protocol="shift"`` runs every recipe under the shift protocols instead
    (`emofuse.experiments.shift.run_shift`: clean, corruptions, calibration, cross-sentence,
    cross-gender) and prints the shift table. ``hardware`` (devices, num_nodes, strategy, accelerator)
    overrides every neural recipe's train settings (`emofuse.training.recipe.with_hardware`).
    """
    from emofuse.evaluation.reports import (format_table, plot_robustness, robustness_table, write_json_atomic,
                                            write_results)

    folds_dir = Path(out).parent if out else Path(report_dir) if report_dir else None
    data = dataset_instance(dataset, data_root, folds_dir=folds_dir, num_folds=num_folds, fold_seed=fold_seed,
                     progress=progress)
    samples, labels, dataset = data.samples, data.labels, data.name
    fold_list = data.select_folds(folds)
    recipes = [with_hardware(r, hardware) for r in resolve_recipes(models, data.spec)]  # several processes
    if not recipes:
        hint = "" if data.spec.default_recipes or models not in ("default",) else \
            f"; {dataset} has no default line-up: name recipes with --models (e.g. logreg_egemaps)"
        raise ConfigError(f"no recipe selected by --models {models!r}{hint}")
    out_path = Path(out) if out else None
    finished = finished_rows(out_path) if resume else {}
    fold_names = [f.name for f in fold_list]
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    keys = {r.name: run_key(r, data.key, fold_names, seeds, max_epochs, robustness, protocol) for r in recipes}
    store = FeatureStore(samples, cache_dir, progress=progress)
    store.labels = labels
    extract_before_timing(store, [r for r in recipes if keys[r.name] not in finished])
    rows: list[dict[str, Any]] = []
    report = Path(report_dir) if report_dir else None
    results = {
        "dataset": dataset, "date": date.today().isoformat(), "machine": machine_description(),
        "command": " ".join(["emofuse", *sys.argv[1:]]) if sys.argv and sys.argv[0].endswith("emofuse") else None,
        "folds": fold_names, "seeds": list(seeds), "labels": labels, "protocol": protocol, "results": rows,
    }
    for recipe in recipes:
        key = keys[recipe.name]
        if key in finished:
            row = finished[key]
            if progress:
                rank_zero_print(f"reusing {recipe.name} from {out_path} (same run key {key}): WA {row['wa_mean']:.3f}",
                      file=sys.stderr)
        else:
            start = time.perf_counter()
            if protocol == "shift":
                from emofuse.experiments.shift import run_shift

                row = run_shift(recipe, samples, store, fold_list, labels, seeds=seeds, max_epochs=max_epochs,
                                progress=progress)
            elif recipe.classical:
                row = run_classical(recipe, samples, store, fold_list, labels, seeds, progress)
            else:
                row = run_neural(recipe, samples, store, fold_list, labels, seeds, max_epochs, progress, robustness,
                                 report)
            row["wall_seconds"] = time.perf_counter() - start
            row["run_key"] = key
            row["date"] = date.today().isoformat()
            if progress:
                rank_zero_print(f"done {recipe.name}: WA {row['wa_mean']:.3f} ± {row['wa_std']:.3f} "
                      f"({row['wall_seconds']:.0f} s)", file=sys.stderr)
        rows.append(row)
        if out_path is not None:
            write_json_atomic(out_path, {**results, "complete": len(rows) == len(recipes)})
        if report is not None:
            plot_row_confusions(report, row, labels, dataset, len(fold_list))
    results["complete"] = True
    rank_zero_print(format_table(results, title=table_title(data, fold_list)))
    if protocol == "shift":
        from emofuse.evaluation.shift import shift_table

        rank_zero_print("Shift protocols (UA unless named; corruption figures are WA and UA):\n" + shift_table(results))
    robust = robustness_table(results)
    if robust:
        rank_zero_print("Missing-modality robustness (WA at test time):\n" + robust)
    if report is not None:
        write_results(report, results)
        plot_robustness(results, report / "robustness.png", title=f"{dataset}: WA vs modality drop rate")
    return results


def feature_speed(data_root: str | Path, names: list[str], n_clips: int = 40) -> list[dict[str, Any]]:
    """Real-time factor of each extractor on the first ``n_clips`` RAVDESS clips (no cache)."""
    from emofuse.features.speed import measure_rtf

    samples = load_dataset("ravdess", data_root)[:n_clips]
    return measure_rtf(names, [Path(s.sources["audio"]) for s in samples])


