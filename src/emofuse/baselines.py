"""Classical baseline: standardise + logistic regression on per-clip (pooled) feature vectors.

The regularisation strength C is chosen on the validation speakers; the model is then refitted
on training + validation speakers with that C (the validation speakers are part of the training
side, never the test fold).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

DEFAULT_C_GRID = (0.01, 0.1, 1.0)


@dataclass
class LogRegResult:
    """Test-set predictions and the chosen regularisation strength."""

    probabilities: np.ndarray
    chosen_c: float


def _fit(x: np.ndarray, y: np.ndarray, c: float, seed: int):
    model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=3000, random_state=seed))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x, y)
    return model


def fit_predict_logreg(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
                       x_test: np.ndarray | Sequence[np.ndarray], num_classes: int,
                       c_grid: tuple[float, ...] = DEFAULT_C_GRID, seed: int = 0,
                       x_refit: np.ndarray | None = None, y_refit: np.ndarray | None = None) -> LogRegResult:
    """Pick C by validation UA, refit on train+val, return class probabilities for the test set
    (columns for every class index 0..num_classes-1, zeros for classes absent from training).

    ``x_test`` may be a list of matrices of the same test samples (the original features and
    test-time augmented views): their probabilities are averaged. ``x_refit``/``y_refit`` replace
    the validation rows added for the refit (e.g. validation samples with augmented copies)."""
    best_c, best_score = c_grid[0], -1.0
    if len(y_val):
        for c in c_grid:
            score = balanced_accuracy_score(y_val, _fit(x_train, y_train, c, seed).predict(x_val))
            if score > best_score:
                best_c, best_score = c, score
    if x_refit is None or y_refit is None:
        x_refit, y_refit = x_val, y_val
    model = _fit(np.concatenate([x_train, x_refit]), np.concatenate([y_train, y_refit]), best_c, seed)
    views = [x_test] if isinstance(x_test, np.ndarray) else list(x_test)
    proba = np.zeros((len(views[0]), num_classes), dtype=np.float64)
    proba[:, model.classes_] = np.mean([model.predict_proba(v) for v in views], axis=0)
    return LogRegResult(probabilities=proba, chosen_c=best_c)
