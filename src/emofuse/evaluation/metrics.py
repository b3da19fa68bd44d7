"""Classification metrics (WA, UA, precision/recall/F1, confusion) and their aggregation over folds.

* ``wa`` (weighted accuracy) is plain accuracy.
* ``ua`` (unweighted accuracy, = balanced accuracy = UAR) is the mean per-class recall over the
  classes that occur in ``y_true``.
* ``macro_*`` / ``weighted_*`` follow scikit-learn over the classes occurring in ``y_true`` or
  ``y_pred`` (a class that is never true nor predicted does not count); ``per_class`` lists every
  class in ``label_names`` (zeros where undefined).
* `aggregate` reports the **sample** standard deviation (``ddof=1``) across folds/seeds, as most
  emotion-recognition papers do; with a single value the std is 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

SCALAR_KEYS = (
    "wa", "ua", "macro_precision", "macro_recall", "macro_f1",
    "weighted_precision", "weighted_recall", "weighted_f1",
)


def _as_index_array(values: Sequence[int] | np.ndarray, name: str, num_classes: int) -> np.ndarray:
    a = np.asarray(values)
    if a.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {a.shape}")
    if a.size and not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{name} must hold integer class indices, got dtype {a.dtype}")
    a = a.astype(np.int64)
    if a.size and (a.min() < 0 or a.max() >= num_classes):
        raise ValueError(f"{name} holds class indices outside [0, {num_classes})")
    return a


def unweighted_accuracy(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray) -> float:
    """Mean per-class recall over the classes present in ``y_true`` (UA / UAR)."""
    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    if t.size == 0:
        return float("nan")
    recalls = [float(np.mean(p[t == c] == c)) for c in np.unique(t)]
    return float(np.mean(recalls))


def classification_metrics(
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    label_names: Sequence[str],
) -> dict[str, Any]:
    """WA, UA, macro/weighted precision-recall-F1, per-class scores and the confusion matrix
    (rows = true class, columns = predicted, ordered as ``label_names``)."""
    names = [str(n) for n in label_names]
    c = len(names)
    t = _as_index_array(y_true, "y_true", c)
    p = _as_index_array(y_pred, "y_pred", c)
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} entries but y_pred has {p.size}")
    if t.size == 0:
        raise ValueError("cannot compute metrics on zero samples")
    out: dict[str, Any] = {"n": int(t.size), "wa": float(accuracy_score(t, p)), "ua": unweighted_accuracy(t, p)}
    for avg in ("macro", "weighted"):
        pr, rc, f1, _ = precision_recall_fscore_support(t, p, average=avg, zero_division=0)
        out[f"{avg}_precision"], out[f"{avg}_recall"], out[f"{avg}_f1"] = float(pr), float(rc), float(f1)
    pr, rc, f1, sup = precision_recall_fscore_support(t, p, labels=list(range(c)), average=None, zero_division=0)
    out["per_class"] = {
        name: {"precision": float(pr[i]), "recall": float(rc[i]), "f1": float(f1[i]), "support": int(sup[i])}
        for i, name in enumerate(names)
    }
    out["confusion"] = confusion_matrix(t, p, labels=list(range(c))).astype(int).tolist()
    out["labels"] = names
    return out


def aggregate(metric_dicts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """``<key>_mean`` and ``<key>_std`` (sample std, ``ddof=1``; 0 for a single value) for every
    numeric scalar key present in all dicts (``n`` and nested values excluded), plus ``n`` = the
    number of dicts."""
    if not metric_dicts:
        raise ValueError("aggregate needs at least one metrics dict")
    keys = [
        k for k, v in metric_dicts[0].items()
        if k != "n" and _is_scalar(v) and all(k in d and _is_scalar(d[k]) for d in metric_dicts)
    ]
    out: dict[str, Any] = {}
    for k in keys:
        values = np.array([float(d[k]) for d in metric_dicts], dtype=np.float64)
        out[f"{k}_mean"] = float(values.mean())
        out[f"{k}_std"] = float(values.std(ddof=1)) if values.size > 1 else 0.0
    out["n"] = len(metric_dicts)
    return out


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
