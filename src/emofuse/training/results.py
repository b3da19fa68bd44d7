"""The results of a k-fold run (`emofuse.training.kfold.run_kfold`): one `FoldRun` per fold x seed
and the `KFoldResult` that holds them with their aggregate, seed ensemble and benchmark row."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from emofuse.errors import DataError
from emofuse.evaluation.metrics import aggregate, classification_metrics


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
