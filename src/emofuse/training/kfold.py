"""Speaker-independent k-fold evaluation: train, early-stop, test and score every fold x seed."""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning
import numpy as np

from emofuse.data.record import Sample
from emofuse.errors import ConfigError, DataError
from emofuse.evaluation.metrics import aggregate, classification_metrics
from emofuse.models.base import EmotionModel
from emofuse.training.config import TrainConfig
from emofuse.training.data import FeatureDataset
from emofuse.training.distributed import is_rank_zero, rank_zero_only
from emofuse.training.fit import FitResult, fit, predict_proba_mean
from emofuse.training.results import FoldRun, KFoldResult

__all__ = ["FoldRun", "KFoldResult", "run_kfold"]

FeatureColumn = Sequence[np.ndarray | None] | Mapping[str, np.ndarray | None]
#: one fold's partition: the fold and its train, validation and test sample indices
FoldPlan = tuple[Any, list[int], list[int], list[int]]
ViewKey = tuple[str, int]


def _feature_columns(samples: Sequence[Sample], features: Mapping[str, FeatureColumn]) -> dict[str, list]:
    """Per-modality lists aligned with ``samples`` (a mapping column is looked up by sample id;
    ids it lacks are absent)."""
    columns: dict[str, list] = {}
    for m, column in features.items():
        if isinstance(column, Mapping):
            columns[m] = [column.get(s.id) for s in samples]
        else:
            if len(column) != len(samples):
                raise DataError(None, f"features[{m!r}] has {len(column)} entries for {len(samples)} samples")
            columns[m] = list(column)
    return columns


def _label_indices(samples: Sequence[Sample], used: Sequence[int], label_names: Sequence[str],
                   label_column: str) -> dict[int, int]:
    index = {name: i for i, name in enumerate(label_names)}
    out: dict[int, int] = {}
    for i in used:
        label = samples[i].label_for(label_column)
        if label not in index:
            raise DataError(samples[i].id, f"{label_column} {label!r} is not one of {list(label_names)}")
        out[i] = index[label]
    return out


def _subset(full: FeatureDataset, idx: Sequence[int], labels: Mapping[int, int]) -> FeatureDataset:
    return FeatureDataset({m: [col[i] for i in idx] for m, col in full.features.items()},
                          [labels[i] for i in idx], [full.ids[i] for i in idx], dims=full.dims)


def _augmented(sources: Sequence[FeatureDataset], idx: Sequence[int], labels: Mapping[int, int]) -> FeatureDataset:
    """The samples ``idx`` of every source (the original first, then each augmented view) as one dataset."""
    parts = [_subset(source, idx, labels) for source in sources]
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    return FeatureDataset({m: [a for p in parts for a in p.features[m]] for m in first.modalities},
                          [y for p in parts for y in p.labels or []], [i for p in parts for i in p.ids],
                          dims=first.dims)


def _view_source(columns: dict[str, list], name: str, stats: Any, full: FeatureDataset) -> FeatureDataset:
    """A view's columns as a dataset over all samples (ids suffixed ``@name``), standardised with
    the original training statistics when ``stats`` is given."""
    if set(columns) != set(full.modalities):
        raise ConfigError(f"view {name!r} has modalities {sorted(columns)}, expected {list(full.modalities)}")
    if stats is not None:
        from emofuse.inputs.normalize import apply_standardizer

        columns = apply_standardizer(columns, stats)
    return FeatureDataset(columns, None, [f"{i}@{name}" for i in full.ids], dims=full.dims)


@dataclass
class _KFoldJob:
    """The checked inputs of `run_kfold`, shared by every fold and seed."""

    label_names: list[str]
    build_model: Callable[[], EmotionModel]
    cfg: TrainConfig
    columns: dict[str, list]
    full: FeatureDataset
    view_columns: dict[ViewKey, dict[str, list]]  # every distinct view once, by (name, id of its features)
    train_keys: list[ViewKey]
    test_keys: list[ViewKey]
    plans: list[FoldPlan]
    labels: dict[int, int]  # sample index -> class index, for every sample some fold uses
    test_modalities: Sequence[str] | None
    test_drop_rate: float
    standardize: bool
    extra_tests: Mapping[str, Mapping[str, Any]] | None
    on_fold_end: Callable[[Any, EmotionModel, dict[str, Any]], None] | None


@dataclass
class _FoldData:
    """One fold's datasets for one seed."""

    stats: Any  # standardisation statistics of the training samples, or None
    train_sources: list[FeatureDataset]  # the original features, then each training view (all samples)
    train: FeatureDataset
    val: FeatureDataset
    clean_tests: list[FeatureDataset]  # the test samples of the original features, then of each test view
    tests: list[FeatureDataset]  # the same under ``test_modalities`` and ``test_drop_rate``


def run_kfold(
    samples: Sequence[Sample],
    features: Mapping[str, FeatureColumn],
    label_names: Sequence[str],
    folds: Sequence[Any],
    build_model: Callable[[], EmotionModel],
    cfg: TrainConfig | None = None,
    *,
    label_column: str = "label",
    test_modalities: Sequence[str] | None = None,
    test_drop_rate: float = 0.0,
    seeds: Sequence[int] = (0,),
    out_dir: str | Path | None = None,
    progress: bool = True,
    standardize: bool = False,
    extra_tests: Mapping[str, Mapping[str, Any]] | None = None,
    on_fold_end: Callable[[Any, EmotionModel, dict[str, Any]], None] | None = None,
    train_views: Mapping[str, Mapping[str, FeatureColumn]] | None = None,
    test_views: Mapping[str, Mapping[str, FeatureColumn]] | None = None,
) -> KFoldResult:
    """Cross-validate ``build_model()`` over ``folds`` (from `emofuse.data.splits`).

    For every fold, `emofuse.data.splits.partition` splits the samples (raising
    `SpeakerOverlapError` when partitions share a speaker); the model trains on ``train`` with
    early stopping on ``val`` and is scored on ``test``. A fold that lists no test groups
    (``emofuse train --fold 0``) is scored on its validation samples instead: not held out from
    early stopping, and trained on with ``refit``. All folds are partitioned and their labels
    checked before any training starts.

    Args:
        features: modality -> per-sample arrays aligned with ``samples``, or a mapping from
            sample id to array (missing ids = modality absent).
        test_modalities: only these modalities are present at test time (the others are masked
            out); training and validation still see every modality.
        test_drop_rate: at test time, hide each present modality with this probability
            (reproducible: seeded by the run seed and fold index; never all of a sample's).
        seeds: every fold is trained once per seed (the seed drives model initialisation,
            shuffling and dropout); metrics aggregate over folds x seeds.
        out_dir: when given, ``kfold.json`` (all runs, predictions, config) and
            ``confusion.png`` (summed over runs) are written there (by rank zero only, as are
            the progress lines, when several processes run).
        standardize: z-score every modality with statistics of the fold's training samples
            only (`emofuse.inputs.normalize`); the statistics are passed to ``on_fold_end``.
        extra_tests: further test conditions evaluated with the same trained model, e.g.
            ``{"only_audio": {"modalities": ["audio"]}, "drop_0.3": {"drop_rate": 0.3}}``;
            their metrics land in ``FoldRun.extra`` and `KFoldResult.extra_aggregates`.
        on_fold_end: called as ``on_fold_end(fold, model, info)`` after each run, with ``info``
            holding ``seed``, ``metrics``, ``stats`` (standardisation statistics or None),
            ``val_probs`` / ``val_y`` (validation probabilities of the early-stopped model, before
            any refit, and their classes: for calibration) and ``val_idx`` / ``test_idx`` (the
            validation and test samples' indices), e.g. to save a checkpoint per fold.
        train_views: augmented copies of the features, view name -> features like ``features``
            (the training views of an `emofuse.inputs.plan.InputPlan`, ``plan.view_arrays(store)``,
            e.g. ``{"speed0.9": ..., "speed1.1": ...}`` from speed-perturbed audio). Each training
            (and refit) sample is added once per view; validation uses the original features only;
            standardisation statistics come from the original training features.
        test_views: test-time augmentation: test probabilities (and those of ``extra_tests``)
            are averaged over the original features and these views
            (`emofuse.inputs.plan.average_over_views`, through `predict_proba_mean`).
    """
    cfg = cfg or TrainConfig()
    progress = progress and is_rank_zero()  # several processes: one prints, one writes (below)
    job = _prepare(samples, features, label_names, folds, build_model, cfg, seeds, label_column=label_column,
                   test_modalities=test_modalities, test_drop_rate=test_drop_rate, standardize=standardize,
                   extra_tests=extra_tests, on_fold_end=on_fold_end, train_views=train_views,
                   test_views=test_views)
    runs: list[FoldRun] = []
    for seed in seeds:
        run_cfg = cfg.replace(seed=int(seed))
        for fold_index, plan in enumerate(job.plans):
            run = _train_fold(job, plan, fold_index, int(seed), run_cfg)
            runs.append(run)
            if progress:
                _report(run)
    out = _result(job, runs)
    if progress:
        _report_all(out)
    if out_dir is not None and is_rank_zero():
        _write_outputs(out, Path(out_dir))
    return out


def _prepare(
    samples: Sequence[Sample],
    features: Mapping[str, FeatureColumn],
    label_names: Sequence[str],
    folds: Sequence[Any],
    build_model: Callable[[], EmotionModel],
    cfg: TrainConfig,
    seeds: Sequence[int],
    *,
    label_column: str,
    test_modalities: Sequence[str] | None,
    test_drop_rate: float,
    standardize: bool,
    extra_tests: Mapping[str, Mapping[str, Any]] | None,
    on_fold_end: Callable[[Any, EmotionModel, dict[str, Any]], None] | None,
    train_views: Mapping[str, Mapping[str, FeatureColumn]] | None,
    test_views: Mapping[str, Mapping[str, FeatureColumn]] | None,
) -> _KFoldJob:
    """Check `run_kfold`'s arguments, align the features and views with ``samples``, partition
    every fold and check the labels of every sample used, all before any training."""
    label_names = [str(n) for n in label_names]
    _check_arguments(label_names, folds, seeds, test_drop_rate)
    columns = _feature_columns(samples, features)
    full = FeatureDataset(columns, None, [s.id for s in samples])
    # every distinct view once (one given for training and for testing is converted and standardised once)
    train_keys = [(n, id(v)) for n, v in (train_views or {}).items()]
    test_keys = [(n, id(v)) for n, v in (test_views or {}).items()]
    view_columns = {(n, id(v)): _feature_columns(samples, v)
                    for n, v in [*(train_views or {}).items(), *(test_views or {}).items()]}
    if test_modalities is not None:
        unknown = sorted(set(test_modalities) - set(full.modalities))
        if unknown or not test_modalities:
            raise ConfigError(f"test_modalities {list(test_modalities)} must be a non-empty subset of "
                              f"{list(full.modalities)}")
    plans = _plan_folds(samples, folds)
    used = sorted({i for _, a, b, c in plans for i in (*a, *b, *c)})
    labels = _label_indices(samples, used, label_names, label_column)
    return _KFoldJob(label_names=label_names, build_model=build_model, cfg=cfg, columns=columns, full=full,
                     view_columns=view_columns, train_keys=train_keys, test_keys=test_keys, plans=plans,
                     labels=labels, test_modalities=test_modalities, test_drop_rate=test_drop_rate,
                     standardize=standardize, extra_tests=extra_tests, on_fold_end=on_fold_end)


def _check_arguments(label_names: list[str], folds: Sequence[Any], seeds: Sequence[int],
                     test_drop_rate: float) -> None:
    if len(set(label_names)) != len(label_names) or len(label_names) < 2:
        raise ConfigError(f"label_names must be at least two distinct names, got {label_names}")
    if not folds:
        raise ConfigError("run_kfold needs at least one fold")
    if not seeds:
        raise ConfigError("run_kfold needs at least one seed")
    if not 0.0 <= test_drop_rate < 1.0:
        raise ConfigError(f"test_drop_rate must be in [0, 1), got {test_drop_rate}")


def _plan_folds(samples: Sequence[Sample], folds: Sequence[Any]) -> list[FoldPlan]:
    """Every fold's train, validation and test indices (`emofuse.data.splits.partition`); a fold
    without test groups is scored on its validation samples."""
    from emofuse.data.splits import partition

    plans = []
    for fold in folds:
        train_idx, val_idx, test_idx = partition(list(samples), fold)
        if not fold.test:  # a training-only fold (emofuse train --fold 0) is scored on its validation samples
            test_idx = val_idx
        for part, idx in (("train", train_idx), ("validation", val_idx), ("test", test_idx)):
            if not idx:
                raise ConfigError(f"fold {fold.name}: the {part} partition has no samples")
        plans.append((fold, train_idx, val_idx, test_idx))
    return plans


def _fold_data(job: _KFoldJob, plan: FoldPlan, fold_index: int, seed: int) -> _FoldData:
    """The fold's training (with the training views), validation and test datasets, standardised
    with statistics of its training samples when ``job.standardize``."""
    _, train_idx, val_idx, test_idx = plan
    columns, full, labels = job.columns, job.full, job.labels
    source, stats = full, None
    if job.standardize:
        from emofuse.inputs.normalize import apply_standardizer, fit_standardizer

        stats = fit_standardizer(columns, train_idx)
        source = FeatureDataset(apply_standardizer(columns, stats), None, full.ids, dims=full.dims)
    views = {key: _view_source(cols, key[0], stats, full) for key, cols in job.view_columns.items()}
    train_sources = [source] + [views[k] for k in job.train_keys]
    test_sources = [source] + [views[k] for k in job.test_keys]
    train_ds = _augmented(train_sources, train_idx, labels)
    val_ds = _subset(source, val_idx, labels)
    clean_tests = [_subset(t, test_idx, labels) for t in test_sources]
    test_sets = clean_tests
    if job.test_modalities is not None:
        test_sets = [t.restrict(job.test_modalities) for t in test_sets]
    if job.test_drop_rate > 0:
        test_sets = [t.drop_modalities(job.test_drop_rate, seed=[seed, fold_index]) for t in test_sets]
    return _FoldData(stats=stats, train_sources=train_sources, train=train_ds, val=val_ds,
                     clean_tests=clean_tests, tests=test_sets)


def _train_fold(job: _KFoldJob, plan: FoldPlan, fold_index: int, seed: int, run_cfg: TrainConfig) -> FoldRun:
    """Train a fresh model on one fold with one seed (early stopping on validation, then the
    refit when ``run_cfg.refit``), score it on the test samples and the extra test conditions."""
    fold, train_idx, val_idx, _ = plan
    data = _fold_data(job, plan, fold_index, seed)
    lightning.seed_everything(seed, workers=True, verbose=False)
    model = job.build_model()
    if model.num_classes != len(job.label_names):
        raise ConfigError(f"build_model() gave {model.num_classes} classes for {len(job.label_names)} labels")
    result = fit(model, data.train, data.val, run_cfg)
    batch = max(64, job.cfg.batch_size)
    # validation probabilities of the model early stopping chose (before any refit sees them), for
    # on_fold_end's calibration: computed only when there is a callback to read them
    val_probs = predict_proba_mean(result.model, [data.val], batch) if len(data.val) and job.on_fold_end \
        else np.zeros((0, len(job.label_names)))
    if run_cfg.refit and len(data.val):
        result = _refit(job.build_model, train_idx + val_idx, data.train_sources, job.labels, result, run_cfg, seed)
    probs = predict_proba_mean(result.model, data.tests, batch)
    test_ds = data.tests[0]
    y_true = [int(y) for y in test_ds.labels or []]
    y_pred = [int(p) for p in probs.argmax(axis=1)]
    metrics = classification_metrics(y_true, y_pred, job.label_names)
    extra = _extra_scores(job, result.model, data.clean_tests, y_true, seed, fold_index, batch)
    if job.on_fold_end is not None:
        job.on_fold_end(fold, result.model, {"seed": seed, "metrics": metrics, "stats": data.stats,
                                             "val_probs": val_probs, "val_y": [int(y) for y in data.val.labels or []],
                                             "val_idx": plan[2], "test_idx": plan[3]})
    return FoldRun(
        fold=fold.name, seed=seed, metrics=metrics, train_seconds=result.train_seconds,
        best_epoch=result.best_epoch, best_score=result.best_score, stopped_epoch=result.stopped_epoch,
        ids=list(test_ds.ids), y_true=y_true, y_pred=y_pred, probs=probs, history=result.history,
        sizes={"train": len(data.train), "val": len(data.val), "test": len(test_ds)}, extra=extra,
    )


def _extra_scores(job: _KFoldJob, model: EmotionModel, clean_tests: Sequence[FeatureDataset], y_true: list[int],
                  seed: int, fold_index: int, batch: int) -> dict[str, dict[str, Any]]:
    """The metrics of every extra test condition (``extra_tests``), each predicted on the clean
    test sets (the original features and every test view) under its modalities and drop rate."""
    extra = {}
    for name, cond in (job.extra_tests or {}).items():
        cond_sets = clean_tests
        if cond.get("modalities"):
            cond_sets = [t.restrict(cond["modalities"]) for t in cond_sets]
        if cond.get("drop_rate"):
            cond_sets = [t.drop_modalities(float(cond["drop_rate"]), seed=[seed, fold_index])
                         for t in cond_sets]
        cond_pred = predict_proba_mean(model, cond_sets, batch).argmax(axis=1)
        extra[name] = classification_metrics(y_true, [int(p) for p in cond_pred], job.label_names)
    return extra


def _result(job: _KFoldJob, runs: list[FoldRun]) -> KFoldResult:
    """The runs with their aggregate (mean and sample std over runs) and the run's settings."""
    agg = aggregate([{**r.metrics, "train_seconds": r.train_seconds} for r in runs])
    return KFoldResult(label_names=job.label_names, runs=runs, aggregate=agg, config=job.cfg.to_dict(),
                       test_modalities=None if job.test_modalities is None else list(job.test_modalities),
                       test_drop_rate=float(job.test_drop_rate), train_views=[n for n, _ in job.train_keys],
                       test_views=[n for n, _ in job.test_keys])


def _write_outputs(out: KFoldResult, out_path: Path) -> None:
    """``kfold.json`` (all runs, predictions, config) and ``confusion.png`` (summed over runs)."""
    from emofuse.evaluation.reports import plot_confusion, write_json_atomic

    write_json_atomic(out_path / "kfold.json", out.to_dict())
    plot_confusion(out.confusion(), out.label_names, out_path / "confusion.png",
                   title=f"{len(out.runs)} run(s), summed")


def _refit(build_model: Callable[[], EmotionModel], idx: Sequence[int], sources: Sequence[FeatureDataset],
           labels: Mapping[int, int], first: FitResult, cfg: TrainConfig, seed: int) -> FitResult:
    """``cfg.refit``: a fresh model trained on ``idx`` (training + validation samples, in every
    source: the original and the augmented views) for the epochs early stopping chose in
    ``first``; keeps its last weights. Returns a `FitResult` with the refitted model, ``first``'s
    best epoch and score, and both trainings' time."""
    lightning.seed_everything(seed, workers=True, verbose=False)
    epochs = max(1, first.best_epoch + 1)
    refitted = fit(build_model(), _augmented(sources, idx, labels), None, cfg.replace(max_epochs=epochs, min_epochs=1))
    return dataclasses.replace(refitted, best_epoch=first.best_epoch, best_score=first.best_score,
                               stopped_epoch=first.stopped_epoch, history=first.history,
                               train_seconds=first.train_seconds + refitted.train_seconds)


@rank_zero_only
def _report(run: FoldRun) -> None:
    m = run.metrics
    best = "n/a" if math.isnan(run.best_score) else f"{run.best_score:.3f}"
    print(f"fold {run.fold} seed {run.seed}: WA {m['wa']:.3f}  UA {m['ua']:.3f}  macro-F1 {m['macro_f1']:.3f}  "
          f"(best epoch {run.best_epoch}, val {best}, {run.train_seconds:.1f} s)", file=sys.stderr)


def _report_all(out: KFoldResult) -> None:
    agg = out.aggregate
    print(f"all runs ({len(out.runs)}): WA {agg['wa_mean']:.3f} ± {agg['wa_std']:.3f}  "
          f"UA {agg['ua_mean']:.3f} ± {agg['ua_std']:.3f}  macro-F1 {agg['macro_f1_mean']:.3f}",
          file=sys.stderr)
