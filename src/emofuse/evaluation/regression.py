"""Sentiment-regression metrics of CMU-MOSI / CMU-MOSEI, as the literature (and MMSA) computes them.

For true and predicted sentiment in [-3, 3]:

* ``acc2`` / ``f1``: negative (< 0) vs non-negative (>= 0), accuracy and weighted F1 over every
  sample (MMSA's ``Has0_acc_2`` / ``Has0_F1_score``);
* ``acc2_non0`` / ``f1_non0``: negative (< 0) vs positive (> 0) over the samples whose true score is
  not 0 (MMSA's ``Non0_acc_2`` / ``Non0_F1_score``, the convention of most papers since Tsai et al. 2019);
* ``acc7``: both scores clipped to [-3, 3] and rounded to the nearest integer, accuracy over the
  7 classes; ``acc5`` the same on [-2, 2];
* ``mae``: mean absolute error; ``corr``: Pearson correlation (NaN when either side is constant);
* ``wa`` (= ``acc2``), ``ua`` (balanced accuracy) and ``macro_f1`` of the negative / non-negative
  classes: the classification view, so that regression rows also carry the benchmark format's keys.

`emotion_metrics` gives the MAE and Pearson correlation of each emotion intensity column.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

SCALAR_KEYS = ("acc2", "f1", "acc2_non0", "f1_non0", "acc5", "acc7", "mae", "corr", "wa", "ua", "macro_f1")


def _pair(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype=np.float64).reshape(-1)
    p = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length: {t.size} vs {p.size}")
    if t.size == 0:
        raise ValueError("no samples to score")
    if not (np.isfinite(t).all() and np.isfinite(p).all()):
        raise ValueError("scores must be finite")
    return t, p


def pearson(t: np.ndarray, p: np.ndarray) -> float:
    """Pearson correlation; NaN when either side has no variance."""
    if t.size < 2 or np.std(t) == 0 or np.std(p) == 0:
        return float("nan")
    return float(np.corrcoef(t, p)[0, 1])


def _weighted_f1(t: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(t, p, average="weighted")) if t.size else float("nan")


def regression_metrics(y_true: Sequence[float] | np.ndarray, y_pred: Sequence[float] | np.ndarray) -> dict[str, Any]:
    """Acc-2 (both conventions), F1 (weighted, both), Acc-5, Acc-7, MAE and Pearson r (module docstring)."""
    t, p = _pair(y_true, y_pred)
    non0 = t != 0
    out: dict[str, Any] = {
        "acc2": float(np.mean((t >= 0) == (p >= 0))),
        "f1": _weighted_f1(t >= 0, p >= 0),
        "acc2_non0": float(np.mean((t[non0] > 0) == (p[non0] > 0))) if non0.any() else float("nan"),
        "f1_non0": _weighted_f1(t[non0] > 0, p[non0] > 0),
        "acc5": float(np.mean(np.round(np.clip(t, -2, 2)) == np.round(np.clip(p, -2, 2)))),
        "acc7": float(np.mean(np.round(np.clip(t, -3, 3)) == np.round(np.clip(p, -3, 3)))),
        "mae": float(np.mean(np.abs(t - p))),
        "corr": pearson(t, p),
        "n": int(t.size), "n_non0": int(non0.sum()),
    }
    from sklearn.metrics import balanced_accuracy_score, f1_score

    out["wa"] = out["acc2"]
    out["ua"] = float(balanced_accuracy_score(t >= 0, p >= 0)) if len(set(t >= 0)) > 1 else out["acc2"]
    out["macro_f1"] = float(f1_score(t >= 0, p >= 0, average="macro"))
    return out


def emotion_metrics(y_true: np.ndarray, y_pred: np.ndarray, names: Sequence[str]) -> dict[str, dict[str, float]]:
    """Per column of ``[N, K]`` intensities: ``{name: {"mae": ..., "corr": ...}}``."""
    t, p = np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)
    if t.shape != p.shape or t.ndim != 2 or t.shape[1] != len(names):
        raise ValueError(f"expected [N, {len(names)}] true and predicted intensities, got {t.shape} and {p.shape}")
    return {n: {"mae": float(np.mean(np.abs(t[:, k] - p[:, k]))), "corr": pearson(t[:, k], p[:, k])}
            for k, n in enumerate(names)}


def aggregate_regression(runs: Sequence[dict[str, Any]]) -> dict[str, float]:
    """``<key>_mean`` and ``<key>_std`` (sample std, 0 for one run) of `SCALAR_KEYS` over runs (folds x seeds)."""
    out: dict[str, float] = {}
    for key in SCALAR_KEYS:
        values = np.array([r[key] for r in runs], dtype=np.float64)
        out[f"{key}_mean"] = float(np.mean(values)) if values.size else float("nan")
        out[f"{key}_std"] = float(np.std(values, ddof=1)) if values.size > 1 else 0.0
    return out
