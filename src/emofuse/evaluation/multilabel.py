"""Multi-label evaluation: per-class decision thresholds chosen on a development set, and F1 scores.

Everything takes class probabilities ``probs`` ``[N, C]`` (e.g. sigmoid outputs, or one-vs-rest
logistic regression) and a binary label matrix ``y`` ``[N, C]`` (`binarize` builds one from label
lists), so any model can be scored the same way (GoEmotions: `emofuse.experiments.goemotions`).

* `select_thresholds`: for each class independently, the threshold on a grid (default 0.01 ...
  0.99) that maximises that class's F1 on the development set; a class without a positive
  development example keeps 0.5.
* `multilabel_metrics`: scikit-learn's macro-, micro- and weighted-F1 of ``probs >= thresholds``,
  macro precision and recall, per-class scores, and two accuracies in the shared results
  vocabulary: ``wa`` = exact-match (subset) accuracy, ``ua`` = mean per-class recall over the
  classes with a positive example.
* `group_columns`: merge classes into coarser ones (the maximum probability, the union of labels),
  e.g. GoEmotions' 28 classes into Ekman's 7.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

DEFAULT_GRID = np.round(np.arange(0.01, 1.0, 0.01), 2)


def binarize(label_lists: Sequence[Sequence[str]], classes: Sequence[str]) -> np.ndarray:
    """The binary label matrix ``[N, C]`` (int8) of label lists over ``classes`` (ValueError naming
    the first unknown label)."""
    index = {c: i for i, c in enumerate(classes)}
    y = np.zeros((len(label_lists), len(classes)), dtype=np.int8)
    for row, labels in enumerate(label_lists):
        for label in labels:
            if label not in index:
                raise ValueError(f"row {row}: label {label!r} is not one of {list(classes)}")
            y[row, index[label]] = 1
    return y


def _check(probs: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(probs, dtype=np.float64)
    t = np.asarray(y)
    if p.ndim != 2 or p.shape != t.shape:
        raise ValueError(f"probs {p.shape} and labels {t.shape} must both be [N, C]")
    if p.shape[0] == 0:
        raise ValueError("cannot score zero samples")
    if not np.isin(t, (0, 1)).all():
        raise ValueError("labels must be a binary (0/1) matrix")
    return p, t.astype(np.int8)


def select_thresholds(probs: np.ndarray, y: np.ndarray, grid: Sequence[float] | None = None) -> np.ndarray:
    """Per-class thresholds ``[C]`` maximising each class's F1 of ``probs >= threshold`` on (dev) data.

    Ties go to the threshold nearest 0.5; a class without a positive example keeps 0.5."""
    from sklearn.metrics import f1_score

    p, t = _check(probs, y)
    grid = np.asarray(DEFAULT_GRID if grid is None else grid, dtype=np.float64)
    if grid.ndim != 1 or grid.size == 0:
        raise ValueError("grid must be a non-empty list of thresholds")
    scores = np.stack([f1_score(t, (p >= g).astype(np.int8), average=None, zero_division=0) for g in grid])  # [G, C]
    out = np.full(p.shape[1], 0.5)
    for c in range(p.shape[1]):
        if t[:, c].any():
            best = np.flatnonzero(np.isclose(scores[:, c], scores[:, c].max()))
            out[c] = grid[best[np.argmin(np.abs(grid[best] - 0.5))]]
    return out


def predict(probs: np.ndarray, thresholds: np.ndarray | float) -> np.ndarray:
    """The binary decisions ``probs >= thresholds`` (int8 ``[N, C]``)."""
    return (np.asarray(probs) >= np.asarray(thresholds)).astype(np.int8)


def multilabel_metrics(probs: np.ndarray, y: np.ndarray, thresholds: np.ndarray | float,
                       class_names: Sequence[str]) -> dict[str, Any]:
    """F1 scores (scikit-learn) of the thresholded ``probs`` against ``y``; see the module docstring."""
    from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

    p, t = _check(probs, y)
    if len(class_names) != p.shape[1]:
        raise ValueError(f"{len(class_names)} class names for {p.shape[1]} columns")
    thr = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (p.shape[1],))
    pred = predict(p, thr)
    out: dict[str, Any] = {"n": int(p.shape[0]), "wa": float(accuracy_score(t, pred))}
    for avg in ("macro", "micro", "weighted"):
        pr, rc, f1, _ = precision_recall_fscore_support(t, pred, average=avg, zero_division=0)
        out[f"{avg}_precision"], out[f"{avg}_recall"], out[f"{avg}_f1"] = float(pr), float(rc), float(f1)
    pr, rc, f1, sup = precision_recall_fscore_support(t, pred, average=None, zero_division=0)
    present = sup > 0
    out["ua"] = float(rc[present].mean()) if present.any() else float("nan")
    out["samples_f1"] = float(f1_score(t, pred, average="samples", zero_division=0))
    out["per_class"] = {name: {"precision": float(pr[i]), "recall": float(rc[i]), "f1": float(f1[i]),
                               "support": int(sup[i]), "threshold": float(thr[i])}
                        for i, name in enumerate(class_names)}
    out["labels"] = [str(c) for c in class_names]
    return out


def group_columns(probs: np.ndarray, y: np.ndarray | None, classes: Sequence[str],
                  groups: Mapping[str, Sequence[str]]) -> tuple[np.ndarray, np.ndarray | None]:
    """Merge class columns into ``groups`` (group name -> member classes), in the mapping's order:
    a group's probability is its members' maximum, its label the union of theirs."""
    index = {c: i for i, c in enumerate(classes)}
    missing = [m for members in groups.values() for m in members if m not in index]
    if missing:
        raise ValueError(f"classes {missing} are not among {list(classes)}")
    cols = [[index[m] for m in members] for members in groups.values()]
    p = np.stack([np.asarray(probs)[:, c].max(axis=1) for c in cols], axis=1)
    g = None if y is None else np.stack([np.asarray(y)[:, c].max(axis=1) for c in cols], axis=1).astype(np.int8)
    return p, g
