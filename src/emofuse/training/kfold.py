"""Speaker-independent k-fold evaluation: train, early-stop, test and score every fold x seed."""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
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

FeatureColumn = Sequence[np.ndarray | None] | Mapping[str, np.ndarray | None]


@dataclass
class FoldRun:
    """One fold trained with one seed."""

    fold: str
    seed: int
    metrics: dict[str, Any]
    train_seconds: float
    best_epoch: int
    best_score: float
    stopped_epoch: int
    ids: list[str]
    y_true: list[int]
    y_pred: list[int]
    probs: np.ndarray
    history: list[dict[str, float]] = field(default_factory=list)
    sizes: dict[str, int] = field(default_factory=dict)
    extra: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self, include_predictions: bool = True) -> dict[str, Any]:
        out = {
            "fold": self.fold, "seed": self.seed, "metrics": self.metrics, "train_seconds": self.train_seconds,
            "best_epoch": self.best_epoch, "best_score": self.best_score, "stopped_epoch": self.stopped_epoch,
            "sizes": self.sizes, "history": self.history, "extra": self.extra,
        }
        if include_predictions:
            out.update(ids=self.ids, y_true=self.y_true, y_pred=self.y_pred)
        return out


@dataclass
class KFoldResult:
    """All fold x seed runs plus their aggregate (mean and sample std over runs, see
    `emofuse.evaluation.metrics.aggregate`)."""

    label_names: list[str]
    runs: list[FoldRun]
    aggregate: dict[str, Any]
    config: dict[str, Any]
    test_modalities: list[str] | None = None
    test_drop_rate: float = 0.0
    train_views: list[str] = field(default_factory=list)
    test_views: list[str] = field(default_factory=list)

    @property
    def fold_metrics(self) -> list[dict[str, Any]]:
        return [r.metrics for r in self.runs]

    @property
    def train_seconds(self) -> list[float]:
        return [r.train_seconds for r in self.runs]

    def extra_aggregates(self) -> dict[str, dict[str, Any]]:
        """Aggregate (mean/std over runs) of every extra test condition (see ``extra_tests``)."""
        names = sorted({k for r in self.runs for k in r.extra})
        return {n: aggregate([r.extra[n] for r in self.runs if n in r.extra]) for n in names}

    def seed_ensemble(self) -> dict[str, Any] | None:
        """Deep-ensemble scores (Lakshminarayanan et al., 2017): in each fold, the test-set class
        probabilities of the models trained with different seeds are averaged and the argmax is
        scored; the per-fold metrics are then aggregated over folds like any run.

        Returns ``None`` unless every fold was trained with at least two seeds. The result holds the
        aggregate (``wa_mean``, ``wa_std``, ...), ``members`` (seeds per fold), ``folds`` (per-fold
        metrics without per-class detail) and ``confusion`` (summed over folds).
        """
        by_fold: dict[str, list[FoldRun]] = {}
        for run in self.runs:
            by_fold.setdefault(run.fold, []).append(run)
        if not by_fold or any(len(runs) < 2 for runs in by_fold.values()):
            return None
        per_fold, confusion = [], None
        for fold, runs in by_fold.items():
            first = runs[0]
            for other in runs[1:]:
                if other.ids != first.ids or other.probs.shape != first.probs.shape:
                    raise DataError(None, f"fold {fold}: seeds {first.seed} and {other.seed} scored different test sets")
            probs = np.mean([r.probs for r in runs], axis=0)
            metrics = classification_metrics(first.y_true, [int(p) for p in probs.argmax(axis=1)], self.label_names)
            confusion = np.asarray(metrics["confusion"]) + (0 if confusion is None else confusion)
            per_fold.append({"fold": fold, **{k: v for k, v in metrics.items() if k not in ("per_class", "confusion")}})
        out = aggregate(per_fold)
        out.update(members=len(next(iter(by_fold.values()))), folds=per_fold, confusion=confusion.tolist())
        return out

    def confusion(self) -> np.ndarray:
        """Confusion matrix summed over all runs (rows = true class)."""
        return np.sum([np.asarray(r.metrics["confusion"]) for r in self.runs], axis=0)

    def summary(self, model: str, modalities: Sequence[str], **extra: Any) -> dict[str, Any]:
        """One row of the benchmark JSON: mean/std of WA, UA, macro-F1; ``train_seconds`` is the
        mean training time per run (``train_seconds_total`` the sum)."""
        row: dict[str, Any] = {"model": model, "modalities": list(modalities)}
        for key in ("wa", "ua", "macro_f1", "weighted_f1"):
            row[f"{key}_mean"] = self.aggregate[f"{key}_mean"]
            row[f"{key}_std"] = self.aggregate[f"{key}_std"]
        row["train_seconds"] = float(np.mean(self.train_seconds))
        row["train_seconds_total"] = float(np.sum(self.train_seconds))
        row["n_runs"] = len(self.runs)
        if self.test_modalities is not None:
            row["test_modalities"] = list(self.test_modalities)
        if self.test_drop_rate:
            row["test_drop_rate"] = self.test_drop_rate
        if self.train_views:
            row["train_views"] = list(self.train_views)
        if self.test_views:
            row["test_views"] = list(self.test_views)
        row.update(extra)
        return row

    def to_dict(self, include_predictions: bool = True) -> dict[str, Any]:
        return {
            "label_names": self.label_names,
            "aggregate": self.aggregate,
            "config": self.config,
            "test_modalities": self.test_modalities,
            "test_drop_rate": self.test_drop_rate,
            "train_views": self.train_views,
            "test_views": self.test_views,
            "runs": [r.to_dict(include_predictions) for r in self.runs],
        }


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
            holding ``seed``, ``metrics`` and ``stats`` (standardisation statistics or None),
            e.g. to save a checkpoint per fold.
        train_views: augmented copies of the features, view name -> features like ``features``
            (the training views of an `emofuse.inputs.plan.InputPlan`, ``plan.view_arrays(store)``,
            e.g. ``{"speed0.9": ..., "speed1.1": ...}`` from speed-perturbed audio). Each training
            (and refit) sample is added once per view; validation uses the original features only;
            standardisation statistics come from the original training features.
        test_views: test-time augmentation: test probabilities (and those of ``extra_tests``)
            are averaged over the original features and these views
            (`emofuse.inputs.plan.average_over_views`, through `predict_proba_mean`).
    """
    from emofuse.data.splits import partition

    cfg = cfg or TrainConfig()
    progress = progress and is_rank_zero()  # several processes: one prints, one writes (below)
    label_names = [str(n) for n in label_names]
    if len(set(label_names)) != len(label_names) or len(label_names) < 2:
        raise ConfigError(f"label_names must be at least two distinct names, got {label_names}")
    if not folds:
        raise ConfigError("run_kfold needs at least one fold")
    if not seeds:
        raise ConfigError("run_kfold needs at least one seed")
    if not 0.0 <= test_drop_rate < 1.0:
        raise ConfigError(f"test_drop_rate must be in [0, 1), got {test_drop_rate}")
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

    plans = []
    for fold in folds:
        train_idx, val_idx, test_idx = partition(list(samples), fold)
        if not fold.test:  # a training-only fold (emofuse train --fold 0) is scored on its validation samples
            test_idx = val_idx
        for part, idx in (("train", train_idx), ("validation", val_idx), ("test", test_idx)):
            if not idx:
                raise ConfigError(f"fold {fold.name}: the {part} partition has no samples")
        plans.append((fold, train_idx, val_idx, test_idx))
    used = sorted({i for _, a, b, c in plans for i in (*a, *b, *c)})
    labels = _label_indices(samples, used, label_names, label_column)

    runs: list[FoldRun] = []
    for seed in seeds:
        run_cfg = cfg.replace(seed=int(seed))
        for fold_index, (fold, train_idx, val_idx, test_idx) in enumerate(plans):
            source, stats = full, None
            if standardize:
                from emofuse.inputs.normalize import apply_standardizer, fit_standardizer

                stats = fit_standardizer(columns, train_idx)
                source = FeatureDataset(apply_standardizer(columns, stats), None, full.ids, dims=full.dims)
            views = {key: _view_source(cols, key[0], stats, full) for key, cols in view_columns.items()}
            train_sources = [source] + [views[k] for k in train_keys]
            test_sources = [source] + [views[k] for k in test_keys]
            train_ds = _augmented(train_sources, train_idx, labels)
            val_ds = _subset(source, val_idx, labels)
            clean_tests = [_subset(t, test_idx, labels) for t in test_sources]
            test_sets = clean_tests
            if test_modalities is not None:
                test_sets = [t.restrict(test_modalities) for t in test_sets]
            if test_drop_rate > 0:
                test_sets = [t.drop_modalities(test_drop_rate, seed=[int(seed), fold_index]) for t in test_sets]
            test_ds = test_sets[0]
            lightning.seed_everything(int(seed), workers=True, verbose=False)
            model = build_model()
            if model.num_classes != len(label_names):
                raise ConfigError(f"build_model() gave {model.num_classes} classes for {len(label_names)} labels")
            result = fit(model, train_ds, val_ds, run_cfg)
            if run_cfg.refit and len(val_ds):
                result = _refit(build_model, train_idx + val_idx, train_sources, labels, result, run_cfg, int(seed))
            batch = max(64, cfg.batch_size)
            probs = predict_proba_mean(result.model, test_sets, batch)
            y_true = [int(y) for y in test_ds.labels or []]
            y_pred = [int(p) for p in probs.argmax(axis=1)]
            metrics = classification_metrics(y_true, y_pred, label_names)
            extra = {}
            for name, cond in (extra_tests or {}).items():
                cond_sets = clean_tests
                if cond.get("modalities"):
                    cond_sets = [t.restrict(cond["modalities"]) for t in cond_sets]
                if cond.get("drop_rate"):
                    cond_sets = [t.drop_modalities(float(cond["drop_rate"]), seed=[int(seed), fold_index])
                                 for t in cond_sets]
                cond_pred = predict_proba_mean(result.model, cond_sets, batch).argmax(axis=1)
                extra[name] = classification_metrics(y_true, [int(p) for p in cond_pred], label_names)
            if on_fold_end is not None:
                on_fold_end(fold, result.model, {"seed": int(seed), "metrics": metrics, "stats": stats})
            run = FoldRun(
                fold=fold.name, seed=int(seed), metrics=metrics, train_seconds=result.train_seconds,
                best_epoch=result.best_epoch, best_score=result.best_score, stopped_epoch=result.stopped_epoch,
                ids=list(test_ds.ids), y_true=y_true, y_pred=y_pred, probs=probs, history=result.history,
                sizes={"train": len(train_ds), "val": len(val_ds), "test": len(test_ds)}, extra=extra,
            )
            runs.append(run)
            if progress:
                _report(run)

    agg = aggregate([{**r.metrics, "train_seconds": r.train_seconds} for r in runs])
    out = KFoldResult(label_names=label_names, runs=runs, aggregate=agg, config=cfg.to_dict(),
                      test_modalities=None if test_modalities is None else list(test_modalities),
                      test_drop_rate=float(test_drop_rate), train_views=[n for n, _ in train_keys],
                      test_views=[n for n, _ in test_keys])
    if progress:
        print(f"all runs ({len(runs)}): WA {agg['wa_mean']:.3f} ± {agg['wa_std']:.3f}  "
              f"UA {agg['ua_mean']:.3f} ± {agg['ua_std']:.3f}  macro-F1 {agg['macro_f1_mean']:.3f}",
              file=sys.stderr)
    if out_dir is not None and is_rank_zero():
        from emofuse.evaluation.reports import plot_confusion, write_json_atomic

        out_path = Path(out_dir)
        write_json_atomic(out_path / "kfold.json", out.to_dict())
        plot_confusion(out.confusion(), label_names, out_path / "confusion.png",
                       title=f"{len(runs)} run(s), summed")
    return out


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
